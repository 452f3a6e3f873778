"""Validate (import step 3): per-row errors from checks generated from the catalog.

Every check is vectorised with pyarrow compute over one record batch at a time
(trim, regex, ``is_in``, strict date parsing by round trip), so millions of
rows cost seconds, not minutes. The one exception is the syntax of JSON-typed
columns, checked value by value with orjson (C, well under a microsecond each)
because no vectorised JSON validator exists; only JSON columns pay for it.

One function, :func:`coerce_column`, both checks and converts a column, so the
values that pass validation are exactly the values the transform step loads.
Uniqueness needs the whole file and the store, so it is checked set-based in
the staging table (``tasks/imports/load.py``), never per batch.

The value rules themselves (what an e-mail address, a phone number, a URL or a
boolean word is) are declared once, in :mod:`ferry.checks`; here they are applied
to whole columns. The great-expectations data-quality report on a sample lives in
:mod:`tasks.imports.quality`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NONE

from ferry.catalog import FieldType, arrow_type
from ferry.checks import (
    CONSENT_FALSE_WORDS,
    CONSENT_TRUE_WORDS,
    EMAIL,
    FALSE_WORDS,
    PHONE,
    PHONE_SEPARATORS,
    TRUE_WORDS,
    UNDECIDED_WORDS,
    URL,
    list_cell,
)
from ferry.errors import ParameterError, Problem
from ferry.import_plan import ImportPlan, PlannedColumn
from ferry.pipe import Pipe, StreamHeader
from ferry.progress import Progress
from ferry.spool import read_spool, spool_rows
from tasks.imports.addresses import split_addresses
from tasks.imports.cells import attributes_json, normalise_text
from tasks.imports.cells import mask as _mask
from tasks.imports.cells import null_where as _null_where
from tasks.imports.dates import SlashDates, date_message, datetime_message, parse_dates, parse_datetimes

ROW = "__row__"
ROW_ERROR = "__error__"
OK = "__ok__"
MAX_VALUE_CHARS = 200

INTEGER_RE = r"^[+\-]?[0-9]{1,18}(\.0+)?$"
NUMBER_RE = r"^[+\-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+\-]?[0-9]+)?$"
THOUSANDS_RE = r"^[+\-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$"
#: JSON fields that also accept "a, b; c" text, stored as a JSON array of strings.
LIST_TEXT_FIELDS = {("contacts", "tags"), ("schemas", "attributes")}

MESSAGES = {
    FieldType.EMAIL: "not a valid e-mail address",
    FieldType.PHONE: "not a valid phone number (5-15 digits, optional leading +)",
    FieldType.URL: "not a valid URL",
    FieldType.INTEGER: "not a whole number",
    FieldType.NUMBER: "not a number",
    FieldType.BOOLEAN: "not a boolean (true/false, yes/no, 1/0, subscribed/unsubscribed)",
    FieldType.JSON: "not valid JSON",
}


def stage_type(col: PlannedColumn) -> pa.DataType:
    return arrow_type(col.type, naive_utc=True)


# --- coercion: one function checks and converts ------------------------------------


@dataclass
class Coerced:
    values: pa.Array  # typed; null where empty or invalid
    invalid: pa.Array  # bool, never null: a non-empty value that fails the check
    message: str = ""
    check: str = ""


def _false(n: int) -> pa.Array:
    return pa.array(np.zeros(n, dtype=bool))


def _regex_check(text: pa.Array, pattern: str) -> pa.Array:
    return pc.and_(pc.is_valid(text), pc.invert(_mask(pc.match_substring_regex(text, pattern))))


#: Why a multi-value cell (tags) is refused, and the shapes it may take.
LIST_MESSAGE = 'not a list: write a JSON array (["a", "b"]) or values separated by , ; or | (each may be in "quotes")'


def _list_cells(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Multi-value cells in any vendor's shape as JSON arrays (``ferry.checks.list_cell``), and which could not be read.

    Row by row, like the JSON check it replaces for these columns: no vectorised CSV-in-a-cell reader exists.
    """
    values, bad = [], []
    for value in text.to_pylist():
        items = None if value is None else list_cell(value)
        values.append(None if items is None else json.dumps(items, ensure_ascii=False))  # as the store writes JSON text
        bad.append(value is not None and items is None)
    return pa.array(values, pa.string()), pa.array(bad, pa.bool_())


