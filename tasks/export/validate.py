"""Validate: check extracted rows against the resource catalog before they ship.

Checks are generated from the catalog (required, e-mail shape, enum values,
boolean/number types are guaranteed by the Arrow schema) and run vectorised
with pyarrow compute, one batch at a time. A broken store is reported with
counts per column and check, never with the customer data itself. The e-mail
and URL rules are the ones imports validate with (:mod:`ferry.checks`), so a
value an import accepted passes here too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from ferry.catalog import FieldType, Resource
from ferry.checks import EMAIL, URL
from ferry.errors import DataValidationError
from ferry.params import OutputColumn
from ferry.pipe import Pipe
from ferry.progress import Progress, counted


@dataclass
class ValidationReport:
    rows: int = 0
    failures: Counter = field(default_factory=Counter)  # (column, check) -> rows

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> list[dict]:
        return [{"column": c, "check": k, "rows": n} for (c, k), n in sorted(self.failures.items())]


def _checks(col: OutputColumn, resource: Resource):
    """(name, predicate-of-invalid) pairs for one output column."""
    source = col.source
    if source is None or col.key.startswith("variant."):
        return []
    field_def = resource.get_field(source.field_slug) if resource.has_field(source.field_slug) else None
    if field_def is None:
        return []
    checks = []
    if field_def.required and len(field_def.columns()) == 1:
        checks.append(("required", lambda a: pc.is_null(a)))
    if col.type is FieldType.EMAIL:
        checks.append(("email", lambda a: pc.invert(pc.match_substring_regex(a, EMAIL))))
    if col.type is FieldType.URL:
        checks.append(("url", lambda a: pc.invert(pc.match_substring_regex(a, URL))))
    if col.type is FieldType.ENUM and field_def.enum:
        allowed = pa.array(field_def.enum)
        checks.append(("enum", lambda a: pc.invert(pc.is_in(a, value_set=allowed))))
    return checks


def check_batch(batch: pa.RecordBatch, columns: list[OutputColumn], resource: Resource, report: ValidationReport) -> None:
    report.rows += batch.num_rows
    for i, col in enumerate(columns):
        array = batch.column(i)
        for name, invalid in _checks(col, resource):
            mask = invalid(array)
            if name != "required":
                mask = pc.and_(pc.is_valid(array), mask)  # empty optional values are fine
            bad = pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0
            if bad:
                report.failures[(col.key, name)] += bad


@task(name="validate", cache_policy=NONE, persist_result=False)
def validate(source: Pipe, resource: Resource, into: Pipe, on_invalid: str = "fail") -> ValidationReport:
    """Check every extracted row on its way to the next stage; fail (or warn) at the end with counts per column and check.

    Failing at the end, not at the first bad row, gives the full counts; the file
    being written meanwhile is never delivered (the run fails before delivery).
    """
    report = ValidationReport()
    with into.writing("validate"), source.reading("validate") as batches:
        header = source.header()
        into.open(header)
        progress = Progress("validate", header.total, key="export-progress")
        for batch in counted(batches, progress):
            check_batch(batch, header.columns, resource, report)
            into.put(batch)
        progress.finish()
        if not report.ok:
            details = "; ".join(f"{f['column']}: {f['rows']} row(s) fail '{f['check']}'" for f in report.summary())
            message = f"The store holds {resource.slug} rows that break the catalog: {details}."
            if on_invalid == "fail":
                raise DataValidationError(message, "Fix the records, or export with on_invalid='warn' to ship them as they are.")
            get_run_logger().warning(message)
    return report
