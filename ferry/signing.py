"""Signed, expiring URLs for files Ferry serves itself (exports in local managed storage, via the HTTP API).

The signature is an HMAC-SHA256 over the path and the expiry, keyed with
``FERRY_URL_SIGNING_KEY`` or, when unset, a random key kept in
``<data_dir>/secrets/url-signing.key`` (owner-only), so every API process on
one machine accepts the URLs any of them minted. Like an S3 presigned URL, the
URL itself is the permission: it expires, and any change to it breaks it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from ferry.settings import get_settings


def _key() -> bytes:
    settings = get_settings()
    if settings.url_signing_key is not None:
        return settings.url_signing_key.get_secret_value().encode()
    path = settings.data_dir / "secrets" / "url-signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return Path(path).read_text().strip().encode()


def signature(path: str, expires: int) -> str:
    return hmac.new(_key(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_query(path: str, lifetime_seconds: int) -> tuple[str, int]:
    """``expires=...&signature=...`` for ``path``, and the expiry (Unix seconds)."""
    expires = int(time.time()) + lifetime_seconds
    return f"expires={expires}&signature={signature(path, expires)}", expires


def verify(path: str, expires: int, presented: str) -> bool:
    """True while the URL has not expired and its signature is the one this key makes."""
    return expires >= time.time() and hmac.compare_digest(signature(path, expires).encode(), presented.encode("utf-8", "replace"))
