"""Helpers shared by the remote-server blocks (SFTP, FTP): error classes and local temp files.

Whether an error is worth retrying is decided here, by its type, once:
network trouble (timeouts, resets, refused connections, dropped sessions) is
transient; authentication, permission, missing files and bad configuration are
terminal and fail at once.
"""

from __future__ import annotations

import errno
import os
import posixpath
import socket
import ssl
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

TRANSIENT_ERRNOS = {
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.ENETRESET,
    errno.EAGAIN,
}


def is_transient_network_error(exc: BaseException) -> bool:
    """True for failures of the connection itself, which a later attempt may not meet."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False  # a certificate problem does not fix itself
    if isinstance(exc, socket.gaierror):
        return exc.errno in (socket.EAI_AGAIN,)  # "temporary failure in name resolution"
    if isinstance(exc, (TimeoutError, socket.timeout, ConnectionError, EOFError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def remote_join(folder: str, key: PurePosixPath) -> str:
    """``folder/key`` as a POSIX path; an empty folder means the login folder."""
    return str(PurePosixPath(folder) / key) if folder else str(key)


def remote_location(scheme: str, username: str, host: str, port: int, folder: str, key: str) -> str:
    """``scheme://user@host:port/path`` of ``key`` in ``folder``, for messages (``/~/`` marks a path relative to the login folder)."""
    path = posixpath.join(folder, key)
    return f"{scheme}://{username}@{host}:{port}{path if path.startswith('/') else '/~/' + path}"


def partial_name(final: str) -> str:
    """A hidden sibling name for the upload in progress; renamed onto ``final`` when complete."""
    path = PurePosixPath(final)
    return str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial"))


@contextmanager
def local_partial(target: Path) -> Iterator[BinaryIO]:
    """Write ``target`` through a hidden temporary sibling; it appears complete or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        with open(tmp, "wb") as out:
            yield out
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class SourceReader:
    """Counts and hashes what is read from the source, and marks the source's own errors.

    A failure of the *source* stream (a broken spool file) must reach the caller
    unchanged, not dressed up as a destination error: the mark lets the blocks'
    error translation tell the two apart.
    """

    def __init__(self, source: BinaryIO, background_hash: bool = False) -> None:
        import hashlib

        self._source = source
        self._sha256 = hashlib.sha256()
        self.bytes = 0
        # Hash on a helper thread (hashlib releases the GIL), overlapping with encryption and
        # sending on this one: the upload's CPU-bound client path gets a second core.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-hash") if background_hash else None
        self._pending: Future | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._source.read(size)
        except Exception as exc:
            exc.ferry_source_error = True  # type: ignore[attr-defined]
            raise
        if self._pool is None:
            self._sha256.update(chunk)
        else:
            if self._pending is not None:
                self._pending.result()  # in order: the previous chunk is hashed before this one starts
            self._pending = self._pool.submit(self._sha256.update, chunk)
        self.bytes += len(chunk)
        return chunk

    @property
    def sha256(self):
        """The running hash, complete up to the last chunk read."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return self._sha256

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def from_source(exc: BaseException) -> bool:
    """True for errors raised by the source stream (see SourceReader)."""
    return bool(getattr(exc, "ferry_source_error", False))


def location_path(location: str, scheme: tuple[str, ...], host: str, port: int) -> str:
    """The server path inside a ``scheme://host:port/path`` location, or ValueError if it is elsewhere."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(location)
    if parts.scheme not in scheme or (parts.hostname or "").lower() != host.lower() or (parts.port or port) != port:
        raise ValueError(location)
    return unquote(parts.path)
