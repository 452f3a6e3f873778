"""Opening a source file: its compression (gzip, a zip archive's one data member), streaming its
decompressed bytes, and materialising a real, seekable file for the readers that need one.

A compressed file is the cheapest way to make an import cost far more than it looks: 18.7 MB of
zip once expanded to 38.7 GB of spool. So every decompressed stream counts what it yields and
stops at ``import_max_expanded_bytes`` and at ``import_max_expansion_ratio`` (zip members are
also checked up front, from the sizes their archive declares), and nothing is expanded onto
disk before the free space for it was checked. A broken stream (a truncated download, a bad
CRC) is a :class:`SourceFileError` saying so, never a bare ``EOFError`` from deep inside.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ferry.errors import ConfigurationError, SourceFileError
from ferry.settings import get_settings
from tasks.imports.parse.fileinfo import FileInfo

_JUNK_MEMBERS = re.compile(r"(^|/)(__MACOSX/|\.[^./]|Thumbs\.db$)")
RATIO_FLOOR_BYTES = 1024 * 1024  # the ratio counts past this: a small file may compress far better than 200:1


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def _unsafe_member(name: str) -> bool:
    """A member path that would land outside the folder it is unzipped in (``../x``, ``/etc/x``, ``C:\\x``)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or bool(re.match(r"^[A-Za-z]:", name))


def detect_compression(path: Path) -> tuple[str | None, str | None]:
    """("gzip" | "zip" | None, zip member). An .xlsx is a zip too, but not a wrapper."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip", None
    if magic[:2] != b"PK":
        return None, None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise SourceFileError(
            f"{path.name} starts like a zip archive but cannot be opened ({exc}); is it truncated?",
            "Re-create the archive (or download it again), or import the uncompressed file.",
        ) from exc
    with archive:
        names = archive.namelist()
        if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
            return None, None
        files = [i for i in archive.infolist() if not i.is_dir()]
        unsafe = [i.filename for i in files if _unsafe_member(i.filename)]
        if unsafe:
            raise SourceFileError(
                f"The zip archive {path.name} holds a member whose path leaves the archive ({unsafe[0]!r}); "
                "such archives are refused (a 'zip slip' would write outside its folder).",
                "Re-create the archive with the data file at its top level.",
            )
        members = [i for i in files if not _JUNK_MEMBERS.search(i.filename)]
    if not members:
        raise SourceFileError(f"The zip archive {path.name} holds no data file.", "Zip the file to import and try again.")
    if len(members) > 1:
        shown = ", ".join(m.filename for m in members[:5]) + (", ..." if len(members) > 5 else "")
        raise SourceFileError(
            f"The zip archive {path.name} holds {len(members)} files ({shown}); an import reads exactly one.",
            "Zip only the file to import, or unzip the archive and import each file on its own.",
        )
    member = members[0]
    if member.flag_bits & 0x1:
        raise SourceFileError(f"{member.filename} in {path.name} is encrypted.", "Import an unencrypted archive.")
    _check_expansion(f"{member.filename} in {path.name}", member.file_size, max(1, member.compress_size), declared=True)
    return "zip", member.filename


def _check_expansion(what: str, expanded: int, compressed: int, *, declared: bool = False) -> None:
    """Refuse an expansion past ``import_max_expanded_bytes`` or ``import_max_expansion_ratio``."""
    settings = get_settings()
    verb = "declares that it expands to" if declared else "expands to more than"
    if expanded > settings.import_max_expanded_bytes:
        raise SourceFileError(
            f"{what} {verb} {_size(expanded)}, past the limit of {_size(settings.import_max_expanded_bytes)} "
            "(import_max_expanded_bytes); it was not read further.",
            "Split the file into smaller ones, or raise FERRY_IMPORT_MAX_EXPANDED_BYTES if it is genuine.",
        )
    if expanded > RATIO_FLOOR_BYTES and expanded > settings.import_max_expansion_ratio * compressed:
        raise SourceFileError(
            f"{what} {verb} {_size(expanded)} from {_size(compressed)}: more than the limit of "
            f"{settings.import_max_expansion_ratio}:1 (import_max_expansion_ratio), as a decompression bomb does; "
            "it was not read further.",
            "Import the uncompressed file, or raise FERRY_IMPORT_MAX_EXPANSION_RATIO if it is genuine.",
        )


class _Expansion:
    """A decompressed stream that counts its bytes against the limits and names a broken stream.

    ``read(n)`` returns ``n`` bytes unless the stream ends (as GzipFile and ZipExtFile do).
    """

    CHECK_EVERY = 1024 * 1024

    def __init__(self, raw: BinaryIO, what: str, compressed: int) -> None:
        self._raw = raw
        self._what = what
        self._compressed = compressed
        self._checked = 0
        self.produced = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:  # "everything" would bypass the limits: read in bounded steps
            parts = []
            while part := self.read(self.CHECK_EVERY):
                parts.append(part)
            return b"".join(parts)
        try:
            data = self._raw.read(n)
        except EOFError as exc:
            raise SourceFileError(
                f"{self._what} is truncated: its compressed data ends at byte {self._compressed:,} before the end of the stream.",
                "Download or copy the file again; it was cut short.",
            ) from exc
        except (zlib.error, gzip.BadGzipFile, zipfile.BadZipFile) as exc:
            raise SourceFileError(
                f"{self._what} is corrupt past {self.produced:,} decompressed bytes ({exc}).",
                "Download or copy the file again, or re-create the archive.",
            ) from exc
        self.produced += len(data)
        if self.produced - self._checked >= self.CHECK_EVERY or not data or len(data) < n:
            self._checked = self.produced
            _check_expansion(self._what, self.produced, self._compressed)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


@contextmanager
def open_stream(path: Path, compression: str | None, member: str | None) -> Iterator[BinaryIO]:
    """The file's decompressed bytes, streamed, within the expansion limits."""
    if compression == "gzip":
        with gzip.open(path, "rb") as f:
            yield _Expansion(f, path.name, max(1, path.stat().st_size))
    elif compression == "zip":
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            with archive.open(info) as f:
                yield _Expansion(f, f"{member} in {path.name}", max(1, info.compress_size))
    else:
        with open(path, "rb") as f:
            yield f


