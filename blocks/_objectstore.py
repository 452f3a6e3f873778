"""Pieces shared by the object-storage blocks (S3, Azure Blob, GCS).

Object stores publish atomically by construction: an object exists only once
its upload is *completed* (S3 CompleteMultipartUpload, Azure Put Block List,
the last chunk of a GCS resumable upload). The blocks stream the source in
bounded parts, so memory stays at one part whatever the file size.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import PurePosixPath
from typing import BinaryIO

from pydantic import Field

from blocks.destination import Destination, clean_key
from ferry.errors import DestinationError

MAX_URL_LIFETIME = timedelta(days=7)  # SigV4 and GCS V4 signatures cannot outlive a week


class ObjectStoreDestination(Destination):
    """Base of the S3, Azure Blob and GCS blocks: the settings they share."""

    _block_type_name = "Ferry Object Store Destination"

    download_url_minutes: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 60,
        title="Download URL lifetime (minutes)",
        description="How long the signed download URL of a delivered file (S3 presigned, Azure SAS, GCS V4) stays valid, "
        "at most 7 days; empty: FERRY_DOWNLOAD_URL_MINUTES (default 15).",
    )

    def url_lifetime(self) -> timedelta:
        from ferry.settings import get_settings

        return timedelta(minutes=self.download_url_minutes or get_settings().download_url_minutes)


def read_full(source: BinaryIO, size: int, mutable: bool = False) -> bytes | bytearray:
    """Exactly ``size`` bytes, or fewer only at the end of the stream (pipes return short reads).

    ``mutable=True`` reads into one preallocated bytearray (when the source has
    ``readinto``), so a part costs its own size in memory and no more, even from
    a stream that returns small pieces; for SDKs that accept any bytes-like body.
    """
    if mutable and hasattr(source, "readinto"):
        buffer = bytearray(size)
        filled = 0
        with memoryview(buffer) as view:
            while filled < size:
                n = source.readinto(view[filled:])
                if not n:
                    break
                filled += n
        if filled < size:
            del buffer[filled:]
        return buffer
    chunks: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = source.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def object_name(folder: str | None, key: str) -> str:
    """``folder/key`` with the key checked (no absolute names, no ``..``)."""
    cleaned = str(clean_key(key))
    folder = (folder or "").strip("/")
    return f"{folder}/{cleaned}" if folder else cleaned


def key_in_folder(folder: str | None, name: str, what: str) -> str:
    """The inverse of :func:`object_name`: the key of object ``name`` inside ``folder``."""
    folder = (folder or "").strip("/")
    if folder:
        if not name.startswith(folder + "/"):
            raise DestinationError(f"{name!r} is not inside folder {folder!r} of {what}.", "Was the file delivered to another folder?")
        name = name[len(folder) + 1 :]
    return str(clean_key(name))


def relative_key(folder: str | None, name: str) -> str:
    folder = (folder or "").strip("/")
    return name[len(folder) + 1 :] if folder and name.startswith(folder + "/") else name


def list_prefix(folder: str | None, prefix: str) -> str:
    folder = (folder or "").strip("/")
    if folder:
        return f"{folder}/{prefix}"
    return prefix


def check_lifetime(expires: timedelta) -> int:
    """Seconds of a URL lifetime, refused outside (0, 7 days]."""
    seconds = int(expires.total_seconds())
    if seconds <= 0 or expires > MAX_URL_LIFETIME:
        raise DestinationError(f"A download URL cannot live {expires}.", "Use a lifetime between 1 second and 7 days.")
    return seconds


def split_uri(location: str, scheme: str) -> tuple[str, str]:
    """``scheme://container/name`` -> (container, name)."""
    prefix = f"{scheme}://"
    if not location.startswith(prefix) or "/" not in location[len(prefix) :]:
        raise DestinationError(f"{location!r} is not a {scheme}:// location.", "Was the file delivered to another kind of destination?")
    container, _, name = location[len(prefix) :].partition("/")
    return container, str(PurePosixPath(name))
