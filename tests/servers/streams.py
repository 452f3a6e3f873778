"""Source streams for destination tests."""

from __future__ import annotations

import io
from collections.abc import Callable


class WatchingStream(io.RawIOBase):
    """A source that calls ``at_half(bytes_read)`` once, halfway through (to look at, or kill, the server mid-upload)."""

    def __init__(self, data: bytes, at_half: Callable[[int], None]) -> None:
        self._data, self._pos, self._at_half, self._called = data, 0, at_half, False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._called and self._pos >= len(self._data) // 2:
            self._called = True
            self._at_half(self._pos)
        size = len(self._data) - self._pos if size is None or size < 0 else min(size, 64 * 1024)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk
