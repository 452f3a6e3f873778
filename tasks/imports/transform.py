"""Transform (import step 4): shape checked rows into the staging table's columns.

The mapping is applied here: several source columns land in one multi-value
field (``phone.mobile``, ``phone.work``) and address parts in one address,
because each is a catalog column of its own; static values are added to every
row; values arrive already normalised and typed by :func:`coerce_column`
(trimmed text, lower-cased e-mails, parsed dates and numbers), so the values
that passed validation are exactly the ones loaded. Reference fields keep the
referenced record's *key* text (a company name); they are resolved to ids
set-based inside the load transaction, so that references created with
``create_missing_references`` roll back with everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NONE

from ferry.import_plan import ImportPlan
from ferry.progress import Progress
from ferry.spool import read_spool, write_spool
from tasks.imports.validate import OK, ROW, coerce_static, stage_type


def stage_schema(plan: ImportPlan) -> pa.Schema:
    """Columns of the staging spool (and table): the file row number, then one per planned column."""
    return pa.schema([pa.field(ROW, pa.int64())] + [pa.field(c.stage_column, stage_type(c)) for c in plan.columns])


def static_scalars(plan: ImportPlan) -> dict[str, pa.Scalar]:
    """Static values, checked and typed once; raises ParameterError naming a bad one."""
    return {c.key: coerce_static(c, c.static, plan.resource) for c in plan.columns if not c.from_file}


def transform_batch(batch: pa.RecordBatch, plan: ImportPlan, schema: pa.Schema, statics: dict[str, pa.Scalar]) -> pa.RecordBatch:
    names = batch.schema.names
    keep = batch.column(names.index(OK))
    batch = batch.filter(keep)
    n = batch.num_rows
    arrays = [batch.column(names.index(ROW))]
    for col, target in zip(plan.columns, list(schema)[1:]):
        if not col.from_file:
            arrays.append(pa.repeat(statics[col.key].cast(target.type), n) if statics[col.key].is_valid else pa.nulls(n, target.type))
        else:
            arrays.append(pc.cast(batch.column(names.index(col.key)), target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class Transformed:
    spool: Path
    rows: int


def transform_spool(checked: Path, plan: ImportPlan, out_dir: Path, progress: Progress | None = None) -> Transformed:
    schema = stage_schema(plan)
    statics = static_scalars(plan)

    def shaped() -> Iterator[pa.RecordBatch]:
        for batch in read_spool(checked):
            out = transform_batch(batch, plan, schema, statics)
            if progress is not None:
                progress.advance(batch.num_rows)
            yield out

    target = out_dir / "transformed.arrow"
    rows = write_spool(target, schema, shaped())
    return Transformed(target, rows)


@task(name="import-transform", cache_policy=NONE, persist_result=False)
def transform_rows(checked: Path, plan: ImportPlan, out_dir: Path, total_rows: int | None = None) -> Transformed:
    """Step 4: the rows that passed validation, in the staging table's columns and types."""
    progress = Progress("transform", total_rows, key="import-progress")
    result = transform_spool(checked, plan, out_dir, progress)
    progress.finish()
    return result
