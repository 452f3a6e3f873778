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

The stage's public face is here (the ``serialize`` task, :func:`write_file` and
the registry ``WRITERS``); the writer protocol, gzip and shared cell helpers are
in ``base``, and each format has its own module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from ferry.params import ExportRequest
from ferry.pipe import Pipe
from ferry.progress import Progress, counted
from ferry.spool import private_folder
from tasks.export.serialize.base import GZIP_THREADS, Writer, gzip_sink, is_json_field
from tasks.export.serialize.delimited import CsvWriter
from tasks.export.serialize.json_writer import JsonArrayWriter, JsonLinesWriter
from tasks.export.serialize.parquet_writer import ParquetWriter
from tasks.export.serialize.pdf_writer import PDF_FONT_CANDIDATES, PDF_MAX_ROWS, PdfWriter, pdf_fonts
from tasks.export.serialize.xlsx_writer import (
    XLSX_ERROR_CODES,
    XLSX_INVALID_CHARS,
    XLSX_MAX_CELL_CHARS,
    XLSX_MAX_SHEET_ROWS,
    XlsxWriter,
)
from tasks.export.serialize.xml_writer import XML_INVALID_CHARS, XSI_NS, XmlWriter, xml_element_names

__all__ = [
    "GZIP_THREADS",
    "PDF_FONT_CANDIDATES",
    "PDF_MAX_ROWS",
    "WRITERS",
    "XLSX_ERROR_CODES",
    "XLSX_INVALID_CHARS",
    "XLSX_MAX_CELL_CHARS",
    "XLSX_MAX_SHEET_ROWS",
    "XML_INVALID_CHARS",
    "XSI_NS",
    "CsvWriter",
    "JsonArrayWriter",
    "JsonLinesWriter",
    "ParquetWriter",
    "PdfWriter",
    "Serialized",
    "Writer",
    "XlsxWriter",
    "XmlWriter",
    "is_json_field",
    "pdf_fonts",
    "serialize",
    "write_file",
    "xml_element_names",
]


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
            sink = gzip_sink(raw) if request.gzip else raw
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


@task(name="serialize", cache_policy=NONE, persist_result=False)
def serialize(source: Pipe, request: ExportRequest, folder: Path) -> Serialized:
    """Write the shaped rows arriving through ``source`` as the export file in ``folder`` (the run's spool folder)."""
    target = private_folder(folder) / f"export.{request.extension()}"
    with source.reading("serialize") as batches:
        header = source.header()
        progress = Progress("serialize", header.total, key="export-progress")
        written = write_file(counted(batches, progress), header.schema, request, target, total_rows=header.total)
        progress.finish()
    return written
