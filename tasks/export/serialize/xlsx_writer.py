"""XLSX through openpyxl (imported only when an XLSX file is written)."""

from __future__ import annotations

import math
import re
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from ferry.errors import SerializationError
from tasks.export.serialize.base import Writer, known_resource

XLSX_MAX_SHEET_ROWS = 1_048_576  # Excel's hard limit per worksheet, header included
XLSX_MAX_CELL_CHARS = 32_767  # Excel's limit per cell
# Characters openpyxl refuses in cell text (control characters other than tab, CR, LF).
XLSX_INVALID_CHARS = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}]"
# Texts openpyxl would otherwise store as a formula or an error value.
XLSX_ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A")
_XLSX_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class _WriteOnly:
    """A sink seen without seek/tell, so ZipFile streams into it (gzip sinks cannot seek back)."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, data) -> int:
        return self._sink.write(data)

    def flush(self) -> None:
        self._sink.flush()


class _FixedTimeZip(zipfile.ZipFile):
    """A ZipFile whose entries all carry the same timestamp, so equal workbooks zip to equal bytes.

    openpyxl adds worksheets with ``write(path, name)`` (file mtime) and the
    rest with ``writestr(name, data)`` (now); both are pinned here, and sheet
    files are copied in chunks rather than read whole.
    """

    def _info(self, name: str, size: int | None = None) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        if size is not None:
            info.file_size = size  # lets ZipFile decide on ZIP64 for large sheets up front
        return info

    def writestr(self, zinfo_or_arcname, data, *args, **kwargs):
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        return super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename, arcname=None, *args, **kwargs):
        path = Path(filename)
        with open(path, "rb") as source, self.open(self._info(arcname or path.name, path.stat().st_size), "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)


def _xlsx_sheet_title(base: str, number: int) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "_", base)[:25] or "Export"
    return base if number == 1 else f"{base} ({number})"


class XlsxWriter(Writer):
    """XLSX through openpyxl's write-only workbook: a bold, frozen header row on every sheet.

    Strings, numbers and booleans are stored as native cells. Every string is
    stored as a text cell, never as a formula or an error value: openpyxl would
    turn text starting with ``=`` into a formula and ``#N/A`` into an error, so
    such cells are written with an explicit string type (neutralised cells such
    as ``'=1+1`` are plain text anyway). A sheet holds 1,048,575 data rows
    under its header; longer exports continue on ``contacts (2)``, ``contacts (3)``...
    Control characters other than tab/CR/LF (which Excel cannot store) become
    U+FFFD; a value longer than Excel's 32,767 characters per cell fails the
    export rather than being cut silently. Timestamps with a time zone are
    written as naive UTC (Excel has no time zones).
    """

    formats = ("xlsx",)
    sheet_rows = XLSX_MAX_SHEET_ROWS - 1

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        from openpyxl import Workbook

        self._workbook = Workbook(write_only=True)
        self._sheet = None
        self._sheet_count = 0
        self._sheet_filled = 0
        self._rows = 0
        self._sheet_base = request.resource_def.slug if known_resource(request) else "Export"

    def _new_sheet(self) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        self._sheet_count += 1
        sheet = self._workbook.create_sheet(_xlsx_sheet_title(self._sheet_base, self._sheet_count))
        sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        header = []
        for i, label in enumerate(self.schema.names, 1):
            label = _XLSX_INVALID_RE.sub("\ufffd", label)
            sheet.column_dimensions[get_column_letter(i)].width = min(max(len(label) + 2, 10), 60)
            cell = WriteOnlyCell(sheet, value=label)
            cell.data_type = "s"
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        self._sheet, self._sheet_filled = sheet, 0

    def _column_values(self, array: pa.Array, name: str) -> list[Any]:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        kind = array.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            too_long = pc.greater(pc.utf8_length(array), XLSX_MAX_CELL_CHARS)
            if pc.any(too_long).as_py():
                row = self._rows + pc.index(too_long, True).as_py() + 1
                raise SerializationError(
                    f"Column {name!r}, data row {row:,}, holds a value longer than the {XLSX_MAX_CELL_CHARS:,} characters an XLSX cell can hold.",
                    "Export as csv, json or parquet, or leave that column out (fields=...).",
                )
            array = pc.replace_substring_regex(array, XLSX_INVALID_CHARS, "\ufffd")
            special = pc.or_kleene(
                pc.and_kleene(pc.starts_with(array, "="), pc.greater(pc.utf8_length(array), 1)),
                pc.is_in(array, pa.array(XLSX_ERROR_CODES)),
            )
            values = array.to_pylist()
            if pc.any(special).as_py():
                for i in pc.indices_nonzero(pc.fill_null(special, False)).to_pylist():
                    values[i] = self._text_cell(values[i])
            return values
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            array = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        if pa.types.is_floating(kind):
            non_finite = pc.invert(pc.is_finite(array))
            if pc.any(non_finite).as_py():  # Excel has no NaN/inf: keep them readable as text
                return [self._text_cell(str(v)) if v is not None and not math.isfinite(v) else v for v in array.to_pylist()]
        return array.to_pylist()

    def _text_cell(self, value: str):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self._sheet)
        cell.value = value
        cell.data_type = "s"
        return cell

    def write(self, batch: pa.RecordBatch) -> None:
        start = 0
        while start < batch.num_rows:
            if self._sheet is None or self._sheet_filled >= self.sheet_rows:
                self._new_sheet()
            part = batch.slice(start, min(self.sheet_rows - self._sheet_filled, self.slice_rows))
            columns = [self._column_values(part.column(i), name) for i, name in enumerate(part.schema.names)]
            append = self._sheet.append
            for row in zip(*columns, strict=True):
                append(row)
            self._sheet_filled += part.num_rows
            self._rows += part.num_rows
            start += part.num_rows

    def abort(self) -> None:
        for sheet in self._workbook.worksheets:
            if sheet._writer is not None and Path(sheet._writer.out).exists():  # each sheet spools to a temp file
                try:
                    if not sheet.closed:
                        sheet.close()
                finally:
                    sheet._writer.cleanup()

    def close(self) -> None:
        from openpyxl.writer.excel import ExcelWriter

        if self._sheet is None:
            self._new_sheet()
        properties = self._workbook.properties
        properties.creator = "Ferry"
        # No clock in the file (equal rows, equal bytes): the dates are pinned like the ZIP entries'.
        properties.created = properties.modified = datetime(*_ZIP_EPOCH)
        with _FixedTimeZip(_WriteOnly(self.sink), "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            ExcelWriter(self._workbook, archive).write_data()
