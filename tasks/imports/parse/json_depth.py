"""How deep a JSON record may nest (``import_max_json_depth``), checked without letting a deep record cost more.

A record nested thousands of levels deep is no customer data: it crashed the preview with a
RecursionError (flattening nested keys recurses) and, as one line of a JSONL file, failed the
whole import. Deeper than the limit, a record is a row error like any other. JSONL lines are
short enough (``import_max_line_bytes``) to parse first and measure after; orjson itself stops
at 1,024 levels. The elements of a JSON array have no such bound — ijson builds each element
whole, and one two-million-deep element took the process down — so :class:`DepthGuard` reads
the bytes before ijson does and replaces every value nested past the limit by a marker string,
which :func:`too_deep` then finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ferry.settings import get_settings

TOO_DEEP = "\x00ferry: nested past the depth limit\x00"  # what DepthGuard puts in place of a too-deep value
_MARKER = b'"\\u0000ferry: nested past the depth limit\\u0000"'
_OPEN = (ord("{"), ord("["))


def max_depth() -> int:
    return get_settings().import_max_json_depth


def depth_error(limit: int) -> str:
    return f"nested deeper than {limit} levels (import_max_json_depth)"


def too_deep(record: dict, limit: int) -> bool:
    """Whether a parsed record nests deeper than ``limit`` levels (the record itself is level 1), or holds
    DepthGuard's marker. Iterative: a deep record must not recurse. Flat records cost one pass over their values."""
    stack = [(v, 2) for v in record.values() if type(v) is dict or type(v) is list or v == TOO_DEEP]
    while stack:
        value, depth = stack.pop()
        if depth > limit or value == TOO_DEEP:
            return True
        for item in value.values() if type(value) is dict else value:
            if type(item) is dict or type(item) is list or (type(item) is str and item == TOO_DEEP):
                stack.append((item, depth + 1))
    return False


_STEPS = np.zeros(256, dtype=np.int8)  # bracket -> its step in depth
_STEPS[[ord("{"), ord("[")]] = 1
_STEPS[[ord("}"), ord("]")]] = -1


class DepthGuard:
    """JSON text with every value nested deeper than ``base + limit`` brackets replaced by a marker string.

    ``base``: the brackets around each record (1 for a top-level array, 2 for ``{"data": [...]}``).
    Brackets are counted per chunk with numpy (quotes, backslash escapes and strings respected), so
    the guard costs little on ordinary files; only a chunk that goes too deep is cut.
    """

    def __init__(self, chunks: Iterable[bytes], base: int, limit: int) -> None:
        self._chunks = chunks
        self._max = base + limit
        self.depth = 0
        self._in_string = False
        self._backslashes = 0  # backslashes ending the previous chunk (they escape what follows)
        self._skipping = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            yield from self._feed(chunk)

    def _feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            a = np.frombuffer(data, dtype=np.uint8)
            positions, depths, quotes = self._scan(data, a)
            if self._skipping:  # inside a too-deep value: drop bytes until it closes
                closed = np.flatnonzero(depths == self._max)
                if not len(closed):
                    self._advance(data, depths, quotes)
                    return
                cut = int(positions[closed[0]]) + 1
                self._skipping, self.depth, self._in_string, self._backslashes = False, self._max, False, 0
                data = data[cut:]
                continue
            if not len(depths) or depths.max() <= self._max:
                self._advance(data, depths, quotes)
                yield data
                return
            cut = int(positions[np.flatnonzero(depths > self._max)[0]])
            yield data[:cut] + _MARKER
            self._skipping, self.depth, self._in_string, self._backslashes = True, self._max + 1, False, 0
            data = data[cut + 1 :]

    def _scan(self, data: bytes, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Positions of the brackets outside strings, the depth after each, and the number of string quotes."""
        quotes = np.flatnonzero(a == 34)
        if len(quotes) and (self._backslashes or b"\\" in data):  # only quotes right after a backslash may be escaped
            before = quotes - 1
            suspect = np.flatnonzero((before < 0) | (a[np.maximum(before, 0)] == 92))
            if len(suspect):
                keep = np.ones(len(quotes), dtype=bool)
                for i in suspect.tolist():
                    keep[i] = not self._escaped(data, int(quotes[i]))
                quotes = quotes[keep]
        steps = _STEPS[a]
        brackets = np.flatnonzero(steps)
        if len(quotes):
            brackets = brackets[(np.searchsorted(quotes, brackets) + self._in_string) % 2 == 0]
        elif self._in_string:
            brackets = brackets[:0]
        return brackets, self.depth + np.cumsum(steps[brackets], dtype=np.int64), len(quotes)

    def _escaped(self, data: bytes, position: int) -> bool:
        """Whether the quote at ``position`` is escaped: an odd number of backslashes right before it."""
        start = position
        while start > 0 and data[start - 1] == 92:
            start -= 1
        run = position - start + (self._backslashes if start == 0 else 0)
        return run % 2 == 1

    def _advance(self, data: bytes, depths: np.ndarray, quotes: int) -> None:
        """The state after a whole chunk was passed on."""
        if len(depths):
            self.depth = int(depths[-1])
        self._in_string = (self._in_string + quotes) % 2 == 1
        tail = len(data) - len(data.rstrip(b"\\"))
        self._backslashes = tail + (self._backslashes if tail == len(data) else 0)