def _json_invalid(text: pa.Array) -> pa.Array:
    """Row by row, but only JSON-typed columns: no vectorised JSON validator exists."""
    flags = []
    for value in text.to_pylist():
        if value is None:
            flags.append(False)
            continue
        try:
            orjson.loads(value)
            flags.append(False)
        except orjson.JSONDecodeError:
            flags.append(True)
    return pa.array(flags, pa.bool_())


def apply_value_map(text: pa.Array, pairs: tuple[tuple[str, str | None], ...]) -> pa.Array:
    """Cells the mapping's value map lists (trimmed, any case) become its values; the others stay as they are."""
    keys = pa.array([key for key, _ in pairs], pa.string())
    found = pc.index_in(pc.utf8_lower(text), value_set=keys)
    mapped = pc.take(pa.array([value for _, value in pairs], pa.string()), found)
    return pc.if_else(pc.is_valid(found), mapped, text)


def value_map_problems(plan: ImportPlan) -> list[Problem]:
    """Value-map values the column's own check refuses (before any row is read): every one at once."""
    problems = []
    for col in plan.columns:
        if not col.value_map:
            continue
        keys, values = zip(*col.value_map)
        checked = coerce_column(pa.array(values, pa.string()), replace(col, value_map=()), plan.resource)
        for key, value, bad in zip(keys, values, checked.invalid.to_pylist()):
            if bad:
                problems.append(Problem(f"valueMap[{col.source!r}].{key}", value, f"{checked.message} (for {col.key})"))
    return problems


