"""Transform: shape extracted rows for the reader of the file.

Dates and times become text in the requested format (ISO 8601, moment.js
``L``/``LL``/``LLL`` or a strftime pattern) for every format but Parquet, which
keeps native types. Spreadsheet formula triggers are neutralised in CSV, TSV
and XLSX, in the header row as in the data. Column labels are applied last. All of it is vectorised per batch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NONE

from ferry.columns import OutputColumn
from ferry.params import FORMULA_FORMATS, ExportRequest
from ferry.pipe import Pipe, StreamHeader
from ferry.progress import Progress, counted
from ferry.settings import get_settings

#: moment.js long-date tokens, as strftime patterns plus zero-stripping fix-ups.
MOMENT = {
    "L": ("%m/%d/%Y", "%m/%d/%Y"),
    "LL": ("%B %d, %Y", "%B %d, %Y"),
    "LLL": ("%B %d, %Y", "%B %d, %Y %I:%M %p"),
}
ISO_DATETIME = "%Y-%m-%dT%H:%M:%SZ"
ISO_DATE = "%Y-%m-%d"

# A cell is dangerous when it (or any line in it) starts with a formula trigger,
# after optional blanks; tab, CR and LF at the very start count too (OWASP).
FORMULA_TRIGGER = r"(^|[\r\n])[ \t]*[=+\-@]|^[\t\r\n]"
# Plain numbers and phone numbers cannot call functions: leave them readable.
HARMLESS_NUMBER = r"^[+\-]?[0-9][0-9 ().\-]*$"


def _strftime(array: pa.Array, pattern: str) -> pa.Array:
    if pa.types.is_timestamp(array.type):
        # Whole seconds (Arrow's %S would print "05.123456"); truncating, since a safe cast
        # refuses every timestamp with a fraction, e.g. PostgreSQL's now().
        array = pc.floor_temporal(array, unit="second").cast(pa.timestamp("s", tz="UTC"))
    return pc.strftime(array, format=pattern)


def format_temporal(array: pa.Array, date_format: str) -> pa.Array:
    """Dates and timestamps (UTC) as text in ``date_format``."""
    is_date = pa.types.is_date(array.type)
    if date_format == "iso":
        return array.cast(pa.string()) if is_date else _iso_datetime(array)
    if date_format in MOMENT:
        date_pattern, datetime_pattern = MOMENT[date_format]
        text = _strftime(array, date_pattern if is_date else datetime_pattern)
        if date_format in ("LL", "LLL"):
            text = pc.replace_substring_regex(text, r" 0(\d),", r" \1,")  # "May 04," -> "May 4,"
        if date_format == "LLL" and not is_date:
            text = pc.replace_substring_regex(text, r" 0(\d):", r" \1:")  # "04:05 PM" -> "4:05 PM"
        return text
    return _strftime(array, date_format)


def _iso_datetime(array: pa.Array) -> pa.Array:
    """``%Y-%m-%dT%H:%M:%SZ`` without strftime: Arrow's cast of a naive timestamp to text
    ("2026-05-04 13:05:00") is ~5x faster than strftime, which converts time zones per value."""
    seconds = pc.floor_temporal(array, unit="second").cast(pa.timestamp("s"))  # values stay UTC
    text = pc.replace_substring(seconds.cast(pa.string()), " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "")


#: First bytes that can begin a trigger (FORMULA_TRIGGER: a sign, or blanks before one, or a control character).
_TRIGGER_FIRST_BYTES = np.frombuffer(b"=+-@ \t\r\n", dtype=np.uint8)


def _may_trigger(array: pa.Array) -> bool:
    """Whether any cell could match FORMULA_TRIGGER, judged from the raw buffers: its first byte, or a line break inside.

    One pass of numpy over the offsets and the text, ~10x cheaper than the
    regex over every cell; the regex then runs only on columns that need it.
    """
    if array.type != pa.string() or len(array) == 0:
        return True
    _, offsets_buffer, data_buffer = array.buffers()
    if data_buffer is None:
        return False
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    starts = offsets[:-1][offsets[1:] > offsets[:-1]] - offsets[0]
    return bool(np.isin(data[starts], _TRIGGER_FIRST_BYTES).any() or (data == ord("\n")).any() or (data == ord("\r")).any())


def neutralize_formulas(array: pa.Array) -> pa.Array:
    """Prefix cells that a spreadsheet would run as a formula with a single quote.

    Most columns hold no trigger at all: they return after a scan of their raw
    bytes (:func:`_may_trigger`), without a regex or the quoted copy of every cell.
    """
    if not _may_trigger(array):
        return array
    trigger = pc.match_substring_regex(array, FORMULA_TRIGGER)
    if not pc.any(trigger).as_py():
        return array
    dangerous = pc.and_(trigger, pc.invert(pc.match_substring_regex(array, HARMLESS_NUMBER)))
    if not pc.any(dangerous).as_py():
        return array
    return pc.if_else(dangerous, pc.binary_join_element_wise("'", array, ""), array)


def neutralize_label(label: str) -> str:
    """A header cell defused like a data cell: a spreadsheet runs a formula in row 1 as readily as in row 2."""
    return neutralize_formulas(pa.array([label], pa.string()))[0].as_py()


def _header(label: str, request: ExportRequest) -> str:
    """The column's header as the file's reader gets it (``--labels`` are user text, so they are defused too)."""
    return neutralize_label(label) if request.neutralize_formulas and request.format in FORMULA_FORMATS else label


def _shape(array: pa.Array, request: ExportRequest) -> pa.Array:
    """One column as the file's reader gets it: dates as text, formula triggers neutralised."""
    if request.format != "parquet" and (pa.types.is_timestamp(array.type) or pa.types.is_date(array.type)):
        array = format_temporal(array, request.date_format)
    if request.neutralize_formulas and request.format in FORMULA_FORMATS and pa.types.is_string(array.type):
        array = neutralize_formulas(array)
    return array


