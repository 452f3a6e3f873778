"""The export's columns and filters: which columns a request yields, in order, and how its filters apply to them.

:func:`output_columns` turns a valid :class:`~ferry.params.ExportRequest` into
the exact columns the export will have, which every later stage reads;
:func:`filter_problems` and :func:`coerce_filter_value` check and convert a
filter's value against its column's catalog type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ferry.catalog import Column, FieldType, Resource
from ferry.errors import ParameterError, Problem

if TYPE_CHECKING:
    from ferry.params import ExportRequest

FilterOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with", "is_null", "not_null"]
VARIANT_COLUMNS = ("sku", "name", "price", "stock")
TEXT_LIKE = (FieldType.TEXT, FieldType.EMAIL, FieldType.PHONE, FieldType.URL, FieldType.ENUM, FieldType.JSON, FieldType.REFERENCE)
ORDERED = (
    FieldType.INTEGER,
    FieldType.NUMBER,
    FieldType.DATE,
    FieldType.DATETIME,
    FieldType.TEXT,
    FieldType.EMAIL,
    FieldType.PHONE,
    FieldType.URL,
    FieldType.ENUM,
    FieldType.REFERENCE,
)


class FieldFilter(BaseModel):
    """``field op value``, e.g. ``lifecycle_stage eq customer``. Segment rules use the same shape."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="A column key of the resource, e.g. `lifecycle_stage` or `address.city`.")
    op: FilterOp = Field(default="eq", description="Comparison operator.")
    value: Any = Field(default=None, description="Value to compare with; a list for `in` / `not_in`.")


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# --- the export's columns -------------------------------------------------
@dataclass(frozen=True)
class OutputColumn:
    """One column of the export: its key, header label and catalog type."""

    key: str
    label: str
    type: FieldType
    json_path: tuple[str, str] | None = None  # (json column key, key inside it)
    list_key: str | None = None  # list membership column
    source: Column | None = None


def selectable_columns(request: ExportRequest, resource: Resource) -> list[OutputColumn]:
    columns = [OutputColumn(c.key, c.label, c.type, source=c) for c in resource.columns()]
    if request.include_variants and resource.slug == "products":
        columns += variant_columns()
    return columns


def variant_columns() -> list[OutputColumn]:
    from ferry.catalog import VARIANTS

    columns = []
    for key in VARIANT_COLUMNS:
        col = VARIANTS.column(key)
        columns.append(OutputColumn(f"variant.{key}", f"Variant {col.label.lower()}", col.type, source=col))
    return columns


def _json_key_column(resource_columns: dict[str, OutputColumn], name: str) -> OutputColumn | None:
    """``properties.amount`` -> the text at key ``amount`` of JSON column ``properties``; None if not that shape."""
    parent, _, inner = name.partition(".")
    holder = resource_columns.get(parent)
    if holder is None or holder.type is not FieldType.JSON or not re.fullmatch(r"[A-Za-z0-9_\-]+", inner):
        return None
    return OutputColumn(name, f"{holder.label} {inner}", FieldType.TEXT, json_path=(parent, inner))


def resolve_column(request: ExportRequest, key: str) -> OutputColumn | None:
    """Any column a filter or the sort may name: a catalog column, a JSON key, a selected list column."""
    resource = request.resource_def
    by_key = {c.key: c for c in selectable_columns(request, resource)}
    by_key.update({f"list.{k}": OutputColumn(f"list.{k}", f"List: {k}", FieldType.INTEGER, list_key=k) for k in request.lists})
    return by_key.get(key) or _json_key_column(by_key, key)


