"""JSON and JSONL: an array of records (at the top, or under an object's one key), or one object per line.

Nested objects are flattened into dotted column names (``{"merge_fields": {"FNAME": "Ada"}}``
gives the column ``merge_fields.FNAME``), one record at a time, so that vendor exports that
nest their fields (Mailchimp's ``merge_fields``, an ``address`` object) can be mapped column
by column. Each object also stays one column of its JSON text under its own name, as it was
before flattening: a JSON field such as an event's ``properties``, exported by Ferry as a
nested object, still maps whole, and an export imports back. Arrays stay one cell holding
their JSON text: tags and other lists are parsed later, by the transform step, which knows
what the target field expects.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator

import orjson
import pyarrow as pa

from ferry.settings import get_settings
from tasks.imports.parse.batches import Batcher, Stats, cell_text
from tasks.imports.parse.encoding import utf8_chunks
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.json_depth import DepthGuard, depth_error, max_depth, too_deep


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for ijson)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def parse_line(line: bytes) -> tuple[object, str | None]:
    """One JSONL line as (value, None), or (None, why it is not JSON)."""
    try:
        return orjson.loads(line), None
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():  # orjson stops at 1,024 levels
            return None, depth_error(max_depth())
        try:  # orjson refuses what json accepts (integers past 64 bits, NaN): try it
            return json.loads(line.decode("utf-8", errors="replace")), None
        except (ValueError, RecursionError) as exc:
            where = f"; character {exc.pos + 1}" if getattr(exc, "pos", None) is not None else ""
            return None, f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)}{where})"


def record_error(value: object, depth: int | None = None) -> str | None:
    """Why a parsed JSON value cannot be a row (it is not an object, or nests past ``depth`` levels), or None."""
    if type(value) is not dict:
        return f"not a JSON object (got {type(value).__name__})"
    limit = max_depth() if depth is None else depth
    return depth_error(limit) if too_deep(value, limit) else None


def flat_items(record: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted column name, value) of every key of a record at any depth: a nested object is
    itself an item (one cell of JSON text) and then its keys are, named ``parent.key``.
    Iterative (depth-first, in key order), so that no nesting the depth limit allows can recurse too deep."""
    stack = [iter(record.items())]
    prefixes = [prefix]
    while stack:
        for key, value in stack[-1]:
            name = f"{prefixes[-1]}{key}"
            yield name, value
            if type(value) is dict:
                stack.append(iter(value.items()))
                prefixes.append(name + ".")
                break
        else:
            stack.pop()
            prefixes.pop()


def iter_jsonl_objects(
    info: FileInfo, limit: int | None = None, chunks: Iterable[bytes] | None = None
) -> Iterator[tuple[int, object, str | None]]:
    """(line number, parsed value or None, error) per non-blank line."""
    chunks = utf8_chunks(info) if chunks is None else chunks
    longest = get_settings().import_max_line_bytes
    too_long = f"line longer than the limit of {longest:,} bytes (import_max_line_bytes)"
    seen = 0
    number = 0
    partial = b""
    skipping = False  # inside a line past the limit: its bytes are dropped up to its end, memory stays flat
    for chunk in itertools.chain(chunks, [b"\n"]):
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            chunk, skipping = chunk[end + 1 :], False
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if len(partial) > longest:
            lines.append(None)  # the line so far stands for the whole, too long line
            partial, skipping = b"", True
        for line in lines:
            number += 1
            if line is None or len(line) > longest:
                value, error = None, too_long
            elif not line.strip():
                continue
            else:
                value, error = parse_line(line)
            yield number, value, error
            seen += 1
            if limit is not None and seen >= limit:
                return


def iter_json_objects(
    info: FileInfo, limit: int | None = None, chunks: Iterable[bytes] | None = None
) -> Iterator[tuple[int, object, str | None]]:
    """(element number, parsed value, error) per element of the array; a syntax error ends the file."""
    import ijson

    chunks = utf8_chunks(info) if chunks is None else chunks
    prefix = info.json_path or "item"
    guarded = DepthGuard(chunks, base=prefix.count(".") + 1, limit=max_depth())
    number = 0
    try:
        for number, value in enumerate(ijson.items(ChunkReader(iter(guarded)), prefix), 1):
            yield number, value, None
            if limit is not None and number >= limit:
                return
    except ijson.JSONError as exc:
        yield number + 1, None, f"invalid JSON after element {number}; the rest of the file is unreadable ({str(exc)[:80]})"


def _iter_objects(info: FileInfo, objects, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """One row per JSON value: an object's keys by column, nested objects also flattened to
    dotted names (keys not seen while sniffing are ignored), anything else an error row. An
    object with no known key is still a row. Flat records (the common case) skip the generator."""
    batcher = Batcher(info.columns, batch_rows)
    positions = {raw: i for i, raw in enumerate(info.raw_columns)}
    width = len(info.columns)
    text = cell_text
    depth = max_depth()
    for number, value, error in objects:
        values = None
        if error is None and (error := record_error(value, depth)) is None:
            values = [None] * width
            for key, item in value.items():
                i = positions.get(key)
                if i is not None:
                    values[i] = text(item)
                if type(item) is dict:
                    for name, inner in flat_items(item, key + "."):
                        i = positions.get(name)
                        if i is not None:
                            values[i] = text(inner)
        if batch := batcher.add(number, values, error):
            yield batch
    if batch := batcher.flush():
        yield batch


def iter_jsonl(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    yield from _iter_objects(info, iter_jsonl_objects(info), batch_rows)


def iter_json(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    yield from _iter_objects(info, iter_json_objects(info), batch_rows)