@lru_cache(maxsize=1)
def _column_pool() -> ThreadPoolExecutor:
    """Columns are shaped in parallel: Arrow's kernels release the GIL, so each core takes a column."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="ferry-transform")


def transform_batch(batch: pa.RecordBatch, request: ExportRequest, columns: list[OutputColumn]) -> pa.RecordBatch:
    arrays = list(_column_pool().map(lambda array: _shape(array, request), batch.columns))
    fields = [
        pa.field(_header(col.label, request), array.type, metadata=batch.schema.field(i).metadata)
        for i, (col, array) in enumerate(zip(columns, arrays))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def transformed_schema(source: pa.Schema, request: ExportRequest, columns: list[OutputColumn]) -> pa.Schema:
    empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in source], schema=source)
    return transform_batch(empty, request, columns).schema


def first_rows(batch: pa.RecordBatch, limit: int) -> list[dict[str, str]]:
    """The first ``limit`` rows of ``batch`` as text (empty cells as ""): the run's preview of its file."""
    return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in batch.slice(0, limit).to_pylist()]


@task(name="transform", cache_policy=NONE, persist_result=False)
def transform(source: Pipe, request: ExportRequest, into: Pipe) -> list[dict[str, str]]:
    """Shape each batch for the file's reader on its way to the next stage; returns the first rows (FERRY_PREVIEW_ROWS) as a preview."""
    preview: list[dict[str, str]] = []
    preview_rows = get_settings().preview_rows
    with into.writing("transform"), source.reading("transform") as batches:
        header = source.header()
        into.open(StreamHeader(transformed_schema(header.schema, request, header.columns), header.columns, header.total))
        progress = Progress("transform", header.total, key="export-progress")
        for batch in counted(batches, progress):
            shaped = transform_batch(batch, request, header.columns)
            if preview_rows and not preview:
                preview = first_rows(shaped, preview_rows)
            into.put(shaped)
        progress.finish()
    return preview