def coerce_column(raw: pa.Array, col: PlannedColumn, resource: str) -> Coerced:
    """Normalise and type one column; ``invalid`` marks non-empty values that fail the column's check."""
    text = normalise_text(raw)
    if col.value_map:
        text = apply_value_map(text, col.value_map)
    n = len(text)
    kind = col.type
    if kind is FieldType.EMAIL:
        text = pc.utf8_lower(text)
        bad = _regex_check(text, EMAIL)
        return Coerced(_null_where(text, bad), bad, MESSAGES[kind], "email")
    if kind is FieldType.PHONE:
        digits = pc.replace_substring_regex(text, PHONE_SEPARATORS, "")
        digits = pc.replace_substring_regex(digits, r"^00", "+")
        bad = _regex_check(digits, PHONE)
        return Coerced(_null_where(digits, bad), bad, MESSAGES[kind], "phone")
    if kind is FieldType.URL:
        bad = _regex_check(text, URL)
        return Coerced(_null_where(text, bad), bad, MESSAGES[kind], "url")
    if kind in (FieldType.INTEGER, FieldType.NUMBER):
        cleaned = pc.replace_substring_regex(text, r"^[$€£]\s*", "")
        thousands = _mask(pc.match_substring_regex(cleaned, THOUSANDS_RE))
        cleaned = pc.if_else(thousands, pc.replace_substring(cleaned, ",", ""), cleaned)
        pattern = INTEGER_RE if kind is FieldType.INTEGER else NUMBER_RE
        bad = _regex_check(cleaned, pattern)
        good = _null_where(cleaned, bad)
        if kind is FieldType.INTEGER:
            good = pc.replace_substring_regex(good, r"\.0+$", "")
        values = pc.cast(good, arrow_type(kind, naive_utc=True))
        if kind is FieldType.NUMBER:  # 1e999 parses as inf: not a number a store should keep
            inf = _mask(pc.is_inf(values))
            bad = pc.or_(bad, inf)
            values = _null_where(values, inf)
        return Coerced(values, bad, MESSAGES[kind], "integer" if kind is FieldType.INTEGER else "number")
    if kind is FieldType.BOOLEAN:  # vendors' consent words too: SUBSCRIBED, never_subscribed, Opted in
        lowered = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(text), r"[_\-\s]+", " "))
        is_true = _mask(pc.is_in(lowered, pa.array(TRUE_WORDS + CONSENT_TRUE_WORDS)))
        is_false = _mask(pc.is_in(lowered, pa.array(FALSE_WORDS + CONSENT_FALSE_WORDS)))
        undecided = _mask(pc.is_in(lowered, pa.array(UNDECIDED_WORDS)))
        bad = pc.and_(pc.is_valid(lowered), pc.invert(pc.or_(pc.or_(is_true, is_false), undecided)))
        values = _null_where(pc.if_else(is_true, True, False), pc.or_(pc.or_(pc.is_null(lowered), bad), undecided))
        return Coerced(values, bad, MESSAGES[kind], "boolean")
    if kind is FieldType.DATE:
        values = parse_dates(text, col.date_order)
        bad = pc.and_(pc.is_valid(text), pc.is_null(values))
        return Coerced(values, bad, date_message(col.date_order), "date")
    if kind is FieldType.DATETIME:
        values = parse_datetimes(text, col.date_order)
        bad = pc.and_(pc.is_valid(text), pc.is_null(values))
        return Coerced(values, bad, datetime_message(col.date_order), "datetime")
    if kind is FieldType.ENUM and col.enum:
        lowered = pc.utf8_lower(text)
        bad = pc.and_(pc.is_valid(lowered), pc.invert(_mask(pc.is_in(lowered, pa.array(col.enum)))))
        return Coerced(_null_where(lowered, bad), bad, f"not one of: {', '.join(col.enum)}", "enum")
    if kind is FieldType.JSON:
        if (resource, col.field_slug) in LIST_TEXT_FIELDS:
            values, bad = _list_cells(text)
            return Coerced(_null_where(values, bad), bad, LIST_MESSAGE, "json")
        bad = _json_invalid(text) if pc.any(pc.is_valid(text)).as_py() else _false(n)
        return Coerced(_null_where(text, bad), bad, MESSAGES[kind], "json")
    if col.reference:
        from ferry.catalog import RESOURCES

        target = RESOURCES[col.reference]
        key_type = target.get_field(target.key_fields[0]).type
        if key_type is FieldType.EMAIL:
            text = pc.utf8_lower(text)
    return Coerced(text, _false(n))


def coerce_static(plan_col: PlannedColumn, value: Any, resource: str) -> pa.Scalar:
    """A static value through the same check as file values; raises ParameterError if it fails."""
    raw = pa.array(
        [
            None
            if value is None
            else (json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower() if isinstance(value, bool) else str(value))
        ],
        pa.string(),
    )
    coerced = coerce_column(raw, plan_col, resource)
    if coerced.invalid[0].as_py():
        raise ParameterError([Problem(f"static_values.{plan_col.key}", value, coerced.message)])
    return coerced.values[0]


# --- one batch ------------------------------------------------------------------


ERROR_SCHEMA = pa.schema(
    [("row", pa.int64()), ("field", pa.string()), ("value", pa.string()), ("error", pa.string()), ("check", pa.string())]
)


@dataclass
class CheckedBatch:
    errors: pa.Table
    ok: pa.Array
    values: dict[str, pa.Array]
    unsplit: Counter = field(default_factory=Counter)  # source column -> whole-address cells in no known shape


def _errors_for(rows: pa.Array, mask: pa.Array, field_name: str, values: pa.Array | None, message: str, check: str) -> pa.Table | None:
    if not pc.any(mask).as_py():
        return None
    picked_rows = pc.filter(rows, mask)
    k = len(picked_rows)
    if values is None:
        shown = pa.nulls(k, pa.string())
    else:
        shown = pc.utf8_slice_codeunits(pc.cast(pc.filter(values, mask), pa.string()), 0, MAX_VALUE_CHARS)
    if isinstance(message, pa.Array):
        msgs = pc.filter(message, mask)
    else:
        msgs = pa.array([message] * k, pa.string())
    return pa.table(
        [picked_rows, pa.array([field_name] * k, pa.string()), shown, msgs, pa.array([check] * k, pa.string())], schema=ERROR_SCHEMA
    )


