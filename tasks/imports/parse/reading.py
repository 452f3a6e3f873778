"""Reading a sniffed file as Arrow batches: :func:`iter_batches`, and the one registry of readers by file type."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from tasks.imports.parse.batches import Stats
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
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    for batch in READERS[info.file_type](info, batch_rows, block_bytes, stats):
        if batch.num_rows:
            stats.rows += batch.num_rows
            yield batch
    stats.eof = True
