"""Spreadsheets: XLSX (openpyxl) and XLS (xlrd), one worksheet each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from ferry.errors import SourceFileError
from tasks.imports.parse.batches import Batcher, Stats, cell_text
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.opening import materialized


def _sheet_rows(info: FileInfo, numbered_rows: Iterable[tuple[int, list]], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Rows after the header: values per header column; a value beyond the last header is an error."""
    batcher = Batcher(info.columns, batch_rows)
    ncols = len(info.columns)
    header_seen = False
    for number, row in numbered_rows:
        values = [cell_text(v) for v in row]
        if not header_seen:
            header_seen = any(v is not None and v.strip() for v in values)
            continue
        if all(v is None for v in values):
            continue
        error = None
        extra = [i for i, v in enumerate(values[ncols:], ncols + 1) if v is not None]
        if extra:
            error = f"ragged row: values in {len(extra)} column(s) past the header's {ncols} (first: column {extra[0]})"
        if batch := batcher.add(number, values[:ncols], error):
            yield batch
    if batch := batcher.flush():
        yield batch


def iter_xlsx(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    import openpyxl

    with materialized(info) as real:
        wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
        try:
            ws = wb[info.sheet] if info.sheet else wb.worksheets[0]
            ws.reset_dimensions()
            yield from _sheet_rows(info, enumerate(ws.iter_rows(values_only=True), 1), batch_rows)
        finally:
            wb.close()


def open_xls(real: Path, shown: Path):
    import xlrd

    try:
        return xlrd.open_workbook(str(real), on_demand=True)
    except xlrd.XLRDError as exc:
        raise SourceFileError(
            f"{shown.name} is not a readable XLS workbook ({exc}).", "Open it in a spreadsheet program and save it again as XLSX or CSV."
        ) from exc


def xls_text(cell, datemode: int) -> str | None:
    import xlrd

    kind, value = cell.ctype, cell.value
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    if kind == xlrd.XL_CELL_DATE:
        try:
            return cell_text(xlrd.xldate_as_datetime(value, datemode))
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell_text(value)
    if kind == xlrd.XL_CELL_BOOLEAN:
        return "true" if value else "false"
    return cell_text(value)


def iter_xls(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    with materialized(info) as real:
        book = open_xls(real, info.path)
        try:
            sheet = book.sheet_by_name(info.sheet) if info.sheet else book.sheet_by_index(0)
            rows = ((r + 1, [xls_text(c, book.datemode) for c in sheet.row(r)]) for r in range(sheet.nrows))
            yield from _sheet_rows(info, rows, batch_rows)
        finally:
            book.release_resources()
