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

    def _feed(self, chunk: bytes) -> Iterator[bytes]:
        a = np.frombuffer(chunk, dtype=np.uint8)
        while len(a):
            positions, depths = self._scan(a)
            if self._skipping:  # inside a too-deep value: drop bytes until it closes
                closed = np.flatnonzero(depths == self._max)
                if not len(closed):
                    self._advance(a, depths)
                    return
                cut = int(positions[closed[0]]) + 1
                self._skipping, self.depth, self._in_string, self._backslashes = False, self._max, False, 0
                a = a[cut:]
                continue
            deep = np.flatnonzero(depths > self._max)
            if not len(deep):
                self._advance(a, depths)
                yield a.tobytes()
                return
            cut = int(positions[deep[0]])
            yield a[:cut].tobytes() + _MARKER
            self._skipping, self.depth, self._in_string, self._backslashes = True, self._max + 1, False, 0
            a = a[cut + 1 :]

    def _scan(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the brackets outside strings, and the depth after each."""
        quotes = np.flatnonzero(a == 34)
        if len(quotes):
            quotes = quotes[self._escapes(a, quotes) % 2 == 0]
        brackets = np.flatnonzero((a == 123) | (a == 91) | (a == 125) | (a == 93))
        if len(quotes):
            outside = (np.searchsorted(quotes, brackets) + self._in_string) % 2 == 0
            brackets = brackets[outside]
        elif self._in_string:
            brackets = brackets[:0]
        steps = np.where(np.isin(a[brackets], _OPEN), 1, -1)
        depths = self.depth + np.cumsum(steps)
        self._quotes = len(quotes)
        return brackets, depths

    def _escapes(self, a: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The number of backslashes right before each position (counting those that ended the last chunk)."""
        index = np.arange(len(a))
        last_other = np.maximum.accumulate(np.where(a != 92, index, -1))
        before = positions - 1
        safe = np.maximum(before, 0)
        runs = np.where(before >= 0, before - last_other[safe], 0)
        from_start = (before < 0) | (last_other[safe] == -1)
        return runs + np.where(from_start, self._backslashes, 0)

    def _advance(self, a: np.ndarray, depths: np.ndarray) -> None:
        """The state after a whole chunk was passed on."""
        if len(depths):
            self.depth = int(depths[-1])
        self._in_string = (self._in_string + self._quotes) % 2 == 1
        others = np.flatnonzero(a != 92)
        tail = len(a) - 1 - int(others[-1]) if len(others) else len(a)
        self._backslashes = tail + (self._backslashes if tail == len(a) else 0)
