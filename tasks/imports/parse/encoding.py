"""Text encodings: detecting a file's encoding from its head, and streaming its text as UTF-8."""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from ferry.errors import SourceFileError
from ferry.settings import get_settings
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.opening import open_stream


def _latin1_fallback(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes that Windows-1252 leaves undefined (0x81, 0x8D, ...) decode as Latin-1 would."""
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("ferry-latin1", _latin1_fallback)


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


def detect_encoding(head: bytes, samples: list[bytes]) -> str:
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


def decode_head(head: bytes, encoding: str) -> str:
    errors = "ferry-latin1" if encoding == "cp1252" else "replace"
    return codecs.getincrementaldecoder(encoding)(errors=errors).decode(head, final=False).lstrip("\ufeff")


def utf8_chunks(info: FileInfo, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    """The file's text as UTF-8 bytes, streamed (transcoded when the file is in another encoding)."""
    with open_stream(info.path, info.compression, info.member) as f:
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


def text_lines(chunks: Iterable[bytes], sep: str = "\n", max_line: int | None = None, name: str = "The file") -> Iterator[str]:
    """Lines (ending with ``sep``) of a stream of UTF-8 byte chunks.

    A line longer than ``max_line`` characters is refused at that line (a :class:`SourceFileError`
    naming the limit) as soon as it is: a 200 MB file without a line break once took 1.45 GB here.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    line = 0
    try:
        for chunk in chunks:
            text = pending + decoder.decode(chunk)
            parts = text.split(sep)
            pending = parts.pop()
            for part in parts:
                line += 1
                if max_line is not None and len(part) > max_line:
                    raise too_long_line(name, line)
                yield part + sep
            if max_line is not None and len(pending) > max_line:
                raise too_long_line(name, line + 1)
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise SourceFileError(
            "The file is not valid UTF-8 past its first part (mixed encodings?).", "Save it as UTF-8 and import it again."
        ) from exc
    if pending:
        yield pending


def too_long_line(name: str, line: int) -> SourceFileError:
    """A line past ``import_max_line_bytes``: the file is refused at that line, naming the limit."""
    limit = get_settings().import_max_line_bytes
    return SourceFileError(
        f"{name}: line {line} is longer than the limit of {limit:,} bytes (import_max_line_bytes); the file is refused there.",
        "Check that the file is really delimited text with line breaks; for genuinely long lines raise FERRY_IMPORT_MAX_LINE_BYTES.",
    )
