"""Parquet: every column as raw text, whatever its Arrow type."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.imports.parse.batches import Stats, cell_text
from tasks.imports.parse.fileinfo import FileInfo, batch_schema
from tasks.imports.parse.opening import materialized


def _arrow_text(array: pa.Array) -> pa.Array:
    """Any Arrow column as raw text (dates ISO, nested values as JSON), null for empty."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _arrow_text(array.dictionary_decode())
    if pa.types.is_timestamp(t):
        try:
            seconds = pc.cast(array, pa.timestamp("s", t.tz))
            fmt = "%Y-%m-%dT%H:%M:%S" + ("%z" if t.tz else "")
            text = pc.strftime(seconds, format=fmt)
        except pa.ArrowInvalid:
            text = pc.cast(array, pa.string())
    elif pa.types.is_nested(t):
        text = pa.array([cell_text(v) for v in array.to_pylist()], pa.string())
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            text = pc.cast(pc.cast(array, pa.binary()), pa.string())
        except pa.ArrowInvalid:
            text = pa.array([v.hex() if v is not None else None for v in array.to_pylist()], pa.string())
    else:
        try:
            text = pc.cast(array, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            text = pa.array([cell_text(v) for v in array.to_pylist()], pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def iter_parquet(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    schema = batch_schema(info.columns)
    with materialized(info) as real:
        first = 1
        for batch in pq.ParquetFile(real).iter_batches(batch_size=batch_rows):
            n = batch.num_rows
            columns = [_arrow_text(batch.column(i)) for i in range(batch.num_columns)]
            rows = pa.array(np.arange(first, first + n, dtype=np.int64))
            first += n
            out = pa.RecordBatch.from_arrays(columns + [rows, pa.nulls(n, pa.string())], schema=schema)
            if columns:
                empty = functools.reduce(pc.and_, [pc.is_null(c) for c in columns])
                if pc.any(empty).as_py():
                    out = out.filter(pc.invert(empty))
            yield out
