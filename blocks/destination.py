"""The destination contract every delivery target follows.

A destination receives a binary stream and a *key* (a relative file name,
already rendered from the user's template) and returns where the file ended
up, how many bytes it holds and their SHA-256. A reader must never see half a
file at the final location: write somewhere temporary, then publish at once.
"""

from __future__ import annotations

import hashlib
import re
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


class Destination(Block):
    """Base of every Ferry destination block."""

    _block_type_name = "Ferry Destination"

    # URI schemes this block reads as an import source (``sftp`` -> ``sftp://NAME/key``);
    # blocks.sources maps a scheme to every registered block that lists it.
    uri_schemes: ClassVar[tuple[str, ...]] = ()

    def deliver(self, source: BinaryIO, key: str) -> Delivery:
        raise NotImplementedError

    def download(self, key: str, target: Path) -> Path:
        """Copy the file at ``key`` to the local path ``target`` (complete, or not at all)."""
        raise DestinationError(f"{self.describe()} cannot be read as an import source.", "Use a block that supports reading files.")

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
