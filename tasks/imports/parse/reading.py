"""Reading a sniffed file as Arrow batches: :func:`iter_batches`, and the one registry of readers by file type."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.imports.parse.batches import NUL_CELLS_NAMED, Stats
from tasks.imports.parse.csv_parser import iter_csv
from tasks.imports.parse.excel_parser import iter_xls, iter_xlsx
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.json_parser import iter_json, iter_jsonl
from tasks.imports.parse.parquet_parser import iter_parquet

BLOCK_BYTES = 2 * 1024 * 1024  # CSV text pyarrow parses per block (bigger is slower and holds more memory)

# file type -> its reader: (info, batch_rows, block_bytes, stats) -> batches of ``info.schema()``
READERS: dict[str, Callable[[FileInfo, int, int, Stats], Iterator[pa.RecordBatch]]] = {
    "csv": iter_csv,
    "tsv": iter_csv,
    "jsonl": iter_jsonl,
    "json": iter_json,
    "xlsx": iter_xlsx,
    "xls": iter_xls,
    "parquet": iter_parquet,
}


def iter_batches(info: FileInfo, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream the file's rows as Arrow batches of at most ``batch_rows`` rows.

    Schema: every source column as ``pa.string()`` (raw text, null when empty), then
    ``__row__`` (the row's line or row number in the file) and ``__error__`` (null, or
    why the reader could not read the row, e.g. ``ragged row: 7 values, header has 5``).
    Memory stays bounded by the block size, whatever the file's size. Rows with no
    value at all (blank lines, ``,,,,`` lines, empty spreadsheet rows) are skipped.
    """
    yield from read_batches(info, batch_rows, BLOCK_BYTES, Stats())


def read_batches(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    """:func:`iter_batches` with a chosen block size, recording what was read (and the NUL bytes removed) in ``stats``."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    for batch in READERS[info.file_type](info, batch_rows, block_bytes, stats):
        if batch.num_rows:
            stats.rows += batch.num_rows
            yield strip_nul(batch, stats)
    stats.eof = True


def strip_nul(batch: pa.RecordBatch, stats: Stats) -> pa.RecordBatch:
    """The batch with NUL bytes removed from its cells (a cell left empty is null), counted in ``stats``.

    Here, in the parse stage, so that every later stage and both stores see the same text:
    PostgreSQL refuses a NUL in text (failing the whole import, naming no row), SQLite stores it.
    A cheap scan of each column's bytes finds the (rare) columns that hold one.
    """
    ncols = batch.num_columns - 2  # (__row__, __error__)
    arrays = None
    for i in range(ncols):
        column = batch.column(i)
        data = column.buffers()[2]
        if data is None:
            continue
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
        if not np.count_nonzero(np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] == 0):
            continue
        hits = pc.count_substring(column, "\x00")
        held = pc.greater(pc.fill_null(hits, 0), 0)
        count = pc.sum(held).as_py() or 0
        if len(stats.nul_named) < NUL_CELLS_NAMED:
            rows = batch.column(ncols).filter(held).slice(0, NUL_CELLS_NAMED - len(stats.nul_named)).to_pylist()
            stats.nul_named += [(row, batch.schema.names[i]) for row in rows]
        stats.nul_cells += count
        cleaned = pc.replace_substring(column, "\x00", "")
        arrays = arrays or list(batch.columns)
        arrays[i] = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)
    return batch if arrays is None else pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