def check_batch(batch: pa.RecordBatch, plan: ImportPlan) -> CheckedBatch:
    """Every catalog check on one batch of source rows (all strings): errors, row mask and typed values."""
    n = batch.num_rows
    names = batch.schema.names
    rows = batch.column(names.index(ROW))
    ragged = _false(n)
    tables: list[pa.Table] = []
    if ROW_ERROR in names:
        row_error = batch.column(names.index(ROW_ERROR))
        ragged = pc.is_valid(row_error)
        found = _errors_for(rows, ragged, "", None, row_error, "row")
        if found is not None:
            tables.append(found)
    bad_row = ragged
    values: dict[str, pa.Array] = {}
    addresses: dict[str, dict[str, pa.Array]] = {}
    unsplit: Counter = Counter()
    for col in plan.columns:
        if col.address_cell:  # one part of a whole address, split once per source column
            if col.source not in addresses:
                addresses[col.source], unsplit[col.source] = split_addresses(normalise_text(batch.column(names.index(col.source))))
            values[col.key] = addresses[col.source][col.key.partition(".")[2]]
            continue
        if col.attributes:  # text as given, so nothing to check: one JSON object of the row's non-empty cells
            values[col.key] = attributes_json(batch, col.attributes)
            continue
        if col.source is None:
            continue
        raw = batch.column(names.index(col.source))
        coerced = coerce_column(raw, col, plan.resource)
        values[col.key] = coerced.values
        invalid = pc.and_(coerced.invalid, pc.invert(ragged))
        found = _errors_for(rows, invalid, col.key, raw, coerced.message, coerced.check)
        if found is not None:
            tables.append(found)
        if not plan.skip_validation or col.required:  # a required value cannot be skipped into the store
            bad_row = pc.or_(bad_row, invalid)
        if col.required:
            missing = pc.and_(pc.and_(pc.is_null(coerced.values), pc.invert(coerced.invalid)), pc.invert(ragged))
            found = _errors_for(rows, missing, col.key, None, "required; the value is empty", "required")
            if found is not None:
                tables.append(found)
                bad_row = pc.or_(bad_row, missing)  # a required value cannot be skipped into the store
    errors = (
        pa.concat_tables(tables).sort_by([("row", "ascending")]) if tables else ERROR_SCHEMA.empty_table()
    )  # stable: fields keep mapping order
    return CheckedBatch(errors, pc.invert(bad_row), values, +unsplit)


def checked_schema(plan: ImportPlan) -> pa.Schema:
    fields = [pa.field(ROW, pa.int64()), pa.field(OK, pa.bool_())]
    fields += [pa.field(c.key, stage_type(c)) for c in plan.columns if c.from_file]
    return pa.schema(fields)


# --- the task -------------------------------------------------------------------


@dataclass
class ValidationResult:
    """Counts and paths only: Prefect keeps task results in memory (the checked rows went on through a pipe)."""

    errors: Path
    total_rows: int = 0
    error_rows: int = 0
    error_count: int = 0
    by_check: dict[str, int] = field(default_factory=dict)  # "field:check" -> errors
    warnings: list[str] = field(default_factory=list)  # what the rows showed (the plan's own warnings are the plan's)


