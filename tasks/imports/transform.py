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

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NONE

from ferry.import_plan import ImportPlan
from ferry.pipe import Pipe, StreamHeader
from ferry.progress import Progress
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


def transform_stream(source: Pipe, plan: ImportPlan, into: Pipe, key: str | None = None) -> int:
    """Shape each checked batch from ``source`` for the staging table and hand it on through ``into``; returns the rows kept.

    ``key``: the run's progress artifact (None outside a run's task).
    """
    kept = 0
    with into.writing("transform"), source.reading("transform") as batches:
        schema = stage_schema(plan)
        statics = static_scalars(plan)
        header = source.header()
        into.open(StreamHeader(schema, [], header.total))
        progress = Progress("transform", header.total, key=key)
        for batch in batches:
            shaped = transform_batch(batch, plan, schema, statics)
            kept += shaped.num_rows
            into.put(shaped)
            progress.advance(batch.num_rows)
        progress.finish()
    return kept


@task(name="import-transform", cache_policy=NONE, persist_result=False)
def transform_rows(source: Pipe, plan: ImportPlan, into: Pipe) -> int:
    """Step 4: the rows that passed validation, in the staging table's columns and types, on their way to the load."""
    return transform_stream(source, plan, into, key="import-progress")
