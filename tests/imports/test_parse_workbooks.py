"""Workbooks: choosing the sheet an import reads, listing every sheet in the preview, and formula cells.

Workbooks for the sheet choice are written at test time (as in test_parse.py); the formula
case is a committed file (tests/cases/formulas.xlsx, made by tests/cases/make_formulas_xlsx.py)
because no library here can write the results a spreadsheet program saves with its formulas.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.service import check_import_file, preview_file, suggest_file_mapping
from ferry.errors import ParameterError, SourceFileError
from ferry.import_params import ImportRequest
from tasks.imports.parse import ROW, iter_batches, preview, sniff, sniff_source

CASES = Path(__file__).parents[1] / "cases"


def rows_of(info) -> list[dict]:
    return [r for b in iter_batches(info) for r in b.to_pylist()]


def _write_xlsx(path: Path, *, sheet_named_2: bool = False) -> Path:
    """Sheets: 'Summary' (a report), 'Contacts' (the data), 'Lookup' (hidden), 'Empty'."""
    import openpyxl

    wb = openpyxl.Workbook()
    summary = wb.active
    summary.title = "Summary"
    summary.append(["Month", "Signups"])
    summary.append(["2024-01", 12])
    contacts = wb.create_sheet("Contacts")
    contacts.append(["Email", "Name"])
    contacts.append(["ada@example.com", "Ada"])
    contacts.append(["alan@example.org", "Alan"])
    lookup = wb.create_sheet("Lookup")
    lookup.append(["Code", "Country"])
    lookup.append(["GB", "United Kingdom"])
    lookup.sheet_state = "hidden"
    wb.create_sheet("Empty")
    if sheet_named_2:
        wb.create_sheet("2").append(["Code"])
    wb.save(path)
    return path


def _write_xls(path: Path) -> Path:
    import xlwt

    book = xlwt.Workbook()
    summary = book.add_sheet("Summary")
    summary.write(0, 0, "Month")
    summary.write(1, 0, "2024-01")
    contacts = book.add_sheet("Contacts")
    for c, v in enumerate(["Email", "Name"]):
        contacts.write(0, c, v)
    contacts.write(1, 0, "ada@example.com")
    contacts.write(1, 1, "Ada")
    book.save(str(path))
    return path


# --- choosing the sheet --------------------------------------------------------------------------


@pytest.mark.parametrize("sheet", ["Contacts", "2", " contacts "])
def test_a_sheet_is_chosen_by_name_or_1_based_index(tmp_path, sheet):
    info = sniff(_write_xlsx(tmp_path / "book.xlsx"), sheet=sheet)
    assert (info.sheet, info.columns) == ("Contacts", ["Email", "Name"])
    assert [(r["Email"], r[ROW]) for r in rows_of(info)] == [("ada@example.com", 2), ("alan@example.org", 3)]
    assert info.warnings == []  # chosen on purpose: no "the workbook has 4 sheets" warning


def test_without_a_choice_the_first_visible_sheet_with_data_is_read_and_the_others_named(tmp_path):
    info = sniff(_write_xlsx(tmp_path / "book.xlsx"))
    assert info.sheet == "Summary"
    assert "'Contacts' (2), 'Lookup' (3, hidden), 'Empty' (4)" in info.warnings[0]


def test_a_hidden_sheet_can_be_chosen_by_its_index(tmp_path):
    info = sniff(_write_xlsx(tmp_path / "book.xlsx"), sheet="3")
    assert (info.sheet, info.columns) == ("Lookup", ["Code", "Country"])


def test_a_sheet_named_like_a_number_wins_over_the_index(tmp_path):
    info = sniff(_write_xlsx(tmp_path / "book.xlsx", sheet_named_2=True), sheet="2")
    assert info.sheet == "2"


@pytest.mark.parametrize(
    ("sheet", "reason"), [("Customers", "no sheet named 'Customers'"), ("7", "there is no sheet 7: the workbook has 4")]
)
def test_an_unknown_sheet_or_an_index_out_of_range_is_a_parameter_error_listing_the_sheets(tmp_path, sheet, reason):
    with pytest.raises(ParameterError) as caught:
        sniff(_write_xlsx(tmp_path / "book.xlsx"), sheet=sheet)
    [problem] = caught.value.problems
    assert (problem.field, problem.value) == ("sheet", sheet)
    assert reason in problem.reason
    assert "'Summary' (1), 'Contacts' (2), 'Lookup' (3, hidden), 'Empty' (4)" in problem.reason


def test_an_empty_chosen_sheet_is_a_source_file_error(tmp_path):
    with pytest.raises(SourceFileError, match="Sheet 'Empty' of book.xlsx is empty"):
        sniff(_write_xlsx(tmp_path / "book.xlsx"), sheet="Empty")


def test_a_sheet_for_a_file_that_is_no_workbook_is_a_parameter_error():
    with pytest.raises(ParameterError, match="only workbooks"):
        sniff(CASES / "hubspot_contacts.csv", sheet="2")


@pytest.mark.parametrize("sheet", ["Contacts", "2"])
def test_xls_sheet_by_name_or_index(tmp_path, sheet):
    info = sniff(_write_xls(tmp_path / "book.xls"), sheet=sheet)
    assert (info.file_type, info.sheet, info.columns) == ("xls", "Contacts", ["Email", "Name"])
    assert [r["Email"] for r in rows_of(info)] == ["ada@example.com"]
    with pytest.raises(ParameterError, match="'Summary' \\(1\\), 'Contacts' \\(2\\)"):
        sniff(tmp_path / "book.xls", sheet="3")


def test_the_parse_stage_reads_the_requests_sheet(tmp_path):
    path = _write_xlsx(tmp_path / "book.xlsx")
    request = ImportRequest(source=str(path), resource="contacts", workspace="w", sheet="Contacts")
    assert sniff_source.fn(request).sheet == "Contacts"


# --- every sheet in the preview ------------------------------------------------------------------


def test_the_preview_lists_every_sheet_and_which_was_read(tmp_path):
    result = preview(_write_xlsx(tmp_path / "book.xlsx"), sheet="2")
    payload = result.to_json()
    assert payload["sheet"] == "Contacts" and payload["totalRows"] == 2
    assert payload["sheets"] == [
        {"name": "Summary", "index": 1, "rows": 1, "hidden": False, "read": False},
        {"name": "Contacts", "index": 2, "rows": 2, "hidden": False, "read": True},
        {"name": "Lookup", "index": 3, "rows": 1, "hidden": True, "read": False},
        {"name": "Empty", "index": 4, "rows": 0, "hidden": False, "read": False},
    ]
    assert preview(CASES / "hubspot_contacts.csv").to_json()["sheets"] == []


def test_the_service_functions_take_the_sheet(tmp_path):
    path = _write_xlsx(tmp_path / "book.xlsx")
    assert preview_file(path, sheet="Contacts").columns == ["Email", "Name"]
    mapping, _ = suggest_file_mapping(path, "contacts", sheet="2")
    assert [(m.source_column, m.target_field_slug) for m in mapping][0] == ("Email", "email")


def test_validate_reads_the_chosen_sheet(tmp_path):
    path = _write_xlsx(tmp_path / "book.xlsx")
    mapping = [{"sourceColumn": "Email", "targetFieldSlug": "email"}]
    result = check_import_file(path, "contacts", sheet="Contacts", mapping=mapping)
    assert (result["totalRows"], result["validRows"]) == (2, 2)


# --- formulas ------------------------------------------------------------------------------------


def test_formula_cells_read_as_the_results_saved_with_them():
    info = sniff(CASES / "formulas.xlsx")
    assert info.sheet == "Contacts" and not any("formula" in w for w in info.warnings)
    rows = rows_of(info)
    assert [(r["Full name"], r["Lifetime value"], r["VIP"], r["Last order"], r["Note"]) for r in rows] == [
        ("Ada Lovelace", "37.5", "true", "2024-01-08", None),  # an empty text result is empty, and no missing result
        ("Alan Turing", "0", "false", "2024-01-05", "no orders"),
        ("Grace Hopper", "150", "true", "2024-01-17", None),  # a shared formula filled down the column
    ]


def test_formulas_saved_without_results_are_reported_naming_their_columns():
    info = sniff(CASES / "formulas.xlsx", sheet="Uncalculated")
    [warning] = info.warnings
    assert warning.startswith("2 formula cell(s) in sheet 'Uncalculated' ('Total') have no saved result")
    assert [r["Total"] for r in rows_of(info)] == [None, None]
    assert warning in preview(CASES / "formulas.xlsx", sheet="Uncalculated").warnings
