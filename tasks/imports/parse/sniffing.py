"""Sniffing: a file's format, compression, encoding, dialect and columns, found from its head (:func:`sniff`)."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from ferry.errors import ParameterError, Problem, SourceFileError
from ferry.settings import get_settings
from tasks.imports.parse.encoding import decode_head, detect_encoding, too_long_line, utf8_chunks
from tasks.imports.parse.fileinfo import ERROR, ROW, FileInfo
from tasks.imports.parse.json_depth import depth_error, max_depth
from tasks.imports.parse.json_parser import ChunkReader, flat_items, iter_json_objects, iter_jsonl_objects, parse_line, record_error
from tasks.imports.parse.opening import detect_compression, inner_name, materialized, open_stream
from tasks.imports.parse.sheets import xls_head, xlsx_head

HEAD_BYTES = 64 * 1024  # what sniffing reads from the start of the (decompressed) file
SNIFF_RECORDS = 200  # records read to choose the CSV delimiter
JSON_KEY_SCAN = 10_000  # JSON elements read to discover the columns

_DELIMITERS = (",", "\t", ";", "|")
_SEP_LINE = re.compile(r"^sep=(.)\s*$")
_MAGIC_XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def sniff(path: Path | str, *, encoding: str | None = None, sheet: str | None = None) -> FileInfo:
    """Find out a file's format, compression, encoding, dialect and columns from its head.

    Reads at most a few hundred KB whatever the file's size (plus, for JSON, the first
    elements to collect their keys). ``encoding`` overrides the detected text encoding;
    ``sheet`` chooses a workbook's worksheet by name or 1-based index (see :mod:`.sheets`).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceFileError(f"No file at {path}.", "Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise SourceFileError(f"{path.name} is empty.", "Export the data again; the file has no bytes.")
    compression, member = detect_compression(path)
    name = inner_name(path, compression, member)
    with open_stream(path, compression, member) as f:
        head = f.read(HEAD_BYTES)
        samples = _spread_samples(f, size) if compression is None and size > HEAD_BYTES else []
    base = dict(path=path, compression=compression, member=member, size_bytes=size)
    if not head:
        raise SourceFileError(f"{path.name} holds no data once decompressed.", "Export the data again.")
    if sheet is not None and sheet.strip() and not head.startswith((_MAGIC_XLS, b"PK\x03\x04")):
        raise ParameterError([Problem("sheet", sheet, f"only workbooks (XLSX, XLS) have sheets; {path.name} is not one")])
    if head.startswith(b"PAR1"):
        return _sniff_parquet(base)
    if head.startswith(_MAGIC_XLS):
        return _sniff_workbook(base, "xls", sheet)
    if head.startswith(b"PK\x03\x04"):
        return _sniff_workbook(base, "xlsx", sheet)
    if name.endswith((".xlsx", ".xlsm", ".xls", ".parquet")):
        if b"<html" in head[:2048].lower() or b"<table" in head[:2048].lower():
            raise SourceFileError(
                f"{path.name} is a web page (HTML) saved with a spreadsheet name, not a spreadsheet.",
                "Open it in a spreadsheet program and save it as XLSX or CSV.",
            )
        if name.endswith(".parquet"):
            raise SourceFileError(f"{path.name} is not a Parquet file (no PAR1 signature).", "Export it again as Parquet or CSV.")
    enc = encoding or detect_encoding(head, samples)
    try:
        codecs.lookup(enc)
    except LookupError as exc:
        raise SourceFileError(f"Unknown text encoding {enc!r}.", "Use a Python codec name such as utf-8, cp1252 or utf-16.") from exc
    text = decode_head(head, enc)
    eof = len(head) < HEAD_BYTES
    first = text.lstrip()[:1]
    lines_named = name.endswith((".jsonl", ".ndjson", ".jsonlines"))
    if not eof and first != "[" and not re.search(r"[\r\n]", text):
        # The first line is longer than the head: read on to its end (a 75 KB header was cut here, once).
        # Only a JSON document may be one long line; CSV and JSONL are refused past the line limit.
        required = lines_named or first != "{"
        if (longer := _head_to_line_end(path, compression, member, required)) is not None:
            head = longer
            text, eof = decode_head(head, enc), False
    shown = f"{member} in {path.name}" if member else path.name
    wrong_name = (
        [f"{shown} is named like a spreadsheet but holds text; it was read as delimited text."]
        if name.endswith((".xlsx", ".xlsm", ".xls"))
        else []
    )
    if lines_named or name.endswith(".json") or (first in "{[" and first and not name.endswith((".csv", ".tsv", ".txt"))):
        return _sniff_json(base, enc, text, eof, lines_hint=lines_named)
    return _sniff_csv(base, enc, text, eof, name, wrong_name)


