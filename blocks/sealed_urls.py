"""Import URLs that carry tokens (a signed URL's ``?sig=...``, ``X-Amz-Signature``...) never reach a run's parameters.

Prefect keeps a flow run's parameters in its database and shows them to
everyone with UI access. So before a run is created, a URL with a query is
*sealed*: the whole URL goes into a Prefect ``Secret`` block of its own (encrypted
at rest, masked by the API), and the run's ``source`` becomes the URL without
its query plus a reference to that block (``...?ferry-sealed=NAME``). The fetch
stage unseals it; the run that imports the file deletes the block when it ends,
and :func:`ferry.sweep.sweep` deletes those a killed run (or a run never
started) left behind.
URLs with a user name or password are refused before a run is created (they do
not belong in a URL at all).
"""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import parse_qs, urlsplit

from ferry.checks import shown_url
from ferry.errors import Problem, SourceError
from ferry.sweep import SEALED_URL_BLOCK_PREFIX as PREFIX
from ferry.sweep import SEALED_URL_PARAMETER as SEALED

__all__ = ["PREFIX", "SEALED", "forget", "seal", "unseal", "url_problems"]


def url_problems(source: str) -> list[Problem]:
    """An http(s) import URL with credentials: refused before any run exists (its parameters would keep them)."""
    parts = urlsplit(source)
    if parts.scheme.lower() in ("http", "https") and (parts.username is not None or parts.password is not None):
        return [Problem("source", shown_url(source), "carries a user name or password; use a signed URL or a saved block instead")]
    return []


def seal(source: str, key: str | None = None) -> str:
    """``source`` as a run may keep it: an http(s) URL with a query is stored in a Secret block and referenced.

    ``key`` (a request's idempotency key) names the block after the key and the URL, so a retried request
    seals to the same ``source`` and its run's parameters match the first attempt's: Prefect then hands
    back the run the key started, instead of refusing the key as used with other parameters. Without a
    key, every call seals to a new block.
    """
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https") or not (parts.query or parts.fragment) or _sealed_name(source):
        return source  # before importing Prefect: a local file's import should not pay for it here
    from prefect.blocks.system import Secret

    unique = hashlib.sha256(f"{key}\n{source}".encode()).hexdigest() if key else uuid.uuid4().hex
    name = f"{PREFIX}{unique[:16]}"
    Secret(value=source).save(name, overwrite=key is not None)
    return f"{shown_url(source)}?{SEALED}={name}"


def _sealed_name(source: str) -> str | None:
    names = parse_qs(urlsplit(source).query).get(SEALED)
    return names[0] if names and names[0].startswith(PREFIX) else None


def unseal(source: str) -> str:
    """The URL a sealed ``source`` stands for (``source`` itself when it is not sealed)."""
    name = _sealed_name(source)
    if name is None:
        return source
    from prefect.blocks.system import Secret

    try:
        return Secret.load(name).get()
    except ValueError:
        raise SourceError(
            f"The signed URL of {shown_url(source)} is no longer stored (block {name!r}).",
            "It is deleted once its import ran: start the import again with the URL.",
        ) from None


def forget(source: str) -> None:
    """Delete the Secret block of a sealed ``source`` (after the run that needed it); nothing for other sources."""
    from prefect.blocks.system import Secret

    name = _sealed_name(source)
    if name is not None:
        try:
            Secret.delete(name)
        except Exception:  # noqa: BLE001 - already gone, or the server unreachable: the cleanup flow's sweep takes it
            return
