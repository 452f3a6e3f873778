"""Workbooks: listing their sheets, choosing the one an import reads, and reading its header.

A workbook holds several tables and an import reads one. Without a choice that is the
first visible sheet with data (hidden sheets are usually lookup tables, not the export);
``sheet`` chooses another by name or by its 1-based position in the workbook, the way a
preview lists them. A name that does not exist or a position out of range is a
:class:`ParameterError` that lists the sheets there are, since the person can only fix it
by knowing them.

Formula cells are read as the result the spreadsheet program saved with them (openpyxl's
``data_only``). Libraries that do not calculate (openpyxl itself, many report generators)
save formulas without a result, and those cells would silently read as empty: the head of
the chosen sheet is checked and such cells are reported as a warning naming the columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ParameterError, Problem, SourceFileError
from tasks.imports.parse.batches import cell_text
from tasks.imports.parse.excel_parser import open_xls, xls_text
from tasks.imports.parse.fileinfo import SheetInfo

FORMULA_SCAN_ROWS = 1_000  # rows of the chosen XLSX sheet checked for formulas saved without a result


@dataclass(frozen=True)
class SheetHead:
    """What sniffing needs from a workbook: its sheets, the one chosen, and that sheet's header."""

    sheets: tuple[SheetInfo, ...]
    chosen: int  # position in ``sheets``
    header: list[str | None]  # cell texts of the header row, trailing blanks trimmed
    warnings: list[str]

    @property
    def name(self) -> str:
        return self.sheets[self.chosen].name


def listing(sheets: tuple[SheetInfo, ...]) -> str:
    """The sheets as a person would pick from them: ``'Contacts' (1), 'Notes' (2, hidden)``."""
    return ", ".join(f"{s.name!r} ({s.index}{', hidden' if s.hidden else ''})" for s in sheets)


def choose_sheet(sheets: tuple[SheetInfo, ...], has_data: Callable[[int], bool], wanted: str | None, shown: Path) -> tuple[int, list[str]]:
    """The position of the sheet to read, and warnings about the choice.

    ``wanted``: a sheet name (exact, else the one name equal ignoring case), else a
    1-based index; None or blank for the first visible sheet with data. ``has_data(i)``
    is asked lazily, so that a workbook's other sheets are not read for nothing.
    """
    if wanted is not None and wanted.strip():
        chosen = _find(sheets, wanted)
        if not has_data(chosen):
            raise SourceFileError(
                f"Sheet {sheets[chosen].name!r} of {shown.name} is empty.", f"Choose a sheet with data; the sheets: {listing(sheets)}."
            )
        return chosen, []
    visible = [i for i, s in enumerate(sheets) if not s.hidden] or list(range(len(sheets)))
    chosen = next((i for i in visible if has_data(i)), None)
    if chosen is None:
        raise SourceFileError(
            f"{shown.name} has no visible worksheet with data (sheets: {listing(sheets) or 'none'}).",
            "Put the data on the first sheet, or choose a sheet by name or number.",
        )
    warnings = []
    if len(sheets) > 1:
        others = listing(tuple(s for i, s in enumerate(sheets) if i != chosen))
        warnings.append(
            f"The workbook has {len(sheets)} sheets; sheet {sheets[chosen].name!r} is read, not {others}. "
            "Choose another by name or number (`--sheet NAME|INDEX`)."
        )
    return chosen, warnings


def _find(sheets: tuple[SheetInfo, ...], wanted: str) -> int:
    """A sheet by name first (so a sheet named "2" wins over the second sheet), then by index."""
    key = wanted.strip()
    for i, sheet in enumerate(sheets):
        if sheet.name in (wanted, key):
            return i
    folded = [i for i, s in enumerate(sheets) if s.name.strip().casefold() == key.casefold()]
    if len(folded) == 1:
        return folded[0]
    if key.isascii() and key.isdigit():
        if 1 <= int(key) <= len(sheets):
            return int(key) - 1
        reason = f"there is no sheet {key}: the workbook has {len(sheets)} ({listing(sheets)})"
    else:
        reason = f"the workbook has no sheet named {key!r}; its sheets (by name or number): {listing(sheets)}"
    raise ParameterError([Problem("sheet", wanted, reason)])


