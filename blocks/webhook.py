"""An HTTP endpoint that receives export files (or notices about them) and run notifications.

Every request is signed so the receiver can tell it came from Ferry and was not
altered or replayed: ``X-Ferry-Signature: t=UNIX_TIME,v1=HEX`` where ``HEX`` is
``HMAC-SHA256(secret, f"{t}." + body)`` (the scheme Stripe made familiar;
receivers should also refuse timestamps older than a few minutes).

Delivery posts the file itself when it is at most ``max_file_bytes``; a larger
file goes to the ``large_files`` destination block (e.g. an S3 bucket) and the
webhook gets a JSON notice with its download URL instead. That handoff follows
the overwrite rule of every destination: without ``overwrite`` a name already
taken in the store is refused, and no notice is sent.

Retries happen here, where the HTTP status is known: 5xx and 429 (honouring
``Retry-After``), timeouts and dropped connections are retried with exponential
backoff; any other 4xx (or a redirect, which a POST must not follow blindly)
fails at once. Messages name the block and never include the secret, the bearer
token or the URL's query string (webhook URLs often embed tokens).
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import io
import json
import random
import time
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests
from pydantic import Field, SecretStr, field_validator

from blocks.destination import Delivery, Destination, clean_key
from ferry.errors import DestinationError, TransientDestinationError

USER_AGENT = "ferry-webhook/1"
SIGNATURE_HEADER = "X-Ferry-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """Receiver side: True when ``header`` signs ``body`` with ``secret`` and is recent enough."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _read_up_to(source: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes: reads until EOF or the limit (one read() may return less without being at EOF)."""
    parts, size = [], 0
    while size < limit:
        chunk = source.read(min(limit - size, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class _Prefixed(io.RawIOBase):
    """Bytes already read, followed by the rest of a stream (so a peeked stream can be re-read)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            size = len(self._head) if size is None or size < 0 else size
            chunk, self._head = bytes(self._head[:size]), self._head[size:]
            return chunk
        return self._rest.read(size)


class Webhook(Destination):
    """An HTTPS endpoint that receives signed POSTs: export files, notices of large files, run notifications."""

    _block_type_name = "Ferry Webhook"
    _block_type_slug = "webhook-endpoint"
    _description = "An HTTP(S) endpoint receiving signed POSTs of export files and run notifications."

    url: str = Field(title="URL", description="The endpoint that receives the POSTs (https in production).")
    secret: SecretStr | None = Field(
        default=None, title="Signing secret", description="Key of the HMAC-SHA256 signature sent in the X-Ferry-Signature header."
    )
    bearer_token: SecretStr | None = Field(
        default=None, title="Bearer token", description="Sent as `Authorization: Bearer ...` when the endpoint wants one."
    )
    max_file_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=0,
        title="Largest file to POST",
        description="Files up to this size are POSTed; larger files go to large_files and only a notice is POSTed.",
    )
    large_files: str | None = Field(
        default=None,
        title="Destination for large files",
        description="Block reference (e.g. `s3-bucket/NAME`) that stores files above max_file_bytes; the notice carries its download URL.",
    )
    ca_file: str | None = Field(
        default=None, title="CA file", description="PEM file of the CA that signed the endpoint's certificate; default: the system's CAs."
    )
    timeout: float = Field(default=30.0, gt=0, title="Timeout (s)", description="Seconds to wait for connecting and for the response.")
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        title="Attempts",
        description="Tries per POST, counting the first; only 5xx, 429, timeouts and resets are retried.",
    )
    backoff_seconds: float = Field(
        default=1.0, ge=0, title="Backoff (s)", description="First pause between tries; doubles each time (with jitter)."
    )
    max_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        title="Longest pause (s)",
        description="Longest pause between tries, including a server's Retry-After; a longer Retry-After ends the retries.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// address.")
        return value

    # --- descriptions -------------------------------------------------------

    def safe_url(self) -> str:
        """The URL without userinfo, query or fragment (which may carry tokens)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def describe(self) -> str:
        return f"{self.block_label()} ({self.safe_url()})"

    # --- HTTP ---------------------------------------------------------------

    def _headers(self, body: bytes, content_type: str, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **extra}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret.get_secret_value(), int(time.time()), body)
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        return headers

    def _backoff(self, attempt: int) -> float:
        base = self.backoff_seconds * (2 ** (attempt - 1))
        return min(self.max_wait_seconds, base * random.uniform(0.8, 1.2))

    def post(self, body: bytes, content_type: str, what: str, extra_headers: dict[str, str] | None = None) -> requests.Response:
        """POST ``body``, retrying only what may succeed later; raises a Ferry error otherwise."""
        where = self.describe()
        with requests.Session() as session:
            session.trust_env = False  # no proxies or netrc credentials picked up from the environment
            for attempt in range(1, self.max_attempts + 1):
                headers = self._headers(body, content_type, extra_headers or {})  # fresh timestamp each try
                try:
                    response = session.post(
                        self.url,
                        data=body,
                        headers=headers,
                        timeout=(self.timeout, self.timeout),
                        allow_redirects=False,
                        verify=self.ca_file or True,
                    )
                except requests.exceptions.SSLError:
                    raise DestinationError(
                        f"{where}: TLS to the endpoint failed (certificate not trusted, or wrong host name).",
                        "Set ca_file for a private CA, or check url's host name.",
                    ) from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    kind = "timed out" if isinstance(exc, requests.Timeout) else "could not connect or the connection dropped"
                    error: DestinationError = TransientDestinationError(
                        f"{where}: sending {what} {kind} (attempt {attempt} of {self.max_attempts}).",
                        "Check that the endpoint is up.",
                    )
                    wait = self._backoff(attempt)
                except requests.RequestException as exc:
                    raise DestinationError(f"{where}: sending {what} failed: {type(exc).__name__}.", "Check url in the block.") from None
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        return response
                    if status == 429 or status >= 500:
                        error = TransientDestinationError(
                            f"{where}: the endpoint answered HTTP {status} to {what} (attempt {attempt} of {self.max_attempts}).",
                            "The endpoint is overloaded or failing.",
                        )
                        told = retry_after_seconds(response.headers.get("Retry-After"))
                        if told is not None and told > self.max_wait_seconds:
                            raise TransientDestinationError(
                                f"{where}: the endpoint answered HTTP {status} and asked to wait {told:.0f} s, "
                                f"longer than max_wait_seconds={self.max_wait_seconds:.0f}.",
                                "Try again later.",
                            )
                        wait = told if told is not None else self._backoff(attempt)
                    elif status in (401, 403):
                        raise DestinationError(
                            f"{where}: the endpoint refused {what} with HTTP {status}.",
                            "Check the block's secret and bearer_token against what the endpoint expects.",
                        )
                    elif 300 <= status < 400:
                        raise DestinationError(
                            f"{where}: the endpoint answered {what} with a redirect (HTTP {status}); POSTs are not redirected.",
                            "Set url to the endpoint's final address.",
                        )
                    else:
                        raise DestinationError(
                            f"{where}: the endpoint rejected {what} with HTTP {status}.",
                            "Check url and what the endpoint accepts; this is not retried.",
                        )
                if attempt == self.max_attempts:
                    raise error
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, payload: dict[str, Any], what: str = "a notice") -> None:
        """POST a JSON document (notices and run notifications)."""
        body = json.dumps(payload, default=str, separators=(",", ":")).encode()
        self.post(body, "application/json", what)

    # --- the contract -------------------------------------------------------

    def leftovers_note(self) -> str | None:
        return "a webhook endpoint keeps no files Ferry could list (large files go to the large_files block, swept as its own block)"

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        """POST the file, or hand a large one to ``large_files`` and POST a notice.

        A POST replaces nothing, so ``overwrite`` matters only for the handoff:
        without it, a name already taken in the large_files store is refused
        (``DestinationError``, the store's own check) and no notice is sent.
        """
        name = str(clean_key(key))
        head = _read_up_to(source, self.max_file_bytes + 1)
        if len(head) <= self.max_file_bytes:
            digest = hashlib.sha256(head).hexdigest()
            self.post(head, "application/octet-stream", f"file {name}", {"X-Ferry-Filename": name, "X-Ferry-SHA256": digest})
            return Delivery(location=f"{self.safe_url()}#{name}", bytes=len(head), sha256=digest)
        if not self.large_files:
            raise DestinationError(
                f"{self.describe()}: {name} is larger than max_file_bytes={self.max_file_bytes}.",
                "Set large_files to a destination block (e.g. s3-bucket/NAME) that stores big files, or raise max_file_bytes.",
            )
        from blocks.registry import DESTINATIONS, resolve_destination
        from ferry.settings import get_settings

        if self.large_files.partition("/")[0] not in DESTINATIONS or "/" not in self.large_files:
            raise DestinationError(
                f"{self.describe()}: large_files={self.large_files!r} is not a block reference.",
                f"Use KIND/NAME with KIND one of {', '.join(DESTINATIONS)}.",
            )
        store = resolve_destination(self.large_files, get_settings().exports_dir)
        delivery = store.deliver(_Prefixed(head, source), key, overwrite=overwrite)
        self.send(
            {
                "event": "export.file",
                "filename": name,
                "bytes": delivery.bytes,
                "sha256": delivery.sha256,
                "location": delivery.location,
                "url": delivery.url,
            },
            f"the notice for {name}",
        )
        return delivery
