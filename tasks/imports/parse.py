"""Step 1 of an import: find out what a file is, preview it, and stream it as Arrow batches.

Every reader yields the same thing whatever the format: bounded ``pa.RecordBatch``es
whose source columns are raw text (``pa.string()``, null for empty cells, no type
guessing: typing is the transform step's job, done once against the catalog), plus
``__row__`` — the row or line number a person sees when they open the file, so that
every later error can point at it — and ``__error__`` for rows the reader itself
found broken (ragged CSV rows, invalid JSON lines). Broken rows are yielded, never
padded silently or dropped, so validation reports them with everything else.

CSV is the format that matters most and the one that goes wrong most, so it gets a
two-speed reader. The fast path cuts the decoded text into record-aligned blocks with
numpy (a newline ends a record when an even number of quotes precede it), numbers the
records' first lines from the same arrays, and lets pyarrow's multi-threaded parser do
the rest. Whenever that model of the file could be wrong — a quote in the middle of an
unquoted field, a ragged row, a row count that disagrees — the block (or, for stray
quotes, the rest of the file) goes through Python's ``csv`` module, which is slower but
exact. Correct first, fast when the file allows it.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import itertools
import json
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ferry.errors import SourceFileError

ROW = "__row__"
ERROR = "__error__"
FILE_TYPES = ("csv", "tsv", "json", "jsonl", "xlsx", "xls", "parquet")

HEAD_BYTES = 64 * 1024  # what sniffing reads from the start of the (decompressed) file
BLOCK_BYTES = 2 * 1024 * 1024  # CSV text pyarrow parses per block (bigger is slower and holds more memory)
PREVIEW_BLOCK_BYTES = 1024 * 1024  # a preview parses one block this size, enough to estimate bytes per row
EXACT_COUNT_BYTES = 64 * 1024 * 1024  # text files up to this (decompressed) size are counted exactly on preview
JSON_EXACT_BYTES = 4 * 1024 * 1024  # JSON arrays up to this size are parsed whole to count them exactly
XLSX_EXACT_BYTES = 2 * 1024 * 1024  # XLSX files up to this size are counted exactly (openpyxl reads ~50k rows/s)
MAX_RECORD_BYTES = 256 * 1024 * 1024  # a "record" longer than this is an unterminated quote, not data
SNIFF_RECORDS = 200  # records read to choose the CSV delimiter
JSON_KEY_SCAN = 10_000  # JSON elements read to discover the columns

_DELIMITERS = (",", "\t", ";", "|")
_JUNK_MEMBERS = re.compile(r"(^|/)(__MACOSX/|\.|Thumbs\.db$)")
_SEP_LINE = re.compile(r"^sep=(.)\s*$")
_MAGIC_XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

csv.field_size_limit(MAX_RECORD_BYTES)


def _latin1_fallback(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes that Windows-1252 leaves undefined (0x81, 0x8D, ...) decode as Latin-1 would."""
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("ferry-latin1", _latin1_fallback)


@dataclass(frozen=True)
class FileInfo:
    """What :func:`sniff` found out about a file: enough to read it again without guessing."""

    path: Path
    file_type: str  # csv tsv json jsonl xlsx xls parquet
    compression: str | None  # None, "gzip", "zip"
    encoding: str | None  # a Python codec name; None for binary formats
    delimiter: str | None
    quotechar: str | None
    columns: list[str]  # unique, cleaned source column names, in file order
    warnings: list[str]  # e.g. duplicate/blank headers renamed
    member: str | None = None  # the data file inside a zip archive
    sheet: str | None = None  # the worksheet read from a workbook
    json_path: str | None = None  # ijson prefix of the array of records ("item", or "data.item")
    skip_records: int = 0  # CSV records before the header (Excel's "sep=;" line)
    header_record: int = 1  # CSV: the header's record number, counting blank lines (1 unless lines precede it)
    trailing_delimiter: bool = False  # CSV: data rows end with a delimiter the header lacks ("a,b,c,")
    line_terminator: str | None = None  # "\n", "\r\n" or "\r" (CSV, as first seen)
    size_bytes: int = 0  # the file's size on disk
    raw_columns: list[str] = field(default_factory=list)  # the header as written, before cleaning

    def schema(self) -> pa.Schema:
        """The schema of every batch :func:`iter_batches` yields for this file."""
        return batch_schema(self.columns)


def batch_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.string()) for c in columns] + [pa.field(ROW, pa.int64()), pa.field(ERROR, pa.string())])


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
    problems: list[str] = field(default_factory=list)  # reader errors in the sampled rows, with their row numbers
    sample_row_numbers: list[int] = field(default_factory=list)  # __row__ of each sample row

    def to_json(self) -> dict:
        return {
            "fileType": self.file_type,
            "compression": self.compression,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "quotechar": self.quotechar,
            "sheet": self.sheet,
            "columns": self.columns,
            "totalRows": self.total_rows,
            "totalRowsEstimated": self.total_rows_estimated,
            "warnings": self.warnings,
            "problems": self.problems,
            "sampleRows": self.sample_rows,
            "sampleRowNumbers": self.sample_row_numbers,
        }


# --- opening: compression, materialising ---------------------------------------------------


def _detect_compression(path: Path) -> tuple[str | None, str | None]:
    """("gzip" | "zip" | None, zip member). An .xlsx is a zip too, but not a wrapper."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip", None
    if magic[:2] != b"PK":
        return None, None
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise SourceFileError(
            f"{path.name} starts like a zip archive but cannot be opened ({exc}).",
            "Re-create the archive, or import the uncompressed file.",
        ) from exc
    with archive:
        names = archive.namelist()
        if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
            return None, None
        members = [i for i in archive.infolist() if not i.is_dir() and not _JUNK_MEMBERS.search(i.filename)]
    if not members:
        raise SourceFileError(f"The zip archive {path.name} holds no data file.", "Zip the file to import and try again.")
    if len(members) > 1:
        shown = ", ".join(m.filename for m in members[:5]) + (", ..." if len(members) > 5 else "")
        raise SourceFileError(
            f"The zip archive {path.name} holds {len(members)} files ({shown}); an import reads exactly one.",
            "Zip only the file to import, or unzip the archive and import each file on its own.",
        )
    if members[0].flag_bits & 0x1:
        raise SourceFileError(f"{members[0].filename} in {path.name} is encrypted.", "Import an unencrypted archive.")
    return "zip", members[0].filename


@contextmanager
def _open_stream(path: Path, compression: str | None, member: str | None) -> Iterator[BinaryIO]:
    """The file's decompressed bytes, streamed."""
    if compression == "gzip":
        with gzip.open(path, "rb") as f:
            yield f
    elif compression == "zip":
        with zipfile.ZipFile(path) as archive, archive.open(member) as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


@contextmanager
def _materialized(info_or_path, compression: str | None = None, member: str | None = None) -> Iterator[Path]:
    """A real, seekable file for readers that need one (xlsx, xls, parquet): a temp copy if compressed."""
    if isinstance(info_or_path, FileInfo):
        path, compression, member = info_or_path.path, info_or_path.compression, info_or_path.member
    else:
        path = info_or_path
    if compression is None:
        yield path
        return
    suffix = Path(member or path.name.removesuffix(".gz")).suffix
    with tempfile.NamedTemporaryFile(prefix="ferry-import-", suffix=suffix) as tmp:
        with _open_stream(path, compression, member) as src:
            shutil.copyfileobj(src, tmp, 1024 * 1024)
        tmp.flush()
        yield Path(tmp.name)


def _inner_name(path: Path, compression: str | None, member: str | None) -> str:
    if compression == "zip" and member:
        return Path(member).name.lower()
    name = path.name.lower()
    if compression == "gzip":
        for suffix in (".gz", ".gzip"):
            name = name.removesuffix(suffix)
        if name.endswith(".tgz"):
            name = name[:-4] + ".tar"
    return name


# --- encoding ---------------------------------------------------------------------------


def _valid_utf8(chunk: bytes, *, cut_start: bool) -> bool:
    """Whether ``chunk`` (possibly cut mid-character at either end) is UTF-8."""
    if cut_start:
        skip = 0
        while skip < min(3, len(chunk)) and 0x80 <= chunk[skip] <= 0xBF:
            skip += 1
        chunk = chunk[skip:]
    try:
        codecs.getincrementaldecoder("utf-8")().decode(chunk, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _detect_encoding(head: bytes, samples: list[bytes]) -> str:
    """BOMs first, then UTF-16 by its NUL bytes, then strict UTF-8, else Windows-1252 or Latin-1."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    probe = head[:4096]
    if len(probe) >= 4:
        evens, odds = probe[0::2], probe[1::2]
        even_nul, odd_nul = evens.count(0) / len(evens), odds.count(0) / len(odds)
        if odd_nul > 0.3 and even_nul < 0.05:
            return "utf-16-le"
        if even_nul > 0.3 and odd_nul < 0.05:
            return "utf-16-be"
        controls = sum(probe.count(bytes([c])) for c in (*range(9), *range(14, 27), *range(28, 32)))
        if (even_nul + odd_nul) > 0.1 or controls > len(probe) * 0.01:
            raise SourceFileError(
                "The file holds binary data, not text, and is no known spreadsheet or Parquet file.",
                "Import CSV, TSV, JSON, JSONL, XLSX, XLS or Parquet (optionally .gz or .zip).",
            )
    if _valid_utf8(head, cut_start=False) and all(_valid_utf8(s, cut_start=True) for s in samples):
        return "utf-8"
    undefined_in_cp1252 = {0x81, 0x8D, 0x8F, 0x90, 0x9D}
    if any(b in undefined_in_cp1252 for chunk in (head, *samples) for b in set(chunk)):
        return "latin-1"
    return "cp1252"


def _decode_head(head: bytes, encoding: str) -> str:
    errors = "ferry-latin1" if encoding == "cp1252" else "replace"
    return codecs.getincrementaldecoder(encoding)(errors=errors).decode(head, final=False).lstrip("\ufeff")


def _utf8_chunks(info: FileInfo, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    """The file's text as UTF-8 bytes, streamed (transcoded when the file is in another encoding)."""
    with _open_stream(info.path, info.compression, info.member) as f:
        if info.encoding in ("utf-8", "utf-8-sig"):
            first = True
            while chunk := f.read(chunk_bytes):
                if first and chunk.startswith(codecs.BOM_UTF8):
                    chunk = chunk[3:]
                first = False
                yield chunk
            return
        errors = "ferry-latin1" if info.encoding == "cp1252" else "strict"
        decoder = codecs.getincrementaldecoder(info.encoding)(errors=errors)
        first = True
        try:
            while chunk := f.read(chunk_bytes):
                if text := decoder.decode(chunk):
                    if first:
                        text, first = text.removeprefix("\ufeff"), False
                    yield text.encode("utf-8")
            if tail := decoder.decode(b"", final=True):
                yield tail.encode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceFileError(
                f"The file is not valid {info.encoding} ({exc.reason} in a byte sequence).", "Save it as UTF-8 and import it again."
            ) from exc


def _text_lines(chunks: Iterable[bytes], sep: str = "\n") -> Iterator[str]:
    """Lines (ending with ``sep``) of a stream of UTF-8 byte chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    try:
        for chunk in chunks:
            text = pending + decoder.decode(chunk)
            parts = text.split(sep)
            pending = parts.pop()
            for part in parts:
                yield part + sep
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise SourceFileError(
            "The file is not valid UTF-8 past its first part (mixed encodings?).", "Save it as UTF-8 and import it again."
        ) from exc
    if pending:
        yield pending


# --- sniffing -------------------------------------------------------------------------------


def sniff(path: Path | str, *, encoding: str | None = None) -> FileInfo:
    """Find out a file's format, compression, encoding, dialect and columns from its head.

    Reads at most a few hundred KB whatever the file's size (plus, for JSON, the first
    elements to collect their keys). ``encoding`` overrides the detected text encoding.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceFileError(f"No file at {path}.", "Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise SourceFileError(f"{path.name} is empty.", "Export the data again; the file has no bytes.")
    compression, member = _detect_compression(path)
    name = _inner_name(path, compression, member)
    with _open_stream(path, compression, member) as f:
        head = f.read(HEAD_BYTES)
        samples = _spread_samples(f, size) if compression is None and size > HEAD_BYTES else []
    base = dict(path=path, compression=compression, member=member, size_bytes=size)
    if not head:
        raise SourceFileError(f"{path.name} holds no data once decompressed.", "Export the data again.")
    if head.startswith(b"PAR1"):
        return _sniff_parquet(base)
    if head.startswith(_MAGIC_XLS):
        return _sniff_xls(base)
    if head.startswith(b"PK\x03\x04"):
        return _sniff_xlsx(base)
    if name.endswith((".xlsx", ".xlsm", ".xls", ".parquet")):
        if b"<html" in head[:2048].lower() or b"<table" in head[:2048].lower():
            raise SourceFileError(
                f"{path.name} is a web page (HTML) saved with a spreadsheet name, not a spreadsheet.",
                "Open it in a spreadsheet program and save it as XLSX or CSV.",
            )
        if name.endswith(".parquet"):
            raise SourceFileError(f"{path.name} is not a Parquet file (no PAR1 signature).", "Export it again as Parquet or CSV.")
    enc = encoding or _detect_encoding(head, samples)
    try:
        codecs.lookup(enc)
    except LookupError as exc:
        raise SourceFileError(f"Unknown text encoding {enc!r}.", "Use a Python codec name such as utf-8, cp1252 or utf-16.") from exc
    text = _decode_head(head, enc)
    eof = len(head) < HEAD_BYTES
    first = text.lstrip()[:1]
    wrong_name = (
        [f"{path.name} is named like a spreadsheet but holds text; it was read as delimited text."]
        if name.endswith((".xlsx", ".xlsm", ".xls"))
        else []
    )
    lines_named = name.endswith((".jsonl", ".ndjson", ".jsonlines"))
    if lines_named or name.endswith(".json") or (first in "{[" and first and not name.endswith((".csv", ".tsv", ".txt"))):
        return _sniff_json(base, enc, text, eof, lines_hint=lines_named)
    return _sniff_csv(base, enc, text, eof, name, wrong_name)


def _spread_samples(f: BinaryIO, size: int) -> list[bytes]:
    """Small reads across an uncompressed file, so a Windows-1252 byte past the head still counts."""
    samples = []
    for k in range(1, 8):
        f.seek(size * k // 8)
        samples.append(f.read(16 * 1024))
    f.seek(max(0, size - 16 * 1024))
    samples.append(f.read())
    return samples


def _unique_columns(raw: list[object]) -> tuple[list[str], list[str]]:
    """Clean header names (trim, one space for runs of whitespace) and make them unique.

    Blank names become ``column_N`` (N = 1-based position) and duplicates get ``_2``,
    ``_3``...; each change is reported, because a silently renamed column confuses mapping.
    """
    warnings: list[str] = []
    cleaned = [re.sub(r"\s+", " ", str(v).replace("\ufeff", "")).strip() if v is not None else "" for v in raw]
    taken = {c for c in cleaned if c} | {ROW, ERROR}
    seen: dict[str, int] = {}
    result: list[str] = []
    for position, name in enumerate(cleaned, 1):
        if not name:
            new = _free(f"column_{position}", taken)
            warnings.append(f"Column {position} has a blank header; it is named {new!r}.")
        elif name in (ROW, ERROR) or name in seen:
            new = _free(name, taken, start=2)
            first = seen.get(name)
            where = f"columns {first} and {position}" if first else f"column {position}"
            warnings.append(f"Duplicate header {name!r} ({where}); column {position} is named {new!r}.")
        else:
            new = name
        seen.setdefault(name, position)
        taken.add(new)
        result.append(new)
    return result, warnings


def _free(name: str, taken: set[str], start: int | None = None) -> str:
    if start is None and name not in taken:
        return name
    n = start or 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _sniff_csv(base: dict, enc: str, text: str, eof: bool, name: str, warnings: list[str]) -> FileInfo:
    if not eof:  # the head ends mid-record; keep whole lines only
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
    first_nl = re.search(r"\r\n|\n|\r", text)
    terminator = first_nl.group(0) if first_nl else "\n"
    skip = 0
    first_line = text.split(terminator, 1)[0]
    forced = None
    if m := _SEP_LINE.match(first_line):
        forced, skip = m.group(1), 1
    delimiter = forced or _choose_delimiter(text, prefer_tab=name.endswith((".tsv", ".tab")))
    quotechar = '"'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar, strict=False)
    header: list[str] | None = None
    seen = 0
    header_record = 0
    for record in reader:
        header_record += 1
        if not record:
            continue
        if seen < skip:
            seen += 1
            continue
        header = record
        break
    if header is None or not any(h.strip() for h in header):
        raise SourceFileError(f"{base['path'].name} has no header row.", "The first line must name the columns.")
    columns, renames = _unique_columns(header)
    file_type = "tsv" if delimiter == "\t" else "csv"
    data = [r for r in itertools.islice(reader, SNIFF_RECORDS) if r]
    trailing = bool(data) and sum(1 for r in data if len(r) == len(header) + 1 and r[-1] == "") >= 0.8 * len(data)
    return FileInfo(
        file_type=file_type,
        encoding=enc,
        delimiter=delimiter,
        quotechar=quotechar,
        columns=columns,
        warnings=warnings + renames,
        skip_records=skip,
        header_record=header_record,
        line_terminator=terminator,
        raw_columns=list(header),
        trailing_delimiter=trailing,
        **base,
    )


def _choose_delimiter(text: str, prefer_tab: bool) -> str:
    """The delimiter that splits the first records into the most consistent number (>1) of fields.

    csv.Sniffer guesses from character frequencies and is easily fooled by commas in
    text; parsing with each candidate and comparing field counts is more robust and
    just as cheap on 64 KB. Ties go to the higher field count, then to , \\t ; | in that order.
    """
    best, best_score = ",", (-1.0, 0, 0)
    for rank, delimiter in enumerate(_DELIMITERS):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
        counts = [len(r) for r in itertools.islice(reader, SNIFF_RECORDS) if r]
        if not counts:
            continue
        modal = max(set(counts), key=lambda c: (counts.count(c), c))
        if modal < 2:
            continue
        consistency = counts.count(modal) / len(counts)
        if counts[0] != modal:  # the header must agree
            consistency *= 0.5
        bonus = 1 if prefer_tab and delimiter == "\t" else 0
        score = (round(consistency, 3) + bonus, modal, -rank)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _sniff_json(base: dict, enc: str, text: str, eof: bool, lines_hint: bool) -> FileInfo:
    path: Path = base["path"]
    stripped = text.lstrip()
    if not stripped:
        raise SourceFileError(f"{path.name} holds only whitespace.", "Export the data again.")
    several_lines = sum(1 for line in stripped.split("\n")[:3] if line.strip()) > 1
    if stripped[0] == "{" and _first_line_is_object(stripped) and (lines_hint or several_lines):
        info = FileInfo(file_type="jsonl", encoding=enc, delimiter=None, quotechar=None, columns=[], warnings=[], **base)
        keys = _collect_keys(_iter_jsonl_objects(info, limit=JSON_KEY_SCAN))
        return _with_columns(info, keys)
    if lines_hint and stripped[0] != "[":
        raise SourceFileError(f"{path.name}: the first line is not a complete JSON object.", "JSONL needs one JSON object per line.")
    prefix, note = "item", []
    if stripped[0] == "{":
        key = _single_array_key(base, enc)
        if key is None:
            raise SourceFileError(
                f"{path.name} holds one JSON object, not a list of records.",
                "Import a JSON array of objects, an object whose first key holds that array, or JSONL.",
            )
        prefix, note = f"{key}.item", [f"Records are read from the array under the key {key!r}."]
    elif stripped[0] != "[":
        raise SourceFileError(f"{path.name} is not JSON (it starts with {stripped[0]!r}).", "Import a JSON array of objects or JSONL.")
    info = FileInfo(file_type="json", encoding=enc, delimiter=None, quotechar=None, columns=[], warnings=note, json_path=prefix, **base)
    keys = _collect_keys(_iter_json_objects(info, limit=JSON_KEY_SCAN))
    return _with_columns(info, keys)


def _first_line_is_object(text: str) -> bool:
    line = text.split("\n", 1)[0].strip()
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _single_array_key(base: dict, enc: str) -> str | None:
    import ijson

    probe = FileInfo(file_type="json", encoding=enc, delimiter=None, quotechar=None, columns=[], warnings=[], **base)
    events = ijson.parse(_ChunkReader(_utf8_chunks(probe)))
    try:
        first = [e for _, e in zip(range(3), events)]
    except ijson.JSONError:
        return None
    if len(first) == 3 and first[0][1] == "start_map" and first[1][1] == "map_key" and first[2][1] == "start_array":
        key = first[1][2]
        return key if re.fullmatch(r"[^.\s]+", key) else None
    return None


def _collect_keys(objects: Iterable[tuple[int, object, str | None]]) -> list[str]:
    keys: dict[str, None] = {}
    for _, obj, _ in objects:
        if isinstance(obj, dict):
            keys.update(dict.fromkeys(obj))
    return list(keys)


def _with_columns(info: FileInfo, keys: list[str]) -> FileInfo:
    if not keys:
        raise SourceFileError(f"{info.path.name} holds no JSON objects with keys.", "Each record must be a JSON object.")
    columns, renames = _unique_columns(keys)
    return FileInfo(**{**info.__dict__, "columns": columns, "raw_columns": keys, "warnings": info.warnings + renames})


def _pick_sheet(names: list[str], has_rows: list[bool], path: Path) -> tuple[int, list[str]]:
    candidates = [i for i, ok in enumerate(has_rows) if ok]
    if not candidates:
        raise SourceFileError(f"{path.name} has no worksheet with data.", "Put the data on the first sheet.")
    index = candidates[0]
    warnings = []
    if len(names) > 1:
        others = ", ".join(repr(n) for i, n in enumerate(names) if i != index)
        warnings.append(f"The workbook has {len(names)} sheets; sheet {names[index]!r} is read, not {others}.")
    return index, warnings


def _sniff_xlsx(base: dict) -> FileInfo:
    import openpyxl

    with _materialized(base["path"], base["compression"], base["member"]) as real:
        try:
            wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for broken files
            raise SourceFileError(
                f"{base['path'].name} is not a readable XLSX workbook ({type(exc).__name__}).",
                "Open it in a spreadsheet program and save it again as XLSX or CSV.",
            ) from exc
        try:
            sheets = [ws for ws in wb.worksheets if ws.sheet_state == "visible"] or list(wb.worksheets)
            firsts = []
            for ws in sheets:
                ws.reset_dimensions()  # read-only mode trusts the file's dimension tag, which writers get wrong
                firsts.append(_first_row(ws))
            index, warnings = _pick_sheet([ws.title for ws in sheets], [f is not None for f in firsts], base["path"])
        finally:
            wb.close()
    _, header = firsts[index]
    header = _trim_trailing_none(header)
    columns, renames = _unique_columns([_cell_text(v) for v in header])
    return FileInfo(
        file_type="xlsx",
        encoding=None,
        delimiter=None,
        quotechar=None,
        columns=columns,
        warnings=warnings + renames,
        sheet=sheets[index].title,
        raw_columns=[_cell_text(v) or "" for v in header],
        **base,
    )


def _first_row(ws) -> tuple[int, tuple] | None:
    for number, row in enumerate(ws.iter_rows(values_only=True), 1):
        if any(v is not None and str(v).strip() != "" for v in row):
            return number, row
    return None


def _trim_trailing_none(row) -> list:
    values = list(row)
    while values and (values[-1] is None or str(values[-1]).strip() == ""):
        values.pop()
    return values


def _sniff_xls(base: dict) -> FileInfo:
    with _materialized(base["path"], base["compression"], base["member"]) as real:
        book = _open_xls(real, base["path"])
        try:
            names = book.sheet_names()
            has_rows = [book.sheet_by_index(i).nrows > 0 for i in range(len(names))]
            index, warnings = _pick_sheet(names, has_rows, base["path"])
            sheet = book.sheet_by_index(index)
            header_row = next(r for r in range(sheet.nrows) if any(str(v).strip() for v in sheet.row_values(r)))
            header = _trim_trailing_none([_xls_text(sheet.cell(header_row, c), book.datemode) for c in range(sheet.ncols)])
        finally:
            book.release_resources()
    columns, renames = _unique_columns(header)
    return FileInfo(
        file_type="xls",
        encoding=None,
        delimiter=None,
        quotechar=None,
        columns=columns,
        warnings=warnings + renames,
        sheet=names[index],
        raw_columns=[h or "" for h in header],
        **base,
    )


def _open_xls(real: Path, shown: Path):
    import xlrd

    try:
        return xlrd.open_workbook(str(real), on_demand=True)
    except xlrd.XLRDError as exc:
        raise SourceFileError(
            f"{shown.name} is not a readable XLS workbook ({exc}).", "Open it in a spreadsheet program and save it again as XLSX or CSV."
        ) from exc


def _sniff_parquet(base: dict) -> FileInfo:
    import pyarrow.parquet as pq

    with _materialized(base["path"], base["compression"], base["member"]) as real:
        try:
            names = pq.ParquetFile(real).schema_arrow.names
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceFileError(f"{base['path'].name} is not a readable Parquet file ({exc}).", "Export it again.") from exc
    columns, renames = _unique_columns(names)
    return FileInfo(
        file_type="parquet",
        encoding=None,
        delimiter=None,
        quotechar=None,
        columns=columns,
        warnings=renames,
        raw_columns=list(names),
        **base,
    )


# --- reading: the common batch builder ---------------------------------------------------------


class _Batcher:
    """Collects rows given as Python values into RecordBatches of at most ``size`` rows."""

    def __init__(self, columns: list[str], size: int) -> None:
        self.schema = batch_schema(columns)
        self.width = len(columns)
        self.size = size
        self._empty = [None] * self.width
        self._reset()

    def _reset(self) -> None:
        self.values: list[list] = []
        self.rows: list[int] = []
        self.errors: list[str | None] = []

    def add(self, row: int, values: list | None, error: str | None = None) -> pa.RecordBatch | None:
        """``values``: at most ``width`` cell texts (missing ones are null), or None for none."""
        if values is None:
            values = self._empty
        elif len(values) < self.width:
            values = values + self._empty[len(values) :]
        self.values.append(values)
        self.rows.append(row)
        self.errors.append(error)
        return self.flush() if len(self.rows) >= self.size else None

    def flush(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        columns = list(zip(*self.values)) if self.width else []
        arrays = [pa.array(c, pa.string()) for c in columns]
        arrays += [pa.array(self.rows, pa.int64()), pa.array(self.errors, pa.string())]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._reset()
        return batch


def iter_batches(info: FileInfo, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream the file's rows as Arrow batches of at most ``batch_rows`` rows.

    Schema: every source column as ``pa.string()`` (raw text, null when empty), then
    ``__row__`` (the row's line or row number in the file) and ``__error__`` (null, or
    why the reader could not read the row, e.g. ``ragged row: 7 values, header has 5``).
    Memory stays bounded by the block size, whatever the file's size. Rows with no
    value at all (blank lines, ``,,,,`` lines, empty spreadsheet rows) are skipped.
    """
    yield from _batches(info, batch_rows, BLOCK_BYTES, _Stats())


@dataclass
class _Stats:
    """What a reader has consumed: lets a preview extrapolate the row count."""

    rows: int = 0
    eof: bool = False


def _batches(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    readers = {
        "csv": _iter_csv,
        "tsv": _iter_csv,
        "jsonl": _iter_jsonl,
        "json": _iter_json,
        "xlsx": _iter_xlsx,
        "xls": _iter_xls,
        "parquet": _iter_parquet,
    }
    for batch in readers[info.file_type](info, batch_rows, block_bytes, stats):
        if batch.num_rows:
            stats.rows += batch.num_rows
            yield batch
    stats.eof = True


# --- CSV / TSV ------------------------------------------------------------------------------


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


class _CountingStream(io.RawIOBase):
    """A readable file over UTF-8 chunks for pyarrow, counting quotes and newlines and
    keeping the last chunks, so that the final record can be checked after the fact.

    pyarrow's streaming CSV reader reads ahead on its own IO thread, up to 32 blocks
    (64 MB of Python bytes at 2 MB blocks, a third of the read stage's memory). The
    stream lets it run only ``READS_AHEAD`` reads ahead of the parsed blocks the
    consumer has asked for (``want_block()``). The wait has a timeout, so a parser
    that needs more than that is slowed down, never deadlocked.
    """

    READS_AHEAD = 4
    WAIT_SECONDS = 0.5

    def __init__(self, chunks: Iterator[bytes], quote: bytes | None) -> None:
        self._chunks = chunks
        self._quote = quote
        self._buf = memoryview(b"")
        self.quotes = 0
        self.newlines = 0
        self.total = 0
        self.tail: list[bytes] = []
        self._turn = threading.Condition()
        self._reads = 0
        self._allowed = self.READS_AHEAD

    def readable(self) -> bool:
        return True

    def want_block(self) -> None:
        """The consumer asks for one more parsed block: the reader may read one more."""
        with self._turn:
            self._allowed += 1
            self._turn.notify()

    def readinto(self, b) -> int:
        with self._turn:
            self._turn.wait_for(lambda: self._reads < self._allowed, timeout=self.WAIT_SECONDS)
            self._reads += 1
        # Fill the buffer (short reads only at EOF, or to keep a CR with its LF, see below).
        filled = 0
        while filled < len(b):
            if not len(self._buf):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                if self._quote:
                    self.quotes += chunk.count(self._quote)
                self.newlines += chunk.count(b"\n")
                self.total += len(chunk)
                self.tail = (self.tail + [chunk])[-2:]
                self._buf = memoryview(chunk)
            n = min(len(b) - filled, len(self._buf))
            b[filled : filled + n] = self._buf[:n]
            self._buf = self._buf[n:]
            filled += n
        if filled > 1 and b[filled - 1] == 13:
            # pyarrow drops the LF of a quoted CR LF split across two reads (apache/arrow#51368,
            # fix pending in #51394): never end a read on a CR unless the file ends there.
            self._buf = memoryview(b"\r" + bytes(self._buf))
            filled -= 1
        return filled


class _ArrowCsvFailed(Exception):
    """pyarrow gave up on the file (e.g. a record longer than a block): read it exactly instead."""


@dataclass
class _CsvProgress:
    done_line: int = 0  # the line of the last row yielded


def _iter_csv(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    progress = _CsvProgress()
    if info.line_terminator != "\r":  # pyarrow takes a lone CR for a line break everywhere; csv.reader does not
        try:
            yield from _arrow_csv(info, batch_rows, block_bytes, progress)
            return
        except _ArrowCsvFailed:
            pass
    yield from _python_csv(info, _utf8_chunks(info), batch_rows, after_line=progress.done_line)


def _arrow_csv(info: FileInfo, batch_rows: int, block_bytes: int, progress: _CsvProgress) -> Iterator[pa.RecordBatch]:
    """The fast path: pyarrow's streaming parser, with line numbers derived from the data.

    pyarrow numbers records (blank lines included) but not lines. A record starts on line
    ``record number + newlines inside the values of all earlier records``, and the
    newlines inside values are counted column-wise in Arrow. Ragged records go to the
    invalid-row handler with their number and text, and are put back in their place.
    """
    ncols = len(info.columns)
    names = [f"f{i}" for i in range(ncols + info.trailing_delimiter)]
    schema = batch_schema(info.columns)
    invalid: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    quote = info.quotechar.encode() if info.quotechar else None
    stream = _CountingStream(_utf8_chunks(info, min(block_bytes, 8 * 1024 * 1024)), quote)
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=block_bytes),
            parse_options=pacsv.ParseOptions(
                delimiter=info.delimiter or ",",
                quote_char=info.quotechar or False,
                double_quote=True,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        _raise_if_encoding(info, exc, 1)
        raise _ArrowCsvFailed() from exc
    next_record, next_line = 1, 1
    # pyarrow parses 1 MB blocks (bigger ones are slower and keep far more memory); their rows
    # are gathered into batches of ``batch_rows``. The last row read is always held back: it
    # may prove to be an unterminated quote, and after a failure the exact path takes over
    # from the rows already yielded.
    held: list[pa.Table] = []
    held_rows = 0
    while True:
        stream.want_block()  # before the read, not after: the reader's thread then runs while this one parses, without the GIL
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            _raise_if_encoding(info, exc, next_line)
            raise _ArrowCsvFailed() from exc
        numbers, bad = _record_numbers(next_record, batch.num_rows, invalid)
        out, next_record, next_line = _arrow_rows(info, schema, batch, numbers, bad, next_line)
        held.append(out)
        held_rows += out.num_rows
        if held_rows > batch_rows:
            table = pa.concat_tables(held).combine_chunks()
            ready = ((table.num_rows - 1) // batch_rows) * batch_rows
            yield from table.slice(0, ready).to_batches(max_chunksize=batch_rows)
            progress.done_line = int(table.column(ROW)[ready - 1].as_py())
            held, held_rows = [table.slice(ready)], table.num_rows - ready
    if invalid:  # invalid records after the last valid row
        empty = pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in names], names=names)
        numbers, bad = np.array([], dtype=np.int64), sorted(invalid)
        invalid.clear()
        out, next_record, next_line = _arrow_rows(info, schema, empty, numbers, bad, next_line)
        held.append(out)
    rows = pa.concat_tables(held).combine_chunks() if held else None
    if rows is not None and rows.num_rows:
        if quote and stream.quotes % 2 == 1:
            rows = _check_last_record(info, stream, rows)
        yield from rows.to_batches(max_chunksize=batch_rows)


def _raise_if_encoding(info: FileInfo, exc: Exception, line: int) -> None:
    if "utf8" in str(exc).lower() or "utf-8" in str(exc).lower():
        raise SourceFileError(
            f"{info.path.name} is not valid {info.encoding} past line {line} (the start of the file looked like it; mixed encodings?).",
            "Save it as UTF-8, or pass the right encoding, and import it again.",
        ) from exc


def _record_numbers(first: int, valid: int, invalid: list[tuple[int, str]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The record numbers of a batch's ``valid`` rows, and the invalid records among (or right after) them.

    Records are numbered consecutively from ``first``; each is either a row of the batch or
    an invalid record the handler saw (in order). Those consumed are removed from ``invalid``,
    which so never holds more than a block's worth.
    """
    end = first + valid
    taken = 0
    while taken < len(invalid) and invalid[taken][0] <= end:
        end += 1
        taken += 1
    bad = invalid[:taken]
    del invalid[:taken]
    if not bad:
        return np.arange(first, end, dtype=np.int64), bad
    mask = np.ones(end - first, dtype=bool)
    mask[np.array([n for n, _ in bad], dtype=np.int64) - first] = False
    return np.arange(first, end, dtype=np.int64)[mask], bad


def _arrow_rows(
    info: FileInfo, schema: pa.Schema, batch: pa.RecordBatch, numbers: np.ndarray, bad: list[tuple[int, str]], first_line: int
) -> tuple[pa.Table, int, int]:
    """A batch's rows in file order with their line numbers; header and blank rows dropped,
    invalid records parsed by csv.reader and flagged. Returns (rows, next record, next line)."""
    ncols = len(info.columns)
    columns = [batch.column(i) for i in range(ncols)]
    trailing = batch.column(ncols) if batch.num_columns > ncols else None
    inner = np.zeros(batch.num_rows, dtype=np.int64)
    for column in columns:
        if column.null_count == len(column) or not _may_hold_newline(column):
            continue
        # (no Python scalars here: converting one makes pyarrow import pandas, ~1 s of a preview)
        counts = pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
        inner += np.nan_to_num(counts, nan=0).astype(np.int64) if column.null_count else counts
    all_numbers = numbers
    all_inner = inner
    if bad:
        all_numbers = np.concatenate([numbers, np.array([n for n, _ in bad], dtype=np.int64)])
        all_inner = np.concatenate([inner, np.array([t.count("\n") for _, t in bad], dtype=np.int64)])
        order = np.argsort(all_numbers, kind="stable")
        all_numbers, all_inner = all_numbers[order], all_inner[order]
    if not len(all_numbers):
        return pa.Table.from_batches([], schema=schema), 0, first_line
    first_record = int(all_numbers[0])
    before = np.concatenate(([0], np.cumsum(all_inner)[:-1]))
    lines = first_line + (all_numbers - first_record) + before
    line_of = dict(zip(all_numbers.tolist(), lines.tolist())) if bad else None
    next_record = int(all_numbers[-1]) + 1
    next_line = int(lines[-1] + 1 + all_inner[-1])
    row_lines = lines if not bad else np.array([line_of[n] for n in numbers.tolist()], dtype=np.int64)
    errors = pa.nulls(batch.num_rows, pa.string())
    if trailing is not None and trailing.null_count < len(trailing):  # a value after the trailing delimiter
        errors = pa.array(
            np.where(trailing.is_null().to_numpy(zero_copy_only=False), None, f"ragged row: {ncols + 1} values, header has {ncols}"),
            pa.string(),
        )
    table = pa.Table.from_arrays(columns + [pa.array(row_lines, pa.int64()), errors], schema=schema)
    keep = pa.array(numbers > info.header_record)
    if columns and all(c.null_count for c in columns):  # a column without nulls means no empty row
        empty = functools.reduce(pc.and_, [pc.is_null(c) for c in columns])
        keep = pc.and_(keep, pc.invert(empty))
    if keep.false_count if isinstance(keep, pa.Array) else not pc.all(keep).as_py():
        table = table.filter(keep)
    if bad:
        extra = _Batcher(info.columns, len(bad) + 1)
        for number, text in bad:
            if number <= info.header_record:
                continue
            row = _parse_record(info, text)
            values, error = _row_values(row, ncols)
            if values is None and error is None:
                continue
            extra.add(line_of[number], values, error)
        if (flushed := extra.flush()) is not None:
            merged = pa.concat_tables([table, pa.Table.from_batches([flushed])])
            table = merged.take(pc.sort_indices(merged, [(ROW, "ascending")]))
    return table, next_record, next_line


def _may_hold_newline(column: pa.Array) -> bool:
    """Whether a string column's value bytes contain a LF at all (one memchr-speed pass)."""
    data = column.buffers()[2]
    return data is not None and np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10) > 0


def _parse_record(info: FileInfo, text: str) -> list[str]:
    kw = {"quotechar": info.quotechar, "doublequote": True} if info.quotechar else {"quoting": csv.QUOTE_NONE}
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=info.delimiter or ",", strict=False, **kw), [])
    except csv.Error:
        return [text]


def _row_values(record: list[str], ncols: int) -> tuple[list | None, str | None]:
    """(values, error) of one parsed record; (None, None) for a record with no value at all."""
    if not record or all(v == "" for v in record):
        return None, None
    n = len(record)
    error = None
    if n != ncols and not (n > ncols and all(v == "" for v in record[ncols:])):
        error = f"ragged row: {n} values, header has {ncols}"
    return [v if v != "" else None for v in record[:ncols]], error


def _check_last_record(info: FileInfo, stream: _CountingStream, rows: pa.Table) -> pa.Table:
    """With an odd number of quotes in the file, the last record may be an unterminated quoted
    field that swallowed the rest of the file: re-read it strictly and flag it if so."""
    last_line = int(rows.column(ROW)[-1].as_py())
    tail = b"".join(stream.tail)
    pos = len(tail)
    for _ in range(stream.newlines - (last_line - 1) + 1):  # back to the newline before the record
        pos = tail.rfind(b"\n", 0, pos)
        if pos < 0:
            break
    if pos < 0 and stream.total > len(tail):
        text = None  # the record is longer than the tail kept: only an unterminated quote does that
    else:
        text = tail[pos + 1 :].decode("utf-8", errors="replace")
    if text is not None and not _unterminated(list(_text_lines([text.encode("utf-8")])), info.delimiter or ",", info.quotechar):
        return rows
    error = _Batcher(info.columns, 2)
    error.add(last_line, None, f"unterminated quoted field starting on line {last_line}")
    return pa.concat_tables([rows.slice(0, rows.num_rows - 1), pa.Table.from_batches([error.flush()])])


class _RecordLines:
    """Feeds csv.reader lines and keeps those of the current record, so that the last
    record can be checked for an unterminated quote (csv.reader accepts one silently)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.current: list[str] = []
        self.exhausted = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.current.append(line)
        return line


def _unterminated(lines: list[str], delimiter: str, quotechar: str) -> bool:
    try:
        list(csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _python_csv(info: FileInfo, chunks: Iterable[bytes], batch_rows: int, after_line: int = 0) -> Iterator[pa.RecordBatch]:
    """The exact CSV path: Python's csv module, with physical line numbers from its line count.

    ``after_line``: rows starting on or before this line were yielded by the fast path,
    which this one takes over from.
    """
    sep = "\r" if info.line_terminator == "\r" else "\n"
    source = _RecordLines(_text_lines(chunks, sep))
    delimiter = info.delimiter or ","
    kw = {"quotechar": info.quotechar, "doublequote": True} if info.quotechar else {"quoting": csv.QUOTE_NONE}
    reader = csv.reader(source, delimiter=delimiter, strict=False, **kw)
    batcher = _Batcher(info.columns, batch_rows)
    ncols = len(info.columns)
    skip = info.header_record
    number = 0
    while True:
        start = reader.line_num + 1
        source.current = []
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            reason = "a quoted field never ends (unterminated quote?)" if "field larger" in str(exc) else f"unreadable row ({exc})"
            if number > skip and start > after_line and (batch := batcher.add(start, None, reason)):
                yield batch
            continue
        number += 1
        if number <= skip or start <= after_line:
            continue
        if source.exhausted and info.quotechar and _unterminated(source.current, delimiter, info.quotechar):
            values, error = None, f"unterminated quoted field starting on line {start}"
        else:
            values, error = _row_values(record, ncols)
            if values is None:
                continue
        if batch := batcher.add(start, values, error):
            yield batch
    if batch := batcher.flush():
        yield batch


# --- JSON / JSONL ----------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for ijson)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "E" not in str(value) else float(value)
    return str(value)


def _json_text(value) -> str:
    """Compact JSON of a nested value (orjson: no ASCII escapes, keys in order)."""
    try:
        return orjson.dumps(value, default=_json_default).decode("utf-8")
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _cell_text(value) -> str | None:
    """A parsed value (JSON, spreadsheet cell) as the text a person would type."""
    kind = type(value)
    if kind is str:
        return value or None
    if value is None:
        return None
    if kind is int:
        return str(value)
    if kind is Decimal:
        return str(value)
    if kind is dict or kind is list:
        return _json_text(value)
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (dict, list)):
        return _json_text(value)
    return str(value)


def _iter_jsonl_objects(
    info: FileInfo, limit: int | None = None, chunks: Iterable[bytes] | None = None
) -> Iterator[tuple[int, object, str | None]]:
    """(line number, parsed value or None, error) per non-blank line."""
    chunks = _utf8_chunks(info) if chunks is None else chunks
    seen = 0
    number = 0
    partial = b""
    for chunk in itertools.chain(chunks, [b"\n"]):
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        for line in lines:
            number += 1
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line), None
            except orjson.JSONDecodeError:
                try:  # orjson refuses what json accepts (integers past 64 bits, NaN): try it
                    yield number, json.loads(line.decode("utf-8", errors="replace")), None
                except (ValueError, RecursionError) as exc:
                    where = f" at character {exc.pos + 1}" if getattr(exc, "pos", None) is not None else ""
                    yield number, None, f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)}{where})"
            seen += 1
            if limit is not None and seen >= limit:
                return


def _iter_json_objects(
    info: FileInfo, limit: int | None = None, chunks: Iterable[bytes] | None = None
) -> Iterator[tuple[int, object, str | None]]:
    """(element number, parsed value, error) per element of the array; a syntax error ends the file."""
    import ijson

    chunks = _utf8_chunks(info) if chunks is None else chunks
    number = 0
    try:
        for number, value in enumerate(ijson.items(_ChunkReader(chunks), info.json_path or "item"), 1):
            yield number, value, None
            if limit is not None and number >= limit:
                return
    except ijson.JSONError as exc:
        yield number + 1, None, f"invalid JSON after element {number}; the rest of the file is unreadable ({str(exc)[:80]})"


def _iter_objects(info: FileInfo, objects, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """One row per JSON value: an object's keys by column (keys not seen while sniffing are
    ignored), anything else an error row. An object with no known key is still a row."""
    batcher = _Batcher(info.columns, batch_rows)
    positions = {raw: i for i, raw in enumerate(info.raw_columns)}
    width = len(info.columns)
    text = _cell_text
    for number, value, error in objects:
        values = None
        if error is None:
            if type(value) is not dict:
                error = f"not a JSON object (got {type(value).__name__})"
            else:
                values = [None] * width
                for key, item in value.items():
                    i = positions.get(key)
                    if i is not None:
                        values[i] = text(item)
        if batch := batcher.add(number, values, error):
            yield batch
    if batch := batcher.flush():
        yield batch


def _iter_jsonl(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    yield from _iter_objects(info, _iter_jsonl_objects(info), batch_rows)


def _iter_json(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    yield from _iter_objects(info, _iter_json_objects(info), batch_rows)


# --- spreadsheets and Parquet -------------------------------------------------------------------


def _sheet_rows(info: FileInfo, numbered_rows: Iterable[tuple[int, list]], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Rows after the header: values per header column; a value beyond the last header is an error."""
    batcher = _Batcher(info.columns, batch_rows)
    ncols = len(info.columns)
    header_seen = False
    for number, row in numbered_rows:
        values = [_cell_text(v) for v in row]
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


