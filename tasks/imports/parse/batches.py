"""The common batch builder the parsers share: :class:`Batcher` collects rows of cell texts into
RecordBatches of the file's schema, :func:`cell_text` turns a parsed value (JSON, spreadsheet cell)
into such a text, and :class:`Stats` records what a reader has consumed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import orjson
import pyarrow as pa

from tasks.imports.parse.fileinfo import batch_schema


class Batcher:
    """Collects rows given as Python values into RecordBatches of at most ``size`` rows."""

    def __init__(self, columns: list[str], size: int) -> None:
        self.schema = batch_schema(columns)
        self.width = len(columns)
        self.size = size
        self._empty = [None] * self.width
        self._reset()

    def _reset(self) -> None:
        self.values: list[list] = []
        self.rows: list[int] = []
        self.errors: list[str | None] = []

    def add(self, row: int, values: list | None, error: str | None = None) -> pa.RecordBatch | None:
        """``values``: at most ``width`` cell texts (missing ones are null), or None for none."""
        if values is None:
            values = self._empty
        elif len(values) < self.width:
            values = values + self._empty[len(values) :]
        self.values.append(values)
        self.rows.append(row)
        self.errors.append(error)
        return self.flush() if len(self.rows) >= self.size else None

    def flush(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        columns = list(zip(*self.values)) if self.width else []
        arrays = [pa.array(c, pa.string()) for c in columns]
        arrays += [pa.array(self.rows, pa.int64()), pa.array(self.errors, pa.string())]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._reset()
        return batch


NUL_CELLS_NAMED = 5  # cells whose NUL bytes were removed, named one by one in the warning


@dataclass
class Stats:
    """What a reader has consumed: lets a preview extrapolate the row count; and the NUL bytes it removed."""

    rows: int = 0
    eof: bool = False
    nul_cells: int = 0  # cells that held NUL bytes (removed)
    nul_named: list[tuple[int, str]] = field(default_factory=list)  # (row, column) of the first few

    def nul_warning(self) -> str | None:
        """The warning for the NUL bytes removed, naming the first cells, or None."""
        if not self.nul_cells:
            return None
        named = ", ".join(f"row {row} column {column!r}" for row, column in sorted(self.nul_named, key=lambda cell: cell[0]))
        more = f" and {self.nul_cells - len(self.nul_named)} more" if self.nul_cells > len(self.nul_named) else ""
        return f"{self.nul_cells} cell(s) held NUL bytes (0x00), which no text can hold; they were removed: {named}{more}."


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "E" not in str(value) else float(value)
    return str(value)


def _json_text(value) -> str:
    """Compact JSON of a nested value (orjson: no ASCII escapes, keys in order)."""
    try:
        return orjson.dumps(value, default=_json_default).decode("utf-8")
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def cell_text(value) -> str | None:
    """A parsed value (JSON, spreadsheet cell) as the text a person would type."""
    kind = type(value)
    if kind is str:
        return value or None
    if value is None:
        return None
    if kind is int:
        return str(value)
    if kind is Decimal:
        return str(value)
    if kind is dict or kind is list:
        return _json_text(value)
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (dict, list)):
        return _json_text(value)
    return str(value)