def with_date_orders(source: Path, plan: ImportPlan, warnings: list[str]) -> ImportPlan:
    """The plan with each date column's slash-date order, read from the whole file first (``tasks.imports.dates``)."""
    dated = [c for c in plan.columns if c.source and c.type in (FieldType.DATE, FieldType.DATETIME) and not c.address_cell]
    if not dated:
        return plan
    evidence = {c.key: SlashDates(c.source) for c in dated}
    for batch in read_spool(source):
        rows = batch.column(batch.schema.names.index(ROW))
        for col in dated:
            evidence[col.key].add(rows, batch.column(batch.schema.names.index(col.source)))
    orders = {}
    for key, found in evidence.items():
        orders[key], warning = found.decide(plan.date_order)
        warnings += [warning] if warning else []
    columns = tuple(replace(c, date_order=orders[c.key]) if c.key in orders else c for c in plan.columns)
    return replace(plan, columns=columns)


def validate_spool(source: Path, plan: ImportPlan, out_dir: Path, into: Pipe, key: str | None = None) -> ValidationResult:
    """Check every row of a source spool; hand the typed values (+ row mask) on through ``into``, write every error to a spool.

    ``key``: the run's progress artifact (None outside a run's task).
    """
    result = ValidationResult(errors=out_dir / "errors.arrow")
    counts: Counter = Counter()
    unsplit: Counter = Counter()
    with into.writing("validate"):
        plan = with_date_orders(source, plan, result.warnings)
        schema = checked_schema(plan)
        total = spool_rows(source)
        into.open(StreamHeader(schema, [], total))
        progress = Progress("validate", total, key=key)
        out_dir.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(result.errors), "wb") as err_sink, pa.ipc.new_file(err_sink, ERROR_SCHEMA) as err_writer:
            for batch in _pieces(read_spool(source)):
                res = check_batch(batch, plan)
                unsplit.update(res.unsplit)
                result.total_rows += batch.num_rows
                result.error_rows += batch.num_rows - (pc.sum(pc.cast(res.ok, pa.int64())).as_py() or 0)
                if res.errors.num_rows:
                    result.error_count += res.errors.num_rows
                    for item in res.errors.group_by(["field", "check"], use_threads=False).aggregate([("row", "count")]).to_pylist():
                        counts[f"{item['field'] or '(row)'}:{item['check']}"] += item["row_count"]
                    for b in res.errors.to_batches():
                        err_writer.write_batch(b)
                arrays = [batch.column(batch.schema.names.index(ROW)), res.ok]
                arrays += [res.values[c.key] for c in plan.columns if c.from_file]
                into.put(pa.RecordBatch.from_arrays(arrays, schema=schema))
                progress.advance(batch.num_rows)
        progress.finish()
    result.by_check = dict(sorted(counts.items()))
    result.warnings += [
        f"{n:,} of the addresses in column {column!r} fit no shape Ferry splits (parts two spaces apart, or comma or "
        "line separated with a zip code); each is kept whole in address.street."
        for column, n in unsplit.items()
    ]
    return result


#: Rows per batch through the import's pipes. Parse's batches are cut smaller here: validate, transform and the
#: load each hold one or two at a time, so this bounds the import's memory (10M rows: 454 MB at 65,536 rows).
PIPE_BATCH_ROWS = 16_384


def _pieces(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for offset in range(0, batch.num_rows, PIPE_BATCH_ROWS):
            yield batch.slice(offset, PIPE_BATCH_ROWS)


@task(name="import-validate", cache_policy=NONE, persist_result=False)
def validate_rows(source: Path, plan: ImportPlan, out_dir: Path, into: Pipe) -> ValidationResult:
    """Step 3: check every row against the catalog, handing the checked rows on to transform; the errors go to a spool beside the run."""
    return validate_spool(source, plan, out_dir, into, key="import-progress")


def first_errors(errors: Path | None, limit: int) -> list[dict]:
    """The first ``limit`` errors in file order (validation errors arrive in row order); none when no stage wrote any."""
    found: list[dict] = []
    if limit <= 0 or errors is None or not errors.exists():
        return found
    for batch in read_spool(errors):
        for item in batch.slice(0, limit - len(found)).to_pylist():
            found.append({"row": item["row"], "field": item["field"], "value": item["value"], "error": item["error"]})
        if len(found) >= limit:
            break
    return found