def _iter_xlsx(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    import openpyxl

    with _materialized(info) as real:
        wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
        try:
            ws = wb[info.sheet] if info.sheet else wb.worksheets[0]
            ws.reset_dimensions()
            yield from _sheet_rows(info, enumerate(ws.iter_rows(values_only=True), 1), batch_rows)
        finally:
            wb.close()


def _xls_text(cell, datemode: int) -> str | None:
    import xlrd

    kind, value = cell.ctype, cell.value
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    if kind == xlrd.XL_CELL_DATE:
        try:
            return _cell_text(xlrd.xldate_as_datetime(value, datemode))
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return _cell_text(value)
    if kind == xlrd.XL_CELL_BOOLEAN:
        return "true" if value else "false"
    return _cell_text(value)


def _iter_xls(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    with _materialized(info) as real:
        book = _open_xls(real, info.path)
        try:
            sheet = book.sheet_by_name(info.sheet) if info.sheet else book.sheet_by_index(0)
            rows = ((r + 1, [_xls_text(c, book.datemode) for c in sheet.row(r)]) for r in range(sheet.nrows))
            yield from _sheet_rows(info, rows, batch_rows)
        finally:
            book.release_resources()


def _arrow_text(array: pa.Array) -> pa.Array:
    """Any Arrow column as raw text (dates ISO, nested values as JSON), null for empty."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _arrow_text(array.dictionary_decode())
    if pa.types.is_timestamp(t):
        try:
            seconds = pc.cast(array, pa.timestamp("s", t.tz))
            fmt = "%Y-%m-%dT%H:%M:%S" + ("%z" if t.tz else "")
            text = pc.strftime(seconds, format=fmt)
        except pa.ArrowInvalid:
            text = pc.cast(array, pa.string())
    elif pa.types.is_nested(t):
        text = pa.array([_cell_text(v) for v in array.to_pylist()], pa.string())
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            text = pc.cast(pc.cast(array, pa.binary()), pa.string())
        except pa.ArrowInvalid:
            text = pa.array([v.hex() if v is not None else None for v in array.to_pylist()], pa.string())
    else:
        try:
            text = pc.cast(array, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            text = pa.array([_cell_text(v) for v in array.to_pylist()], pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _iter_parquet(info: FileInfo, batch_rows: int, block_bytes: int, stats: _Stats) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    schema = batch_schema(info.columns)
    with _materialized(info) as real:
        first = 1
        for batch in pq.ParquetFile(real).iter_batches(batch_size=batch_rows):
            n = batch.num_rows
            columns = [_arrow_text(batch.column(i)) for i in range(batch.num_columns)]
            rows = pa.array(np.arange(first, first + n, dtype=np.int64))
            first += n
            out = pa.RecordBatch.from_arrays(columns + [rows, pa.nulls(n, pa.string())], schema=schema)
            if columns:
                empty = functools.reduce(pc.and_, [pc.is_null(c) for c in columns])
                if pc.any(empty).as_py():
                    out = out.filter(pc.invert(empty))
            yield out


# --- preview --------------------------------------------------------------------------------


def sample(info: FileInfo, rows: int = 50) -> tuple[list[dict], list[int], list[str], bool]:
    """The first ``rows`` rows as dicts, their row numbers, the reader's problems among
    them ("row 7: ragged row: ..."), and whether the file ended within them."""
    result: list[dict] = []
    numbers: list[int] = []
    problems: list[str] = []
    stats = _Stats()
    batches = _batches(info, max(1, min(rows, 4096)), PREVIEW_BLOCK_BYTES, stats)
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


def preview(path: Path | str, sample_rows: int = 50, *, encoding: str | None = None) -> Preview:
    """What a file is, its first ``sample_rows`` rows and how many rows it has.

    Fast on any size: it reads the head of the file only. Text files up to 64 MB
    (decompressed) and XLSX files up to 2 MB are counted exactly; bigger ones get an
    estimate (``total_rows_estimated=True``): text from the rows per byte of its first
    megabyte, XLSX from the sheet's recorded dimension. Parquet and XLS are always exact.
    """
    info = sniff(path, encoding=encoding)
    rows, numbers, problems, ended = sample(info, sample_rows)
    total, estimated = (len(rows), False) if ended else _total_rows(info)
    return Preview(
        columns=info.columns,
        sample_rows=rows,
        total_rows=total,
        file_type=info.file_type,
        encoding=info.encoding,
        delimiter=info.delimiter,
        warnings=info.warnings,
        total_rows_estimated=estimated,
        compression=info.compression,
        quotechar=info.quotechar,
        sheet=info.sheet,
        problems=problems,
        sample_row_numbers=numbers,
    )


def count_rows(info: FileInfo) -> int:
    """The exact number of rows :func:`iter_batches` yields (reads the whole file)."""
    return sum(b.num_rows for b in iter_batches(info))


def _total_rows(info: FileInfo) -> tuple[int, bool]:
    if info.file_type == "parquet":
        import pyarrow.parquet as pq

        with _materialized(info) as real:
            return pq.ParquetFile(real).metadata.num_rows, False
    if info.file_type == "xls" or (info.file_type == "xlsx" and info.size_bytes <= XLSX_EXACT_BYTES):
        return count_rows(info), False
    if info.file_type == "xlsx":
        return _xlsx_dimension_rows(info), True
    text_size = _text_size(info)
    if info.file_type == "jsonl" and text_size <= EXACT_COUNT_BYTES:
        return _count_jsonl_lines(info), False
    if text_size <= (JSON_EXACT_BYTES if info.file_type == "json" else EXACT_COUNT_BYTES):
        return count_rows(info), False
    per_byte = _rows_per_byte(info)
    if per_byte is None:
        return count_rows(info), False
    return round(text_size * _utf8_ratio(info) * per_byte), True


def _count_jsonl_lines(info: FileInfo) -> int:
    """JSONL rows without parsing them: one per line that is not blank (invalid lines are rows too)."""
    count, partial = 0, b""
    for chunk in _utf8_chunks(info):
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        count += sum(1 for line in lines if line.strip())
    return count + (1 if partial.strip() else 0)


def _rows_per_byte(info: FileInfo) -> float | None:
    """Rows per UTF-8 byte in the first megabyte of text (None if no whole row fits in it)."""
    chunks = _utf8_chunks(info, PREVIEW_BLOCK_BYTES)
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
        rows = list(_iter_json_objects(info, chunks=[head]))
        records = sum(1 for _, _, error in rows if error is None)
        cut = len(head)
    return records / cut if records > 0 and cut > 0 else None


def _text_size(info: FileInfo) -> float:
    """The decompressed size in bytes: exact for plain and zip files, estimated for gzip."""
    if info.compression is None:
        return info.size_bytes
    if info.compression == "zip":
        with zipfile.ZipFile(info.path) as archive:
            return archive.getinfo(info.member).file_size
    import zlib

    with open(info.path, "rb") as f:
        compressed = f.read(1024 * 1024)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced = len(inflater.decompress(compressed))
    used = len(compressed) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
    return info.size_bytes * produced / max(1, used)


def _utf8_ratio(info: FileInfo) -> float:
    """UTF-8 bytes per byte of the file's own encoding, measured on its head."""
    if info.encoding in ("utf-8", "utf-8-sig", None):
        return 1.0
    with _open_stream(info.path, info.compression, info.member) as f:
        head = f.read(HEAD_BYTES)
    return len(_decode_head(head, info.encoding).encode("utf-8")) / max(1, len(head))


def _xlsx_dimension_rows(info: FileInfo) -> int:
    """Rows below the header as the sheet's dimension tag says (may count trailing blank rows)."""
    import openpyxl

    with _materialized(info) as real:
        wb = openpyxl.load_workbook(real, read_only=True, data_only=True)
        try:
            max_row = wb[info.sheet].max_row
        finally:
            wb.close()
    return max(0, max_row - 1) if max_row else count_rows(info)
