"""The destination contract every delivery target follows.

A destination receives a binary stream and a *key* (a relative file name,
already rendered from the user's template) and returns where the file ended
up, how many bytes it holds and their SHA-256. A reader must never see half a
file at the final location: write somewhere temporary, then publish at once.

The contract, in full (one conformance suite, tests/blocks/test_conformance.py,
runs the same test body over every implementation):

``deliver(source, key, overwrite=True) -> Delivery``  (required)
    Stream ``source`` to ``key``; return location, bytes, SHA-256 and, where the
    destination can sign one, a download URL. Nothing appears at ``key`` unless
    the whole stream arrived (a failed upload leaves the previous file, or
    nothing). With ``overwrite=False`` a file already at ``key`` is never
    replaced: :meth:`Destination.refuse_existing` asks the service (its own
    "exists?" call) before a byte is sent, and the delivery fails with a
    ``DestinationError`` naming the file. An exception raised *by the source stream* propagates unchanged;
    failures of the destination are ``DestinationError`` (terminal: bad
    credentials, permissions, missing bucket) or ``TransientDestinationError``
    (worth a retry: resets, timeouts, 5xx) - the type decides retries.

Optional capabilities (``can(name)`` tells which a block has; the defaults
refuse or answer "nothing"):

``open_source(key)`` / ``download(key, target)``  ("read")
    Read a delivered file back as a stream / into a local file (import sources).
    Implementing either one is enough: the base class derives the other.
``download_url(key, expires)``  ("url")
    A fresh URL that lets anyone holding it download the file until it expires.
``exists(key)``  ("exists"), ``delete_file(key)``  ("delete" needs both; named so it does not hide Prefect's ``Block.delete(name)``)
    For reissuing URLs of finished runs and for retention cleanup.
``list_files(prefix)``  ("list")
    Every file under the destination (or a prefix) with size and modification
    time; retention cleanup uses it to find expired files.
``key_for(location)``
    The inverse of ``Delivery.location``: which key a recorded location names.
``leftovers(older_than)`` / ``remove_leftover(leftover)``  ("leftovers")
    What deliveries killed mid-way (kill -9, a lost machine: no ``finally``
    ran) left behind, untouched since ``older_than``, and nothing else: Ferry's
    own ``.NAME.<hex>.partial`` files (local folder, SFTP, FTP; see
    :func:`is_partial_name`) and unfinished S3 multipart uploads under the
    block's folder. The cleanup flow removes them. Destinations without such a
    list return nothing and say why in :meth:`Destination.leftovers_note`: a
    webhook keeps no files, Azure discards uncommitted blocks after 7 days and
    GCS resumable upload sessions expire after a week by themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar

from prefect.blocks.core import Block
from pydantic import BaseModel, Field

from ferry.errors import DestinationError


class Delivery(BaseModel):
    """What a destination reports back; part of the run record."""

    location: str = Field(description="Final path or URI of the file.")
    bytes: int = Field(description="Bytes written.")
    sha256: str = Field(description="Hex SHA-256 of the bytes written.")
    url: str | None = Field(default=None, description="A download URL, where the destination can give one.")


class StoredFile(BaseModel):
    """One file a destination holds (``list_files``)."""

    key: str = Field(description="Key relative to the destination's root.")
    bytes: int = Field(description="Size in bytes.")
    modified: datetime = Field(description="Last modification time (timezone-aware, UTC).")


class Leftover(BaseModel):
    """One thing a killed delivery left at a destination (``leftovers``)."""

    kind: str = Field(description="What it is: 'partial file' or 'multipart upload'.")
    key: str = Field(description="Its key relative to the destination's root (of the unfinished object, for an upload).")
    location: str = Field(description="Where it is, as a full path or URI (no secrets); the same leftover seen twice has one location.")
    since: datetime = Field(description="Last modification (files) or start (uploads), timezone-aware UTC.")
    bytes: int | None = Field(default=None, description="Size in bytes, where known.")
    upload_id: str | None = Field(default=None, description="The service's id of an unfinished upload.")

    def describe(self) -> str:
        size = f", {self.bytes:,} bytes" if self.bytes is not None else ""
        return f"{self.kind} {self.location} (since {self.since:%Y-%m-%d %H:%M} UTC{size})"


PARTIAL_FILE = "partial file"
# Ferry's own temp names: ".NAME.<12 hex>.partial" (SFTP, FTP) and ".NAME.<32 hex>.partial" (local folder).
_PARTIAL_NAME = re.compile(r"\..+\.(?:[0-9a-f]{12}|[0-9a-f]{32})\.partial")


def is_partial_name(name: str) -> bool:
    """True for the temp-file names Ferry's own uploads write (``.NAME.<hex>.partial``), never for other files."""
    return bool(_PARTIAL_NAME.fullmatch(PurePosixPath(name).name))