def _trim(values: list[str | None]) -> list[str | None]:
    while values and (values[-1] is None or values[-1].strip() == ""):
        values.pop()
    return values


def _first_row(ws) -> tuple[int, tuple] | None:
    """(row number, values) of the sheet's first row with a value, or None for an empty sheet."""
    for number, row in enumerate(ws.iter_rows(values_only=True), 1):
        if any(v is not None and str(v).strip() != "" for v in row):
            return number, row
    return None


def xlsx_head(real: Path, shown: Path, wanted: str | None) -> SheetHead:
    """The sheets of an XLSX workbook, the one to read and its header (reads only the heads of sheets)."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise SourceFileError(
            f"{shown.name} is not a readable XLSX workbook ({type(exc).__name__}).",
            "Open it in a spreadsheet program and save it again as XLSX or CSV.",
        ) from exc
    try:
        worksheets = list(wb.worksheets)
        sheets = tuple(
            SheetInfo(ws.title, i, None if ws.max_row is None else max(0, ws.max_row - 1), ws.sheet_state != "visible")
            for i, ws in enumerate(worksheets, 1)
        )
        firsts: dict[int, tuple[int, tuple] | None] = {}

        def has_data(i: int) -> bool:
            if i not in firsts:
                worksheets[i].reset_dimensions()  # read-only mode trusts the file's dimension tag, which writers get wrong
                firsts[i] = _first_row(worksheets[i])
            return firsts[i] is not None

        chosen, warnings = choose_sheet(sheets, has_data, wanted, shown)
        _, values = firsts[chosen]
        header = _trim([cell_text(v) for v in values])
        warnings += unsaved_formulas(real, worksheets[chosen], header)
    finally:
        wb.close()
    return SheetHead(sheets, chosen, header, warnings)


def unsaved_formulas(real: Path, values_ws, header: list[str | None]) -> list[str]:
    """A warning when formula cells in the sheet's head have no saved result (they read as empty).

    The same rows are read twice, with formulas and with saved values: a formula cell
    whose value is missing and not typed as text (an empty text result is saved as
    ``t="str"``) was saved by a program that does not calculate.
    """
    import openpyxl

    wb = openpyxl.load_workbook(real, read_only=True, data_only=False)
    try:
        formulas_ws = wb[values_ws.title]
        formulas_ws.reset_dimensions()
        missing: dict[int, int] = {}
        rows = zip(formulas_ws.iter_rows(max_row=FORMULA_SCAN_ROWS), values_ws.iter_rows(max_row=FORMULA_SCAN_ROWS))
        for formula_row, value_row in rows:
            for column, (formula, value) in enumerate(zip(formula_row, value_row)):
                if formula.data_type == "f" and value.value is None and value.data_type == "n":
                    missing[column] = missing.get(column, 0) + 1
    finally:
        wb.close()
    if not missing:
        return []
    columns = [repr(header[c]) if c < len(header) and header[c] else f"column {c + 1}" for c in sorted(missing)]
    return [
        f"{sum(missing.values())} formula cell(s) in sheet {values_ws.title!r} ({', '.join(columns)}) have no saved result and read as "
        "empty: the workbook was written by a program that does not calculate formulas. Open it in Excel, LibreOffice or "
        "Google Sheets and save it again to store the results."
    ]


def xls_head(real: Path, shown: Path, wanted: str | None) -> SheetHead:
    """The sheets of a legacy XLS workbook, the one to read and its header."""
    book = open_xls(real, shown)
    try:
        loaded = [book.sheet_by_index(i) for i in range(book.nsheets)]
        sheets = tuple(SheetInfo(s.name, i, max(0, s.nrows - 1), s.visibility != 0) for i, s in enumerate(loaded, 1))
        chosen, warnings = choose_sheet(sheets, lambda i: _xls_header_row(loaded[i]) is not None, wanted, shown)
        sheet = loaded[chosen]
        row = _xls_header_row(sheet)
        header = _trim([xls_text(sheet.cell(row, c), book.datemode) for c in range(sheet.ncols)])
    finally:
        book.release_resources()
    return SheetHead(sheets, chosen, header, warnings)


def _xls_header_row(sheet) -> int | None:
    return next((r for r in range(sheet.nrows) if any(str(v).strip() for v in sheet.row_values(r))), None)
