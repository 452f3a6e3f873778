"""Slash dates are read in the order their column's values show, or as asked, and never in two orders at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from imports.stages import validated_rows

from ferry.errors import DataValidationError
from ferry.import_params import ColumnMapping, ImportRequest
from ferry.import_plan import build_plan
from ferry.spool import write_spool
from tasks.imports.dates import DATE_LAYOUTS
from tasks.imports.parse import iter_batches, sniff

CASES = Path(__file__).parents[1] / "cases"


def validated(case: str, tmp_path, target: str = "created_at", **options):
    """Validate a case file whose 'Signed Up' column maps to ``target``; (values read, errors, warnings)."""
    info = sniff(CASES / case)
    entries = [ColumnMapping("Email", "email"), ColumnMapping("Signed Up", target)]
    request = ImportRequest(source=str(CASES / case), resource="contacts", workspace="w", mapping=entries, **options).validated()
    plan = build_plan(request, list(info.columns), entries)
    spool = tmp_path / "source.arrow"
    write_spool(spool, info.schema(), iter_batches(info, 1000))
    result, rows = validated_rows(spool, plan, tmp_path)
    errors = pa.ipc.open_file(pa.memory_map(str(result.errors))).read_all().to_pylist()
    return [r[target] for r in rows], errors, result.warnings


def test_a_first_part_over_12_makes_the_whole_column_day_first(tmp_path):
    values, errors, warnings = validated("dates_day_first.csv", tmp_path, target="created_at")
    assert [v.date() if v else None for v in values] == [date(2026, 3, 5), date(2026, 3, 13), None]
    assert errors == [] and warnings == []


def test_a_second_part_over_12_makes_it_month_first(tmp_path):
    values, errors, warnings = validated("dates_month_first.csv", tmp_path, target="created_at")
    assert [v.date() for v in values] == [date(2026, 5, 3), date(2026, 3, 25)] and errors == [] and warnings == []


@pytest.mark.parametrize(
    ("order", "expected"), [(None, [date(2026, 5, 3), date(2026, 11, 2)]), ("dmy", [date(2026, 3, 5), date(2026, 2, 11)])]
)
def test_an_ambiguous_column_takes_the_date_order_and_says_which(tmp_path, order, expected):
    values, errors, warnings = validated("dates_ambiguous.csv", tmp_path, target="created_at", date_order=order)
    assert [v.date() for v in values] == expected and errors == []
    shown = "05/01/2024 (day first)" if order == "dmy" else "01/05/2024 (month first)"
    assert len(warnings) == 1 and "'Signed Up'" in warnings[0] and f"read as {shown}" in warnings[0]
    assert ("--date-order dmy" in warnings[0]) == (order is None)


def test_a_column_of_both_orders_is_an_error_naming_rows_of_each(tmp_path):
    with pytest.raises(DataValidationError) as mixed:
        validated("dates_mixed_orders.csv", tmp_path, target="created_at")
    assert "mixes day-first dates (rows 2, 4) and month-first dates (rows 3)" in str(mixed.value)


def test_every_date_error_names_the_accepted_formats(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("Email,Signed Up\na@example.com,yesterday\n")
    entries = [ColumnMapping("Email", "email"), ColumnMapping("Signed Up", "created_at")]
    request = ImportRequest(source=str(source), resource="contacts", workspace="w", mapping=entries).validated()
    info = sniff(source)
    spool = tmp_path / "source.arrow"
    write_spool(spool, info.schema(), iter_batches(info, 1000))
    result, _ = validated_rows(spool, build_plan(request, list(info.columns), entries), tmp_path)
    error = pa.ipc.open_file(pa.memory_map(str(result.errors))).read_all().to_pylist()[0]["error"]
    assert error.startswith("not a date-time (accepted: ISO 8601") and "01/05/2024 (month first)" in error
    assert all(example in error for example in DATE_LAYOUTS if example != "slash")


def test_the_readme_lists_every_accepted_date_format():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert all(f"`{example}`" in readme for example in DATE_LAYOUTS if example != "slash")
    assert "`01/05/2024 (month first)`" in readme and "`05/01/2024 (day first)`" in readme