def output_columns(request: ExportRequest) -> list[OutputColumn]:
    """The export's columns in order, with labels applied; raises ParameterError for unknown fields."""
    resource = request.resource_def
    selectable = selectable_columns(request, resource)
    by_key = {c.key: c for c in selectable}
    json_fields = {c.key for c in selectable if c.type is FieldType.JSON}
    wanted = request.fields if request.fields else [c.key for c in selectable]
    chosen: list[OutputColumn] = []
    problems: list[Problem] = []
    for i, name in enumerate(wanted):
        if name in by_key:
            chosen.append(by_key[name])
        elif resource.has_field(name):  # a multi-part field: all its columns
            chosen += [by_key[c.key] for c in resource.get_field(name).columns()]
        elif name == "variant" and request.include_variants and resource.slug == "products":
            chosen += variant_columns()
        elif name.partition(".")[0] in json_fields and name.partition(".")[2]:
            column = _json_key_column(by_key, name)
            if column is None:
                problems.append(Problem(f"fields[{i}]", name, "JSON keys may use letters, digits, _ and - only"))
            else:
                chosen.append(column)
        else:
            sample = ", ".join(list(by_key)[:12])
            problems.append(Problem(f"fields[{i}]", name, f"not a field of {resource.slug}; known: {sample}, ..."))
    if request.include_variants and resource.slug == "products" and not any(c.key.startswith("variant.") for c in chosen):
        # One row per variant is only readable when the row says which variant it is.
        chosen += variant_columns()
    for list_key in request.lists:
        chosen.append(OutputColumn(f"list.{list_key}", f"List: {list_key}", FieldType.INTEGER, list_key=list_key))
    seen: set[str] = set()
    for col in chosen:
        if col.key in seen:
            problems.append(Problem("fields", col.key, "column selected twice"))
        seen.add(col.key)
    if problems:
        raise ParameterError(problems)
    return [OutputColumn(c.key, request.labels.get(c.key, c.key), c.type, c.json_path, c.list_key, c.source) for c in chosen]


# --- filters ---------------------------------------------------------------


def is_numeric_json_filter(col: OutputColumn, flt: FieldFilter) -> bool:
    """A JSON key compared with numbers compares numerically (``properties.amount gt 100``)."""
    if col.json_path is None or flt.op not in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"):
        return False
    values = flt.value if isinstance(flt.value, list) else [flt.value]
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def filter_problems(request: ExportRequest, flt: FieldFilter, where: str) -> list[Problem]:
    """Everything wrong with one filter (or segment rule item), found before any data is read."""
    col = resolve_column(request, flt.field)
    if col is None:
        return [Problem(f"{where}.field", flt.field, f"not a column of {request.resource_def.slug}")]
    if flt.op in ("is_null", "not_null"):
        return []
    if flt.value is None:
        return [Problem(f"{where}.value", flt.value, f"`{flt.op}` needs a value")]
    if flt.op in ("in", "not_in") and not isinstance(flt.value, list):
        return [Problem(f"{where}.value", flt.value, f"`{flt.op}` needs a list of values")]
    if flt.op not in ("in", "not_in") and isinstance(flt.value, list | dict):
        return [Problem(f"{where}.value", flt.value, f"`{flt.op}` compares with one value, not a list")]
    if flt.op in ("contains", "starts_with") and col.type not in TEXT_LIKE:
        return [Problem(f"{where}.op", flt.op, f"`{flt.op}` applies to text columns; {flt.field!r} is {col.type.value}")]
    if flt.op in ("gt", "gte", "lt", "lte") and col.type not in ORDERED:
        return [Problem(f"{where}.op", flt.op, f"`{flt.op}` does not apply to {col.type.value} column {flt.field!r}")]
    try:
        coerce_filter_value(filter_type(col, flt), flt, where)
    except ParameterError as exc:
        return exc.problems
    return []


def filter_type(col: OutputColumn, flt: FieldFilter) -> FieldType:
    """The type a filter's value is coerced to."""
    return FieldType.NUMBER if is_numeric_json_filter(col, flt) else col.type


def coerce_filter_value(type_: FieldType, flt: FieldFilter, where: str) -> Any:
    """Turn a filter's JSON value into the Python type its column compares with."""

    def one(value: Any) -> Any:
        if value is None:
            return None
        match type_:
            case FieldType.INTEGER:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("not an integer")
                if isinstance(value, bool):
                    raise ValueError("not an integer")
                return int(value)
            case FieldType.NUMBER:
                if isinstance(value, bool):
                    raise ValueError("not a number")
                return float(value)
            case FieldType.BOOLEAN:
                if isinstance(value, bool):
                    return value
                lowered = str(value).strip().lower()
                if lowered in ("true", "1", "yes", "t"):
                    return True
                if lowered in ("false", "0", "no", "f"):
                    return False
                raise ValueError("not a boolean")
            case FieldType.DATETIME:
                parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
                return naive_utc(parsed)  # the store keeps naive UTC
            case FieldType.DATE:
                if isinstance(value, datetime):
                    raise ValueError("not a date")
                return value if isinstance(value, date) else date.fromisoformat(str(value).strip())
        return str(value)

    try:
        if flt.op in ("in", "not_in"):
            return [one(v) for v in flt.value]
        if flt.op in ("is_null", "not_null"):
            return None
        return one(flt.value)
    except (TypeError, ValueError):
        raise ParameterError([Problem(f"{where}.value", flt.value, f"not a valid {type_.value} for field {flt.field!r}")]) from None
