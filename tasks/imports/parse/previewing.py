"""Previewing: what a file is, its first rows and how many rows it has, read from its head only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tasks.imports.parse.batches import Stats
from tasks.imports.parse.encoding import decode_head, utf8_chunks
from tasks.imports.parse.fileinfo import ERROR, ROW, FileInfo, SheetInfo
from tasks.imports.parse.json_parser import iter_json_objects, iter_jsonl_objects, record_error
from tasks.imports.parse.opening import expanded_size, materialized, open_stream
from tasks.imports.parse.reading import iter_batches, read_batches
from tasks.imports.parse.sniffing import HEAD_BYTES, sniff

PREVIEW_BLOCK_BYTES = 1024 * 1024  # a preview parses one block this size, enough to estimate bytes per row
EXACT_COUNT_BYTES = 64 * 1024 * 1024  # text files up to this (decompressed) size are counted exactly on preview
JSON_EXACT_BYTES = 4 * 1024 * 1024  # JSON arrays up to this size are parsed whole to count them exactly
XLSX_EXACT_BYTES = 2 * 1024 * 1024  # XLSX files up to this size are counted exactly (openpyxl reads ~50k rows/s)
BROKEN_ROWS_LISTED = 5  # broken JSONL lines past the sample listed one by one in the problems


@dataclass(frozen=True)
class Preview:
    """The first rows of a file and what it is, for a person choosing how to import it."""

    columns: list[str]
    sample_rows: list[dict]  # source column -> raw text (None for empty), at most ``sample_rows``
    total_rows: int
    file_type: str
    encoding: str | None
    delimiter: str | None
    warnings: list[str]
    total_rows_estimated: bool = False  # True when total_rows is extrapolated from the bytes per row seen
    compression: str | None = None
    quotechar: str | None = None
    sheet: str | None = None
    problems: list[str] = field(default_factory=list)  # reader errors ("row 7: ..."): the sample's, and JSONL lines anywhere
    sample_row_numbers: list[int] = field(default_factory=list)  # __row__ of each sample row
    sheets: tuple[SheetInfo, ...] = ()  # every worksheet of a workbook (the one read: ``sheet``), else empty
    broken_rows: int | None = None  # rows the reader found broken in the whole file; None when it was not read whole

    def to_json(self) -> dict:
        return {
            "fileType": self.file_type,
            "compression": self.compression,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "quotechar": self.quotechar,
            "sheet": self.sheet,
            "sheets": [s.to_json(read=s.name == self.sheet) for s in self.sheets],
            "columns": self.columns,
            "totalRows": self.total_rows,
            "totalRowsEstimated": self.total_rows_estimated,
            "warnings": self.warnings,
            "problems": self.problems,
            "brokenRows": self.broken_rows,
            "sampleRows": self.sample_rows,
            "sampleRowNumbers": self.sample_row_numbers,
        }


@dataclass(frozen=True)
class _Count:
    """A file's row count, and for JSONL (whose every line is parsed to count it) the broken lines."""

    rows: int
    estimated: bool = False
    broken: int | None = None  # broken rows in the whole file, when it was read whole
    listed: list[str] = field(default_factory=list)  # the first broken rows past the sample ("row 7: invalid JSON ...")


@dataclass(frozen=True)
class _Scan:
    cut: int  # bytes of the buffer that form whole records
    starts: np.ndarray
    ends: np.ndarray
    newlines: np.ndarray
    quoted_newlines: bool