def _head_to_line_end(path: Path, compression: str | None, member: str | None, required: bool) -> bytes | None:
    """The file's head up to the end of its first line and a little past it, read in bounded steps.

    None when the first line is longer than ``import_max_line_bytes`` and ``required`` is false;
    a :class:`SourceFileError` naming the limit when it is true.
    """
    limit = get_settings().import_max_line_bytes
    parts: list[bytes] = []
    size = 0
    with open_stream(path, compression, member) as f:
        while chunk := f.read(HEAD_BYTES):
            parts.append(chunk)
            size += len(chunk)
            if b"\n" in chunk or b"\r" in chunk:
                parts.append(f.read(HEAD_BYTES))  # a few data lines too, to choose the delimiter
                return b"".join(parts)
            if size > limit + 4:  # (+4: a BOM)
                break
        else:
            return b"".join(parts)  # the file ends on its first line
    if required:
        raise too_long_line(path.name, 1)
    return None


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
    cleaned = [re.sub(r"\s+", " ", str(v).replace("\ufeff", "").replace("\x00", "")).strip() if v is not None else "" for v in raw]
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
    header_bytes = len(terminator.join(text.split(terminator)[skip:header_record]).encode("utf-8"))
    if header_bytes > get_settings().import_max_line_bytes:
        raise too_long_line(f"{base['path'].name} (its header)", header_record)
    if warnings and len(header) == 1:  # named like a spreadsheet, and no delimited data either
        shown = f"{base['member']} in {base['path'].name}" if base["member"] else base["path"].name
        raise SourceFileError(
            f"{shown} is named like a spreadsheet but is no workbook: it holds plain text without delimited columns.",
            "Export the data again as XLSX or CSV (a renamed text file cannot be read as a spreadsheet).",
        )
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
        header_bytes=header_bytes,
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
        keys = _collect_keys(iter_jsonl_objects(info, limit=JSON_KEY_SCAN))
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
    keys = _collect_keys(iter_json_objects(info, limit=JSON_KEY_SCAN))
    return _with_columns(info, keys)


def _first_line_is_object(text: str) -> bool:
    line = text.split("\n", 1)[0].strip()
    value, error = parse_line(line.encode("utf-8"))
    return isinstance(value, dict) or (line.startswith("{") and error == depth_error(max_depth()))


def _single_array_key(base: dict, enc: str) -> str | None:
    import ijson

    probe = FileInfo(file_type="json", encoding=enc, delimiter=None, quotechar=None, columns=[], warnings=[], **base)
    events = ijson.parse(ChunkReader(utf8_chunks(probe)))
    try:
        first = [e for _, e in zip(range(3), events)]
    except ijson.JSONError:
        return None
    if len(first) == 3 and first[0][1] == "start_map" and first[1][1] == "map_key" and first[2][1] == "start_array":
        key = first[1][2]
        return key if re.fullmatch(r"[^.\s]+", key) else None
    return None


def _collect_keys(objects: Iterable[tuple[int, object, str | None]]) -> list[str]:
    """The records' (flattened, dotted) keys in the order first seen."""
    keys: dict[str, None] = {}
    for _, obj, error in objects:
        if error is None and record_error(obj) is None:
            keys.update((name, None) for name, _ in flat_items(obj))
    return list(keys)


def _with_columns(info: FileInfo, keys: list[str]) -> FileInfo:
    if not keys:
        raise SourceFileError(f"{info.path.name} holds no JSON objects with keys.", "Each record must be a JSON object.")
    columns, renames = _unique_columns(keys)
    return FileInfo(**{**info.__dict__, "columns": columns, "raw_columns": keys, "warnings": info.warnings + renames})


def _sniff_workbook(base: dict, file_type: str, sheet: str | None) -> FileInfo:
    """XLSX or XLS: the chosen sheet's header as the columns, every sheet listed."""
    read_head = xlsx_head if file_type == "xlsx" else xls_head
    with materialized(base["path"], base["compression"], base["member"]) as real:
        head = read_head(real, base["path"], sheet)
    columns, renames = _unique_columns(head.header)
    return FileInfo(
        file_type=file_type,
        encoding=None,
        delimiter=None,
        quotechar=None,
        columns=columns,
        warnings=head.warnings + renames,
        sheet=head.name,
        sheets=head.sheets,
        raw_columns=[h or "" for h in head.header],
        **base,
    )


def _sniff_parquet(base: dict) -> FileInfo:
    import pyarrow.parquet as pq

    with materialized(base["path"], base["compression"], base["member"]) as real:
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
