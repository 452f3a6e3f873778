"""Rejected rows: every row the import refused, as it was in the file, plus its line number and errors.

Written after the load, from the source spool and the error spools of the
validate and load stages, to ``<data_dir>/imports/<run_id>/rejected.csv`` so a
user can fix the rows and import just them again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from prefect import task
from prefect.cache_policies import NONE

from ferry.settings import get_settings
from ferry.spool import read_spool
from tasks.imports.validate import ERROR_SCHEMA, ROW


def rejected_path(run_id: str) -> Path:
    """Where the rejected rows of run ``run_id`` go."""
    return get_settings().data_dir / "imports" / run_id / "rejected.csv"


@task(name="import-rejected-rows", cache_policy=NONE, persist_result=False)
def write_rejected_rows(source: Path, error_spools: list[Path], run_id: str, columns: list[str]) -> Path | None:
    """The rejected-rows file of the run, or None when no row was rejected."""
    target = rejected_path(run_id)
    return target if write_rejected(source, error_spools, target, columns) else None


def messages_by_row(rows: pa.ChunkedArray, labels: pa.ChunkedArray) -> pa.Table:
    """One ``"; "``-joined message per row, rows ascending, each row's labels in their given order.

    A stable sort and list offsets, not ``group_by``: Acero's threaded list aggregate does not keep
    the labels' order, and its thread pools cost ~50 MB of RSS for a few MB of errors.
    """
    order = pc.sort_indices(rows)  # stable
    sorted_rows = rows.take(order).to_numpy()
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    lists = pa.ListArray.from_arrays(pa.array(np.r_[starts, len(sorted_rows)], pa.int32()), labels.take(order).combine_chunks())
    return pa.table({ROW: sorted_rows[starts], "ferry_errors": pc.binary_join(lists, "; ")})


def write_rejected(source: Path, error_spools: list[Path], target: Path, columns: list[str]) -> int:
    """Every rejected row as in the file, plus its line number and errors; returns rows written."""
    tables = [pa.Table.from_batches(list(read_spool(p)), schema=ERROR_SCHEMA) for p in error_spools if p and p.exists()]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return 0
    errors = pa.concat_tables(tables)
    label = pc.if_else(pc.equal(errors["field"], ""), errors["error"], pc.binary_join_element_wise(errors["field"], errors["error"], ": "))
    messages = messages_by_row(errors["row"], label)
    message_rows = messages[ROW].to_numpy()
    names = list(columns)
    schema = pa.schema([(c, pa.string()) for c in names] + [("ferry_row", pa.int64()), ("ferry_errors", pa.string())])
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with pacsv.CSVWriter(str(target), schema) as writer:
        for batch in read_spool(source):
            rows = batch.column(ROW)
            if not len(rows):
                continue
            # The file's rows come in order, so a batch's errors are one slice of the sorted messages.
            start = int(np.searchsorted(message_rows, rows[0].as_py(), side="left"))
            stop = int(np.searchsorted(message_rows, rows[-1].as_py(), side="right"))
            if start == stop:
                continue
            found = messages.slice(start, stop - start)
            part = batch.filter(pc.is_in(rows, value_set=found[ROW]))
            if not part.column(ROW).equals(found[ROW].combine_chunks()):
                raise RuntimeError(
                    "Rejected rows and their errors did not line up (row numbers out of order); the rejected-rows file is incomplete."
                )
            out = pa.table([*(part.column(c) for c in names), found[ROW], found["ferry_errors"]], schema=schema)
            writer.write_table(out)
            written += out.num_rows
    return written
