"""PDF through reportlab (imported only when a PDF file is written)."""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ferry.params import ExportRequest
from tasks.export.serialize.base import Writer, as_text, known_resource, slices

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
        name = request.resource_def.label if known_resource(request) else request.resource
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
        for part in slices(batch, self.slice_rows):
            columns = [pc.fill_null(as_text(column), "").to_pylist() for column in part.columns]
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
