"""Opening a source file: its compression (gzip, a zip archive's one data member), streaming its
decompressed bytes, and materialising a real, seekable file for the readers that need one."""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ferry.errors import SourceFileError
from tasks.imports.parse.fileinfo import FileInfo

_JUNK_MEMBERS = re.compile(r"(^|/)(__MACOSX/|\.|Thumbs\.db$)")


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
def open_stream(path: Path, compression: str | None, member: str | None) -> Iterator[BinaryIO]:
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