def expanded_size(path: Path, compression: str | None, member: str | None) -> float:
    """The decompressed size in bytes: exact for plain files, as declared for zip members, estimated for gzip
    (from how well its first megabyte expands, within the limits)."""
    if compression is None:
        return path.stat().st_size
    if compression == "zip":
        with zipfile.ZipFile(path) as archive:
            return archive.getinfo(member).file_size
    with open(path, "rb") as f:
        compressed = f.read(1024 * 1024)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        produced = len(inflater.decompress(compressed, 64 * 1024 * 1024))
    except zlib.error:
        return path.stat().st_size
    used = len(compressed) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
    settings = get_settings()
    estimate = path.stat().st_size * produced / max(1, used)
    return min(estimate, settings.import_max_expanded_bytes, settings.import_max_expansion_ratio * path.stat().st_size)


def ensure_free_space(folder: Path, needed: float, what: str) -> None:
    """Refuse to spool ``needed`` bytes into ``folder`` when its disk has less free: failing up front beats
    filling the disk for every other run (and failing anyway)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise ConfigurationError(
            f"Not enough disk space for {what}: it needs about {_size(needed)}, and {probe} has {_size(free)} free.",
            "Free disk space there (or point FERRY_DATA_DIR / TMPDIR at a bigger disk) and run the import again.",
        )


@contextmanager
def materialized(info_or_path, compression: str | None = None, member: str | None = None) -> Iterator[Path]:
    """A real, seekable file for readers that need one (xlsx, xls, parquet): a temp copy if compressed."""
    if isinstance(info_or_path, FileInfo):
        path, compression, member = info_or_path.path, info_or_path.compression, info_or_path.member
    else:
        path = info_or_path
    if compression is None:
        yield path
        return
    suffix = Path(member or path.name.removesuffix(".gz")).suffix
    ensure_free_space(Path(tempfile.gettempdir()), expanded_size(path, compression, member), f"expanding {path.name}")
    with tempfile.NamedTemporaryFile(prefix="ferry-import-", suffix=suffix) as tmp:
        with open_stream(path, compression, member) as src:
            shutil.copyfileobj(src, tmp, 1024 * 1024)
        tmp.flush()
        yield Path(tmp.name)


def inner_name(path: Path, compression: str | None, member: str | None) -> str:
    if compression == "zip" and member:
        return Path(member).name.lower()
    name = path.name.lower()
    if compression == "gzip":
        for suffix in (".gz", ".gzip"):
            name = name.removesuffix(suffix)
        if name.endswith(".tgz"):
            name = name[:-4] + ".tar"
    return name
