"""Helpers for the local HTTP receiver (pytest-httpserver, a real werkzeug server in a thread).

pytest-httpserver's ``httpserver`` fixture binds 127.0.0.1 on a free port; these
helpers record arrival times (to check that Retry-After was honoured) and serve
bodies in slow or large streams for URL-import limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from werkzeug import Request, Response


class Arrivals:
    """Wraps a handler and records when each request arrived (monotonic seconds)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def replying(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            self.times.append(time.monotonic())
            return Response(body, status=status, headers=headers or {})

        return handler


def streamed(total: int, chunk: int = 64 * 1024, pause: float = 0.0, content_length: bool = True) -> Callable[[Request], Response]:
    """A handler that streams ``total`` bytes in chunks (optionally slowly, optionally without Content-Length)."""

    def handler(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            sent = 0
            while sent < total:
                piece = min(chunk, total - sent)
                yield b"x" * piece
                sent += piece
                if pause:
                    time.sleep(pause)

        headers = {"Content-Length": str(total)} if content_length else {}
        return Response(body(), status=200, headers=headers, content_type="text/csv", direct_passthrough=True)

    return handler


@dataclass
class WebhookHandle:
    """A webhook destination and the files its receiver got, by X-Ferry-Filename (conformance suite)."""

    destination: object
    files: dict[str, bytes]

    def read(self, key: str) -> bytes:
        return self.files[key]

    def keys(self) -> list[str]:
        return sorted(self.files)


@pytest.fixture
def webhook_handle(httpserver_ipv4) -> WebhookHandle:
    """A receiver that keeps each POSTed file under its name, after checking the signature."""
    import hashlib
    import hmac

    from blocks.webhook import Webhook

    secret = "conformance-signing-key"
    files: dict[str, bytes] = {}

    def receive(request: Request) -> Response:
        body = request.get_data()
        parts = dict(item.split("=", 1) for item in request.headers["X-Ferry-Signature"].split(","))
        expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return Response("bad signature", status=401)
        files[request.headers["X-Ferry-Filename"]] = body
        return Response("ok")

    httpserver_ipv4.expect_request("/files", method="POST").respond_with_handler(receive)
    return WebhookHandle(Webhook(url=httpserver_ipv4.url_for("/files"), secret=secret, backoff_seconds=0.01), files)