def _scan(buf: bytes, delimiter: int, quote: int | None, eof: bool) -> _Scan | None:
    """Record boundaries of ``buf`` (which starts at a record boundary) by quote parity, or
    None when parity cannot be trusted (a stray quote, an unterminated quote at EOF).
    Used to estimate rows per byte of a big file's head."""
    a = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(a == 10)
    quoted = False
    terminators = newlines
    if quote is not None:
        q = np.flatnonzero(a == quote)
        if len(q):
            opening, closing = q[0::2], q[1::2]
            prev = a[opening[opening > 0] - 1]
            if not np.all((prev == delimiter) | (prev == 10) | (prev == 13) | (prev == quote)):
                return None  # a quote inside an unquoted field: parsers treat it as text, parity does not
            nxt = a[closing[closing + 1 < len(a)] + 1]
            if not np.all((nxt == delimiter) | (nxt == 10) | (nxt == 13) | (nxt == quote)):
                return None  # text after a closing quote
            inside = (np.searchsorted(q, newlines) % 2) == 1
            quoted = bool(inside.any())
            terminators = newlines[~inside]
            if eof and len(q) % 2 == 1:
                return None
    if eof:
        cut = len(buf)
        ends = terminators if (len(terminators) and terminators[-1] == len(buf) - 1) else np.append(terminators, len(buf))
    else:
        if not len(terminators):
            return _Scan(0, terminators, terminators, newlines, quoted)
        cut = int(terminators[-1]) + 1
        ends = terminators
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
    return _Scan(cut, starts.astype(np.int64), ends.astype(np.int64), newlines[newlines < cut], quoted)


def sample(info: FileInfo, rows: int = 50, stats: Stats | None = None) -> tuple[list[dict], list[int], list[str], bool]:
    """The first ``rows`` rows as dicts, their row numbers, the reader's problems among
    them ("row 7: ragged row: ..."), and whether the file ended within them. ``stats``: what was read."""
    result: list[dict] = []
    numbers: list[int] = []
    problems: list[str] = []
    stats = Stats() if stats is None else stats
    batches = read_batches(info, max(1, min(rows, 4096)), PREVIEW_BLOCK_BYTES, stats)
    try:
        for batch in batches:
            for record in batch.slice(0, max(0, rows - len(result))).to_pylist():
                numbers.append(record.pop(ROW))
                if error := record.pop(ERROR):
                    problems.append(f"row {numbers[-1]}: {error}")
                result.append(record)
            if len(result) >= rows:
                break
        else:
            stats.eof = True
    finally:
        batches.close()
    return result, numbers, problems, stats.eof


def preview(path: Path | str, sample_rows: int = 50, *, encoding: str | None = None, sheet: str | None = None) -> Preview:
    """What a file is, its first ``sample_rows`` rows and how many rows it has.

    Fast on any size: it reads the head of the file only. Text files up to 64 MB
    (decompressed) and XLSX files up to 2 MB are counted exactly; bigger ones get an
    estimate (``total_rows_estimated=True``): text from the rows per byte of its first
    megabyte, XLSX from the sheet's recorded dimension. Parquet and XLS are always exact.
    JSONL counted exactly is parsed line by line on the way, so its broken lines are
    problems wherever they are, not only in the sample. ``sheet``: a workbook's
    worksheet, by name or 1-based index (every sheet is listed in ``sheets``).
    """
    info = sniff(path, encoding=encoding, sheet=sheet)
    stats = Stats()
    rows, numbers, problems, ended = sample(info, sample_rows, stats)
    count = _Count(len(rows), broken=len(problems)) if ended else _total_rows(info, after=numbers[-1] if numbers else 0)
    problems += count.listed
    if count.broken is not None and count.broken > len(problems):
        problems.append(f"{count.broken} broken rows in the whole file, the first {len(problems)} listed; each is rejected on import.")
    return Preview(
        columns=info.columns,
        sample_rows=rows,
        total_rows=count.rows,
        file_type=info.file_type,
        encoding=info.encoding,
        delimiter=info.delimiter,
        warnings=info.warnings + ([nul] if (nul := stats.nul_warning()) else []),
        total_rows_estimated=count.estimated,
        compression=info.compression,
        quotechar=info.quotechar,
        sheet=info.sheet,
        problems=problems,
        sample_row_numbers=numbers,
        sheets=tuple(replace(s, rows=count.rows) if s.name == info.sheet else s for s in info.sheets),
        broken_rows=count.broken,
    )


def count_rows(info: FileInfo) -> int:
    """The exact number of rows :func:`iter_batches` yields (reads the whole file)."""
    return sum(b.num_rows for b in iter_batches(info))