def stale_partials(destination: Destination, older_than: datetime, where: Callable[[str], str]) -> list[Leftover]:
    """Ferry's own partial files among ``destination.list_files()`` last modified before ``older_than``.

    ``where(key)`` gives a leftover's location. A partial file still being
    written is modified all the time, so only an abandoned one grows old.
    """
    return [
        Leftover(kind=PARTIAL_FILE, key=stored.key, location=where(stored.key), since=stored.modified, bytes=stored.bytes)
        for stored in destination.list_files()
        if stored.modified < older_than and is_partial_name(stored.key)
    ]


def remove_partial(destination: Destination, leftover: Leftover) -> None:
    """Delete a partial file that :func:`stale_partials` found; refuses anything that is not one."""
    if leftover.kind != PARTIAL_FILE or not is_partial_name(leftover.key):
        raise DestinationError(
            f"{destination.describe()}: {leftover.key!r} is not one of Ferry's partial files; it was not removed.",
            "Only leftovers listed by the destination itself are removed.",
        )
    destination.delete_file(leftover.key)


class Destination(Block):
    """Base of every Ferry destination block."""

    _block_type_name = "Ferry Destination"

    # URI schemes this block reads as an import source (``sftp`` -> ``sftp://NAME/key``);
    # blocks.sources maps a scheme to every registered block that lists it.
    uri_schemes: ClassVar[tuple[str, ...]] = ()

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        raise NotImplementedError

    def refuse_existing(self, key: str) -> None:
        """A ``DestinationError`` when a file is stored at ``key`` already: a delivery without overwrite must not replace it.

        Two workspaces, two jobs or two runs of one job whose file names render
        alike would otherwise overwrite each other's files without a word.
        """
        if self.exists(key):
            raise self.taken(key)

    def taken(self, key: str) -> DestinationError:
        """The refusal of a delivery whose name is taken (see :meth:`refuse_existing`)."""
        return DestinationError(
            f"{self.describe()} already holds a file named {key!r}; it was not overwritten.",
            "Put {run_id} (or {date}) in the filename template so each run gets its own name, "
            "or pass --overwrite (`overwrite: true`) to replace the file.",
        )

    def download(self, key: str, target: Path) -> Path:
        """Copy the file at ``key`` to the local path ``target`` (complete, or not at all)."""
        if not self.can("read"):
            raise DestinationError(f"{self.describe()} cannot be read as an import source.", "Use a block that supports reading files.")
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
        try:
            with self.open_source(key) as stream, open(partial, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        """The file at ``key`` as a readable binary stream, read in bounded chunks (never all at once)."""
        if type(self).download is Destination.download:
            raise DestinationError(f"{self.describe()} cannot be read as an import source.", "Use a block that supports reading files.")
        with tempfile.TemporaryDirectory(prefix="ferry-source-") as folder:
            path = self.download(key, Path(folder) / "file")
            with open(path, "rb") as stream:
                yield stream

    def download_url(self, key: str, expires: timedelta) -> str | None:
        """A URL that downloads ``key`` until ``expires`` from now; None where the destination has none."""
        return None

    def local_path(self, key: str) -> Path | None:
        """The file of ``key`` on this machine's disk, for destinations that are a local folder; None elsewhere."""
        return None

    def exists(self, key: str) -> bool:
        """True when a complete file is stored at ``key``."""
        raise DestinationError(f"{self.describe()} cannot check whether a file exists.", "Use a destination that supports it.")

    def delete_file(self, key: str) -> None:
        """Remove the file at ``key``; a missing file is not an error."""
        raise DestinationError(f"{self.describe()} cannot delete files.", "Use a destination that supports it.")

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        """Every stored file whose key starts with ``prefix``, with size and modification time."""
        raise DestinationError(f"{self.describe()} cannot list its files.", "Use a destination that supports it.")

    def key_for(self, location: str) -> str:
        """The key that produced ``location`` (a ``Delivery.location`` of this destination)."""
        raise DestinationError(f"{self.describe()} cannot map {location!r} back to a file name.", "Use a destination that supports it.")

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        """What killed deliveries left here, untouched since ``older_than``; nothing where :meth:`leftovers_note` says why."""
        return []

    def remove_leftover(self, leftover: Leftover) -> None:
        """Remove one leftover that :meth:`leftovers` listed; one already gone is not an error."""
        raise DestinationError(f"{self.describe()} has no leftovers to remove.", "Use a destination that lists them.")

    def leftovers_note(self) -> str | None:
        """Why :meth:`leftovers` finds nothing here by design (None where it looks)."""
        if self.can("leftovers"):
            return None
        return "it keeps no temporary files that Ferry could list"

    def can(self, capability: str) -> bool:
        """Whether this block implements an optional part of the contract ("read", "url", "exists", "delete", "list", "leftovers")."""
        cls = type(self)
        overridden = [getattr(cls, m) is not getattr(Destination, m) for m in _CAPABILITIES[capability]]
        return any(overridden) if capability == "read" else all(overridden)

    def matches_uri(self, netloc: str) -> bool:
        """True when ``scheme://NETLOC/...`` points at what this block reaches (e.g. its host or bucket)."""
        return False

    def block_label(self) -> str:
        """``slug 'NAME'`` for messages that must say which block to check."""
        name = getattr(self, "_block_document_name", None)
        return f"{self.get_block_type_slug()} block {name!r}" if name else f"unsaved {self.get_block_type_slug()} block"

    def describe(self) -> str:
        """Where this destination points, without secrets (for logs and summaries)."""
        return type(self).__name__


def clean_key(key: str) -> PurePosixPath:
    """A relative key that cannot climb out of its folder, or a DestinationError."""
    if not key or key.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", key) or "\x00" in key:
        raise DestinationError(f"Refusing file name {key!r}: it must be a relative name.", "Check the filename template.")
    if re.search(r"[\x00-\x1f\x7f-\x9f]", key):  # no store shows them, some refuse them, and logs would be garbled
        raise DestinationError(f"Refusing file name {key!r}: it holds control characters.", "Check the filename template.")
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if any(part in ("..", ".", "") for part in parts):
        raise DestinationError(f"Refusing file name {key!r}: it would leave the destination folder.", "Check the filename template.")
    return PurePosixPath(*parts)


class HashingReader:
    """Wraps a source stream, counting bytes and hashing them as they are read."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self.sha256.update(chunk)
        self.bytes += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` without an intermediate copy (object-store parts are read this way)."""
        readinto = getattr(self._source, "readinto", None)
        if readinto is None:
            chunk = self.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)
        n = readinto(buffer) or 0
        with memoryview(buffer) as view:
            self.sha256.update(view[:n])
        self.bytes += n
        return n


# capability -> the methods that provide it ("read": either one; the others: all of them)
_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "read": ("open_source", "download"),
    "url": ("download_url",),
    "exists": ("exists",),
    "delete": ("delete_file", "exists"),
    "list": ("list_files",),
    "leftovers": ("leftovers", "remove_leftover"),
}
