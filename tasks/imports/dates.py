"""Dates as people and vendors write them, read the same way on every row of a column.

Every accepted layout is declared here once (``DATE_LAYOUTS``, listed in the
README and in every date error). A slash date such as ``05/03/2026`` is
ambiguous: :func:`slash_date_order` decides per column from the values
themselves (a first part over 12 means day-first, a second part over 12
month-first), and only a column that stays ambiguous takes the request's
``date_order`` (default month-first), with a warning naming the column and the
order used. A column holding both kinds is an error naming rows of each: its
dates cannot all be right.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import DataValidationError
from ferry.import_plan import DateOrder
from tasks.imports.cells import mask, normalise_text, null_where

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
SLASH = r"^(?P<a>[0-9]{1,2})/(?P<b>[0-9]{1,2})/(?P<y>[0-9]{4})$"
#: Date layouts people type, by example (regexes with y/m/d groups; month names become #1..#12 first), besides
#: the slash layout of the column's order (``SLASH_LAYOUTS``); dots and dashes are day-first, as where they are used.
DATE_LAYOUTS: dict[str, str] = {
    "2024-01-05, 2024/1/5": r"^(?P<y>[0-9]{4})[\-/](?P<m>[0-9]{1,2})[\-/](?P<d>[0-9]{1,2})$",
    "05.01.2024, 05-01-2024 (day first)": r"^(?P<d>[0-9]{1,2})[.\-](?P<m>[0-9]{1,2})[.\-](?P<y>[0-9]{4})$",
    "Jan 5, 2024": r"^#(?P<m>[0-9]{1,2}) (?P<d>[0-9]{1,2}),? (?P<y>[0-9]{4})$",
    "5 January 2024": r"^(?P<d>[0-9]{1,2}) #(?P<m>[0-9]{1,2}),? (?P<y>[0-9]{4})$",
}
SLASH_LAYOUTS: dict[str, tuple[str, str]] = {
    "mdy": ("01/05/2024 (month first)", r"^(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})/(?P<y>[0-9]{4})$"),
    "dmy": ("05/01/2024 (day first)", r"^(?P<d>[0-9]{1,2})/(?P<m>[0-9]{1,2})/(?P<y>[0-9]{4})$"),
}
ISO_DATETIME_RE = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)"
    r"\s*(?P<zone>Z|z|UTC|[+\-][0-9]{2}:?[0-9]{2})?$"
)
ROWS_NAMED = 3


def layouts(order: DateOrder) -> list[tuple[str, str]]:
    """(example, regex) of every date layout accepted in a column of ``order``: ISO first, then the slash layout."""
    fixed = list(DATE_LAYOUTS.items())
    return [fixed[0], SLASH_LAYOUTS[order], *fixed[1:]]


def date_message(order: DateOrder) -> str:
    return "not a date (accepted: " + "; ".join(example for example, _ in layouts(order)) + ")"


def datetime_message(order: DateOrder) -> str:
    return "not a date-time (accepted: ISO 8601 such as 2024-01-05T10:30:00Z or 2024-01-05 10:30, or a date: " + (
        "; ".join(example for example, _ in layouts(order)) + ")"
    )


def _to_iso_date(text: pa.Array, order: DateOrder) -> pa.Array:
    """Any accepted layout -> 'YYYY-MM-DD' text (not yet checked for calendar validity)."""
    lowered = pc.utf8_lower(text)
    named = pc.match_substring_regex(lowered, r"[a-z]")
    if pc.any(mask(named)).as_py():
        mapped = lowered
        for i, name in enumerate(MONTHS, start=1):
            mapped = pc.replace_substring_regex(mapped, rf"\b{name}[a-z]*\.?", f"#{i}")
        lowered = pc.if_else(named, mapped, lowered)
    found = pa.nulls(len(text), pa.string())
    for _, layout in layouts(order):
        parts = pc.extract_regex(lowered, layout)
        valid = pc.is_valid(parts)
        if not pc.any(valid).as_py():
            continue
        y = pc.struct_field(parts, "y")
        m = pc.utf8_lpad(pc.struct_field(parts, "m"), 2, "0")
        d = pc.utf8_lpad(pc.struct_field(parts, "d"), 2, "0")
        found = pc.coalesce(found, null_where(pc.binary_join_element_wise(y, m, d, "-"), pc.invert(valid)))
    return found


def _strict_dates(iso: pa.Array) -> pa.Array:
    """'YYYY-MM-DD' -> date32; impossible dates (Feb 30) are null.

    strptime rolls an impossible day over into the next month (Feb 30 -> Mar 1), so a parsed day that
    differs from the text's day marks one; comparing days costs a twentieth of formatting the dates back.
    """
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    ok = mask(pc.equal(pc.day(parsed), pc.cast(pc.utf8_slice_codeunits(iso, 8, 10), pa.int64())))
    return pc.cast(null_where(parsed, pc.invert(ok)), pa.date32())


def parse_dates(text: pa.Array, order: DateOrder = "mdy") -> pa.Array:
    return _strict_dates(_to_iso_date(text, order))


def parse_datetimes(text: pa.Array, order: DateOrder = "mdy") -> pa.Array:
    """ISO 8601 date-times (any offset, converted to UTC) or plain dates (midnight UTC) -> naive UTC."""
    parts = pc.extract_regex(text, ISO_DATETIME_RE)
    has_time = pc.is_valid(parts)
    result = pa.nulls(len(text), pa.timestamp("us"))
    if pc.any(has_time).as_py():
        date_part = pc.struct_field(parts, "date")
        good_date = pc.and_(has_time, pc.is_valid(_strict_dates(null_where(date_part, pc.invert(has_time)))))
        time_part = pc.struct_field(parts, "time")
        time_part = pc.if_else(pc.equal(pc.utf8_length(time_part), 5), pc.binary_join_element_wise(time_part, ":00", ""), time_part)
        zone = pc.struct_field(parts, "zone")
        zone = pc.if_else(pc.or_(pc.equal(zone, ""), pc.is_in(zone, pa.array(["z", "UTC"]))), "Z", zone)
        text_ok = null_where(pc.binary_join_element_wise(date_part, time_part, "T"), pc.invert(good_date))
        stamped = pc.cast(pc.binary_join_element_wise(text_ok, zone, ""), pa.timestamp("us", tz="UTC"))
        result = pc.coalesce(result, pc.cast(pc.cast(stamped, pa.int64()), pa.timestamp("us")))
    midnight = pc.cast(pc.cast(parse_dates(null_where(text, has_time), order), pa.timestamp("s")), pa.timestamp("us"))
    return pc.coalesce(result, midnight)


class SlashDates:
    """What a column's slash dates say about their order, gathered batch by batch over the whole file."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.day_first: list[int] = []  # rows whose first part is over 12 (the first few)
        self.month_first: list[int] = []  # rows whose second part is over 12
        self.ambiguous = False

    def add(self, rows: pa.Array, cells: pa.Array) -> None:
        parts = pc.extract_regex(normalise_text(cells), SLASH)
        found = mask(pc.is_valid(parts))
        if not pc.any(found).as_py():
            return
        first, second = (pc.cast(pc.struct_field(parts, name), pa.int32()) for name in ("a", "b"))
        first_big, second_big = mask(pc.greater(first, 12)), mask(pc.greater(second, 12))
        self.day_first += pc.filter(rows, first_big).to_pylist()[: max(0, ROWS_NAMED - len(self.day_first))]
        self.month_first += pc.filter(rows, second_big).to_pylist()[: max(0, ROWS_NAMED - len(self.month_first))]
        self.ambiguous = self.ambiguous or pc.any(pc.and_(found, pc.invert(pc.or_(first_big, second_big)))).as_py()

    def decide(self, given: DateOrder | None) -> tuple[DateOrder, str | None]:
        """The column's order and, when its values left it open, a warning naming the order used.

        Raises DataValidationError when the column holds day-first and month-first dates both.
        """
        if self.day_first and self.month_first:
            raise DataValidationError(
                f"Column {self.column!r} mixes day-first dates (rows {', '.join(map(str, self.day_first))}) and "
                f"month-first dates (rows {', '.join(map(str, self.month_first))}), so some of its dates would be read wrong.",
                "Make the column's dates share one order (or split it), then import again.",
            )
        if self.day_first or self.month_first:
            return ("dmy" if self.day_first else "mdy"), None
        order: DateOrder = given or "mdy"
        if not self.ambiguous:
            return order, None
        hint = "" if given else ": give --date-order dmy (API dateOrder) if they are day-first"
        return order, (
            f"Column {self.column!r} has slash dates that read either way (such as 05/03/2026); "
            f"they were read as {SLASH_LAYOUTS[order][0]}{hint}."
        )
