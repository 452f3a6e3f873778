"""Serialize: write the shaped rows as a file, batch by batch.

One writer per format, all registered in ``WRITERS``; each receives batches and
writes them to a binary sink, so no format holds the whole export in memory:
CSV and Parquet go through pyarrow's writers, JSON/JSONL/XML are built a slice
of rows at a time (XML with vectorised Arrow kernels), XLSX goes through
openpyxl's write-only workbook (rows spill to a temporary file) and PDF pages
are drawn as rows arrive, under a row cap (reportlab keeps pages until the
end). Optional gzip wraps the sink. A failed write leaves no file behind.

Output is deterministic: the same rows give the same bytes (gzip without name
or mtime, fixed ZIP entry times and document dates in XLSX, reportlab's
invariant mode for PDF), so a re-run of an export can be compared by checksum.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NONE
from zlib_ng import gzip_ng_threaded

from ferry.errors import SerializationError
from ferry.params import ExportRequest
from ferry.spool import read_spool, spool_schema


def is_json_field(field: pa.Field) -> bool:
    return (field.metadata or {}).get(b"ferry.type") == b"json"


def _slices(batch: pa.RecordBatch, rows: int) -> Iterable[pa.RecordBatch]:
    """Cut a batch into slices of at most ``rows`` rows (zero-copy) to bound per-write memory."""
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _as_text(array: pa.Array) -> pa.Array:
    """A column as text, nulls kept: ISO 8601 for native dates/timestamps, ``true``/``false`` for booleans.

    The transform stage already turns dates into text for every format but
    Parquet; this is the fallback for callers that hand native types directly.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    if pa.types.is_timestamp(array.type):
        if array.type.tz is not None:  # whole seconds in UTC, like the transform stage's ISO 8601
            return pc.strftime(pc.cast(array, pa.timestamp("s", tz="UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ")
        return pc.strftime(pc.cast(array, pa.timestamp("s"), safe=False), format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_date(array.type):
        return pc.strftime(array, format="%Y-%m-%d")
    return array.cast(pa.string())


class Writer:
    """Base of every format writer: open on a sink, take batches, close.

    ``max_rows`` caps formats that cannot sensibly hold long exports (PDF);
    :func:`write_file` checks a known row count against it before writing a
    byte, and writers check again batch by batch.
    """

    formats: ClassVar[tuple[str, ...]] = ()
    max_rows: ClassVar[int | None] = None
    #: Writers that turn rows into Python objects do so this many rows at a time,
    #: so their memory does not grow with the spool's batch size.
    slice_rows: ClassVar[int] = 4_096

    def __init__(self, sink: BinaryIO, schema: pa.Schema, request: ExportRequest) -> None:
        self.sink = sink
        self.schema = schema
        self.request = request

    def write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write whatever ends the file (closing brackets, footers)."""

    def abort(self) -> None:
        """Release what the writer holds outside the sink (temporary files) after a failure."""

    @classmethod
    def check_row_count(cls, rows: int, request: ExportRequest, exact: bool = True) -> None:
        """Raise SerializationError when ``rows`` (the total, or a running count if not ``exact``) exceeds the cap."""
        if cls.max_rows is not None and rows > cls.max_rows:
            count = f"{rows:,} rows" if exact else f"more than {cls.max_rows:,} rows"
            raise SerializationError(
                f"The export has {count}; {request.format.upper()} exports hold at most {cls.max_rows:,} rows.",
                f"Narrow it (from/to, filters, a segment, or limit={cls.max_rows}) or choose csv, xlsx or parquet for long exports.",
            )


class CsvWriter(Writer):
    """CSV and TSV through pyarrow's streaming CSV writer (quotes values with delimiters, quotes or newlines)."""

    formats = ("csv", "tsv")

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        delimiter = "\t" if request.format == "tsv" else request.delimiter
        self._writer = pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(include_header=request.header, delimiter=delimiter))

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class _RowsWriter(Writer):
    """Shared by JSON-like formats: rows as dicts, JSON columns embedded as JSON."""

    def rows(self, batch: pa.RecordBatch) -> Iterator[dict]:
        json_columns = [f.name for f in batch.schema if is_json_field(f)]
        for part in _slices(batch, self.slice_rows):
            rows = part.to_pylist()
            for row in rows:
                for name in json_columns:
                    if row[name] is not None:
                        row[name] = orjson.Fragment(row[name])
            yield from rows


class JsonLinesWriter(_RowsWriter):
    formats = ("jsonl",)

    def write(self, batch: pa.RecordBatch) -> None:
        for row in self.rows(batch):
            self.sink.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


class JsonArrayWriter(_RowsWriter):
    formats = ("json",)

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        self._first = True
        sink.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        for row in self.rows(batch):
            self.sink.write(b"\n" if self._first else b",\n")
            self.sink.write(orjson.dumps(row))
            self._first = False

    def close(self) -> None:
        self.sink.write(b"]\n" if self._first else b"\n]\n")


# --- XML ----------------------------------------------------------------------------

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# Characters XML 1.0 cannot carry at all, even escaped.
XML_INVALID_CHARS = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{FFFE}\x{FFFF}]"
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_XML_NAME_JUNK = re.compile(r"[^A-Za-z0-9_.\-]+")


def xml_element_names(labels: Sequence[str]) -> list[str]:
    """Deterministic XML element names for column labels, unique within a record.

    A label that already is a plain ASCII XML name (``email``, ``phone.mobile``)
    is used as is. Otherwise each run of other characters becomes ``_``, a name
    that would start with a digit, ``-``, ``.`` or ``xml`` gets a ``_`` prefix,
    and a name taken by an earlier column gets ``_2``, ``_3``... ASCII only on
    purpose: every XML parser agrees on those names.
    """
    names: list[str] = []
    taken: set[str] = set()
    for label in labels:
        name = label if _XML_NAME.fullmatch(label) and not label.lower().startswith("xml") else None
        if name is None:
            name = _XML_NAME_JUNK.sub("_", label).strip("_") or "column"
            if not re.match(r"[A-Za-z_]", name) or name.lower().startswith("xml"):
                name = "_" + name
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_attr(value: str) -> str:
    value = _XML_INVALID_RE.sub("\ufffd", value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\t", "&#9;")
    )


def _xml_text(array: pa.Array) -> pa.Array:
    """Escape text content: ``& < >``, CR as ``&#13;`` (parsers would fold it into LF), and
    characters XML 1.0 cannot represent replaced by U+FFFD."""
    array = pc.replace_substring_regex(array, XML_INVALID_CHARS, "\ufffd")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        array = pc.replace_substring(array, raw, escaped)
    return array


def _string_bytes(array: pa.Array) -> memoryview:
    """The concatenated values of a null-free string array, without a per-row Python loop."""
    offsets = memoryview(array.buffers()[1]).cast("q" if pa.types.is_large_string(array.type) else "i")
    start, end = offsets[array.offset], offsets[array.offset + len(array)]
    return memoryview(array.buffers()[2])[start:end]


class XmlWriter(Writer):
    """XML: ``<records>`` holding one ``<record>`` per row and one child element per column.

    Element names come from the column labels via :func:`xml_element_names`;
    when a label is not itself a usable name, the element carries the label in
    a ``name`` attribute (``<Full_name name="Full name">``), so readers can
    always recover it as ``element.get("name", element.tag)``. Values are
    escaped text; JSON columns (field metadata ``ferry.type=json``) are embedded
    as their JSON text, not as XML structure. A null is ``<col xsi:nil="true"/>``;
    an empty string is ``<col></col>``. Characters XML 1.0 cannot carry (control
    characters other than tab, CR, LF) become U+FFFD. Each batch is built with
    vectorised Arrow kernels, a slice of rows at a time.
    """

    formats = ("xml",)
    slice_rows = 2_048  # each column's intermediate arrays live for one slice

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        names = xml_element_names(schema.names)
        self._open, self._nil, self._close = [], [], []
        for label, name in zip(schema.names, names, strict=True):
            attr = "" if name == label else f' name="{_xml_attr(label)}"'
            self._open.append(f"\n    <{name}{attr}>")
            self._nil.append(f'\n    <{name}{attr} xsi:nil="true"/>')
            self._close.append(f"</{name}>")
        sink.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<records xmlns:xsi="{XSI_NS}">\n'.encode())

    def write(self, batch: pa.RecordBatch) -> None:
        for part in _slices(batch, self.slice_rows):
            if part.num_rows == 0:
                continue
            cells = []
            for i, column in enumerate(part.columns):
                text = _xml_text(_as_text(column))
                element = pc.binary_join_element_wise(self._open[i], text, self._close[i], "")
                cells.append(pc.fill_null(element, self._nil[i]))
            record = pc.binary_join_element_wise("  <record>", *cells, "\n  </record>\n", "")
            self.sink.write(_string_bytes(record))

    def close(self) -> None:
        self.sink.write(b"</records>\n")


# --- Parquet ------------------------------------------------------------------------


class ParquetWriter(Writer):
    """Parquet (zstd), one row group per batch; native types kept."""

    formats = ("parquet",)

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


# --- XLSX ---------------------------------------------------------------------------

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
        self._sheet_base = request.resource_def.slug if _known_resource(request) else "Export"

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


def _known_resource(request: ExportRequest) -> bool:
    try:
        _ = request.resource_def
    except Exception:  # noqa: BLE001 - a writer used on its own may get any resource name
        return False
    return True


# --- PDF ----------------------------------------------------------------------------

PDF_MAX_ROWS = 50_000
PDF_FONT_CANDIDATES = (("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),)


@lru_cache(maxsize=1)
def pdf_fonts() -> tuple[str, str]:
    """Register and return (regular, bold) TrueType fonts for PDF exports.

    DejaVu Sans (Latin, Greek, Cyrillic...) when the system has it, else the
    Bitstream Vera fonts that ship with reportlab, so the code path is the
    same everywhere; characters a font lacks print as an empty box.
    """
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    bundled = Path(reportlab.__file__).parent / "fonts"
    for regular, bold in (*PDF_FONT_CANDIDATES, (str(bundled / "Vera.ttf"), str(bundled / "VeraBd.ttf"))):
        if Path(regular).is_file() and Path(bold).is_file():
            pdfmetrics.registerFont(TTFont("FerrySans", regular))
            pdfmetrics.registerFont(TTFont("FerrySans-Bold", bold))
            return "FerrySans", "FerrySans-Bold"
    return "Helvetica", "Helvetica-Bold"


class _CharWidths(dict):
    """Per-character widths of one font at one size, filled lazily: cutting text to fit is per character."""

    def __init__(self, font: str, size: float) -> None:
        super().__init__()
        self.font, self.size = font, size

    def __missing__(self, char: str) -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        self[char] = width = stringWidth(char, self.font, self.size)
        return width


_PDF_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class PdfWriter(Writer):
    """PDF: a title, an optional description, then the rows as a table over as many pages as needed.

    A4 landscape. The header row repeats on every page and each page has a
    footer with the title and page number. Cells wrap to at most
    ``max_lines`` lines and are cut with an ellipsis beyond that: the PDF is a
    report to read, not a data transfer (use CSV, XLSX or Parquet for that).
    Column widths follow the labels and the first ``layout_rows`` rows, so
    equal rows give an equal layout. Pages are drawn as rows arrive;
    reportlab keeps the compressed pages until the end, which is why exports
    above ``max_rows`` (50,000) fail with a SerializationError before any page
    beyond the cap is drawn.
    """

    formats = ("pdf",)
    max_rows = PDF_MAX_ROWS
    layout_rows = 200
    font_size = 7.0
    leading = 8.6
    pad_x, pad_y = 2.5, 2.0
    max_lines = 3
    margin = 36.0

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        from reportlab.lib.pagesizes import A4, landscape
        from reportlab.pdfbase.pdfmetrics import getFont
        from reportlab.pdfgen.canvas import Canvas

        self._font, self._bold = pdf_fonts()
        self._page_width, self._page_height = landscape(A4)
        self._canvas = Canvas(sink, pagesize=(self._page_width, self._page_height), invariant=1, pageCompression=1)
        self._title = self._clean(request.title or self._default_title(request))
        self._canvas.setTitle(self._title)
        self._canvas.setAuthor("Ferry")
        self._canvas.setCreator("Ferry")
        if request.description:
            self._canvas.setSubject(request.description)
        self._labels = [self._clean(label) for label in schema.names]
        self._pending: list[list[str]] = []
        self._widths: list[float] | None = None
        self._table_width = 0.0
        self._char_widths = {name: _CharWidths(name, self.font_size) for name in (self._font, self._bold)}
        self._fonts = {name: getFont(name) for name in (self._font, self._bold)}
        self._text = None
        self._page = 0
        self._y = 0.0
        self._rows = 0

    @staticmethod
    def _default_title(request: ExportRequest) -> str:
        name = request.resource_def.label if _known_resource(request) else request.resource
        return f"{name} — {request.workspace}"

    @staticmethod
    def _clean(text: str) -> str:
        return _PDF_CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))

    # layout ---------------------------------------------------------------------------
    def _fit(self, line: str, width: float, font: str, force_ellipsis: bool = False) -> str:
        """``line`` cut to fit ``width``, with an ellipsis when anything was cut."""
        widths = self._char_widths[font]
        if not force_ellipsis and sum(map(widths.__getitem__, line)) <= width:
            return line
        room = width - widths["…"]
        used = 0.0
        for i, char in enumerate(line):
            used += widths[char]
            if used > room:
                return line[:i].rstrip() + "…"
        return line.rstrip() + "…"

    def _wrap(self, text: str, width: float, font: str) -> list[str]:
        """At most ``max_lines`` lines that fit ``width``: words wrap, the rest is cut with an ellipsis."""
        from reportlab.lib.utils import simpleSplit

        width -= 2 * self.pad_x
        if not text:
            return [text]
        if "\n" not in text and self._fonts[font].stringWidth(text, self.font_size) <= width:
            return [text]
        lines: list[str] = []
        for paragraph in text.split("\n"):
            lines += simpleSplit(paragraph, font, self.font_size, width) or [""]
            if len(lines) > self.max_lines:
                break
        cut = len(lines) > self.max_lines
        lines = lines[: self.max_lines]
        return [self._fit(line, width, font, force_ellipsis=cut and i == len(lines) - 1) for i, line in enumerate(lines)]

    def _layout(self) -> None:
        """Column widths proportional to each column's natural text length (4 to 40 characters)."""
        sample = self._pending[: self.layout_rows]
        weights = []
        for i, label in enumerate(self._labels):
            longest = max([len(label), *(len(row[i]) for row in sample)])
            weights.append(min(max(longest, 4), 40))
        usable = self._page_width - 2 * self.margin
        total = sum(weights) or 1
        self._widths = [usable * w / total for w in weights]
        self._table_width = sum(self._widths)

    # drawing --------------------------------------------------------------------------
    def _end_page(self) -> None:
        if self._text is not None:
            self._canvas.drawText(self._text)
            self._text = None
            self._canvas.showPage()
            self._compress_last_page()

    def _compress_last_page(self) -> None:
        """Deflate the page just finished now rather than at save.

        reportlab keeps every page's drawing operators as text until the
        document is saved; compressing each page as it is finished keeps only
        a few KB per page in memory (about 5x less). Same PDF filter
        (FlateDecode) as reportlab's page compression, without its ASCII85 layer.
        """
        from reportlab.pdfbase.pdfdoc import PDFName, PDFStream

        page = self._canvas._doc.Pages.pages[-1]
        if page.Contents or not page.stream:
            return
        stream = PDFStream(content=zlib.compress(page.stream.encode("utf-8")))
        stream.dictionary["Filter"] = PDFName("FlateDecode")
        stream.__Comment__ = "page stream"
        page.Contents, page.stream = stream, None

    def _start_page(self) -> None:
        canvas = self._canvas
        self._end_page()
        self._page += 1
        top = self._page_height - self.margin
        if self._page == 1:
            canvas.setFont(self._bold, 16)
            for line in self._wrap_plain(self._title, self._bold, 16)[:3]:
                top -= 19
                canvas.drawString(self.margin, top, line)
            if self.request.description:
                canvas.setFont(self._font, 9)
                top -= 4
                for line in self._wrap_plain(self.request.description, self._font, 9)[:12]:
                    top -= 11.5
                    canvas.drawString(self.margin, top, line)
            top -= 12
        canvas.setFont(self._font, 7)
        canvas.drawString(self.margin, self.margin / 2, self._fit(self._title, 400, self._font))
        canvas.drawRightString(self._page_width - self.margin, self.margin / 2, f"Page {self._page}")
        canvas.setStrokeGray(0.75)
        canvas.setLineWidth(0.3)
        self._text = canvas.beginText()
        self._y = top
        self._draw_row(self._labels, header=True)

    def _wrap_plain(self, text: str, font: str, size: float) -> list[str]:
        from reportlab.lib.utils import simpleSplit

        width = self._page_width - 2 * self.margin
        lines = []
        for paragraph in self._clean(text).split("\n"):
            lines += simpleSplit(paragraph, font, size, width) or [""]
        return lines

    def _draw_row(self, cells: list[str], header: bool = False) -> None:
        font = self._bold if header else self._font
        wrapped = [self._wrap(text, width, font) for text, width in zip(cells, self._widths, strict=True)]
        height = max(map(len, wrapped)) * self.leading + 2 * self.pad_y
        if not header and self._y - height < self.margin:
            self._start_page()
        canvas, text = self._canvas, self._text
        x, top = self.margin, self._y
        if header:
            canvas.setFillGray(0.88)
            canvas.rect(self.margin, top - height, self._table_width, height, stroke=0, fill=1)
            canvas.setFillGray(0)
        text.setFont(font, self.font_size)
        for lines, width in zip(wrapped, self._widths, strict=True):
            baseline = top - self.pad_y - self.font_size
            for line in lines:
                if line:
                    text.setTextOrigin(x + self.pad_x, baseline)
                    text.textOut(line)
                baseline -= self.leading
            x += width
        canvas.line(self.margin, top - height, self.margin + self._table_width, top - height)
        self._y = top - height

    def _flush(self) -> None:
        if self._widths is None:
            self._layout()
            self._start_page()
        for row in self._pending:
            self._draw_row(row)
        self._pending = []

    def write(self, batch: pa.RecordBatch) -> None:
        self.check_row_count(self._rows + batch.num_rows, self.request, exact=False)
        self._rows += batch.num_rows
        for part in _slices(batch, self.slice_rows):
            columns = [pc.fill_null(_as_text(column), "").to_pylist() for column in part.columns]
            self._pending += [[self._clean(value) for value in row] for row in zip(*columns, strict=True)]
            if len(self._pending) >= self.layout_rows or self._widths is not None:
                self._flush()

    def close(self) -> None:
        self._flush()
        if self._rows == 0:
            self._text.setFont(self._font, self.font_size)
            self._text.setTextOrigin(self.margin + self.pad_x, self._y - self.pad_y - self.font_size - 4)
            self._text.textOut("No rows.")
        self._end_page()
        self._canvas.save()


WRITERS: dict[str, type[Writer]] = {
    fmt: cls
    for cls in (CsvWriter, JsonLinesWriter, JsonArrayWriter, XmlWriter, ParquetWriter, XlsxWriter, PdfWriter)
    for fmt in cls.formats
}


@dataclass(frozen=True)
class Serialized:
    path: Path
    rows: int
    bytes: int


#: Compression threads beside the writer's own: zlib-ng releases the GIL, so on
#: two cores gzip keeps pace with pyarrow's CSV writer instead of doubling its time.
GZIP_THREADS = 2


def _gzip_sink(raw: BinaryIO) -> BinaryIO:
    """gzip level 6 (the size of ``gzip -6``) through zlib-ng, compressed in background threads.

    zlib-ng makes the same-size stream in half of zlib's CPU time. Blocks are
    compressed pigz-style (each primed with the previous block's last 32 KiB),
    so the bytes depend only on the data, never on thread timing; the header
    has no name and no mtime: the file is renamed on delivery, and equal rows
    give equal bytes.
    """
    return gzip_ng_threaded.open(raw, "wb", compresslevel=6, threads=GZIP_THREADS)


def write_file(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, request: ExportRequest, target: Path, total_rows: int | None = None
) -> Serialized:
    """Write ``batches`` to ``target`` in the request's format (gzip-wrapped if asked).

    ``total_rows``, when known, is checked against the format's row cap before
    the file is opened, so an over-long PDF export fails without writing.
    """
    writer_cls = WRITERS[request.format]
    if total_rows is not None:
        writer_cls.check_row_count(total_rows, request)
    rows = 0
    writer: Writer | None = None
    sink: BinaryIO | None = None
    try:
        with open(target, "wb") as raw:
            sink = _gzip_sink(raw) if request.gzip else raw
            writer = writer_cls(sink, schema, request)
            for batch in batches:
                writer.write(batch)
                rows += batch.num_rows
            writer.close()
            if request.gzip:
                sink.close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):  # the original error matters, not a failed clean-up
                writer.abort()
        if request.gzip and sink is not None:
            with contextlib.suppress(Exception):  # stops the compression threads
                sink.close()
        target.unlink(missing_ok=True)  # never leave half a file behind
        raise
    return Serialized(target, rows, target.stat().st_size)


def spool_rows(spool: Path) -> int:
    """Row count of a spool file, from its batch metadata (no data is read).

    A plain file, not a memory map: mapped pages count toward RSS (+184 MB on a 10M-row spool).
    """
    with pa.OSFile(str(spool), "rb") as source:
        return pa.ipc.open_file(source).count_rows()


@task(name="serialize", cache_policy=NONE, persist_result=False)
def serialize(spool: Path, request: ExportRequest) -> Serialized:
    """Write the shaped spool as the export file, next to the spool."""
    target = spool.with_name(f"export.{request.extension()}")
    return write_file(read_spool(spool), spool_schema(spool), request, target, total_rows=spool_rows(spool))