def _total_rows(info: FileInfo, after: int) -> _Count:
    """The row count; ``after``: the last row the sample read (broken JSONL lines past it are listed)."""
    if info.file_type == "parquet":
        import pyarrow.parquet as pq

        with materialized(info) as real:
            return _Count(pq.ParquetFile(real).metadata.num_rows)
    if info.file_type == "xls" or (info.file_type == "xlsx" and info.size_bytes <= XLSX_EXACT_BYTES):
        return _Count(count_rows(info))
    if info.file_type == "xlsx":
        return _Count(_xlsx_dimension_rows(info), estimated=True)
    text_size = _text_size(info)
    if info.file_type == "jsonl" and text_size <= EXACT_COUNT_BYTES:
        return _scan_jsonl(info, after)
    if text_size <= (JSON_EXACT_BYTES if info.file_type == "json" else EXACT_COUNT_BYTES):
        return _Count(count_rows(info))
    per_byte = _rows_per_byte(info)
    if per_byte is None:
        return _Count(count_rows(info))
    return _Count(round(text_size * _utf8_ratio(info) * per_byte), estimated=True)


def _scan_jsonl(info: FileInfo, after: int) -> _Count:
    """JSONL rows (one per line that is not blank, broken ones included), each line parsed on the way.

    Parsing costs little next to reading (orjson: ~0.2 s per 64 MB) and finds the broken
    lines anywhere in the file; only the first few past the sample are kept, and their count.
    """
    rows = broken = 0
    listed: list[str] = []
    for number, value, error in iter_jsonl_objects(info):
        rows += 1
        if error is None and (error := record_error(value)) is None:
            continue
        broken += 1
        if number > after and len(listed) < BROKEN_ROWS_LISTED:
            listed.append(f"row {number}: {error}")
    return _Count(rows, broken=broken, listed=listed)


def _rows_per_byte(info: FileInfo) -> float | None:
    """Rows per UTF-8 byte in the first megabyte of text (None if no whole row fits in it)."""
    chunks = utf8_chunks(info, PREVIEW_BLOCK_BYTES)
    try:
        head = next(chunks, b"")
    finally:
        chunks.close()
    if info.file_type in ("csv", "tsv"):
        scan = _scan(head, ord(info.delimiter or ","), ord(info.quotechar) if info.quotechar else None, eof=False)
        if scan is None:
            cut = head.rfind(b"\n") + 1
            records = head[:cut].count(b"\n")
        else:
            cut, records = scan.cut, int(np.count_nonzero((scan.ends - scan.starts) > 1))
        records -= info.skip_records + 1
    elif info.file_type == "jsonl":
        cut = head.rfind(b"\n") + 1
        records = sum(1 for line in head[:cut].split(b"\n") if line.strip())
    else:
        rows = list(iter_json_objects(info, chunks=[head]))
        records = sum(1 for _, _, error in rows if error is None)
        cut = len(head)
    return records / cut if records > 0 and cut > 0 else None


def _text_size(info: FileInfo) -> float:
    """The decompressed size in bytes: exact for plain and zip files, estimated for gzip."""
    return expanded_size(info.path, info.compression, info.member)


def _utf8_ratio(info: FileInfo) -> float:
    """UTF-8 bytes per byte of the file's own encoding, measured on its head."""
    if info.encoding in ("utf-8", "utf-8-sig", None):
        return 1.0
    with open_stream(info.path, info.compression, info.member) as f:
        head = f.read(HEAD_BYTES)
    return len(decode_head(head, info.encoding).encode("utf-8")) / max(1, len(head))


def _xlsx_dimension_rows(info: FileInfo) -> int:
    """Rows below the header as the sheet's dimension tag says (may count trailing blank rows)."""
    import openpyxl

    with materialized(info) as real:
        wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
        try:
            max_row = wb[info.sheet].max_row
        finally:
            wb.close()
    return max(0, max_row - 1) if max_row else count_rows(info)
