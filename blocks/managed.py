"""Managed storage: where an export goes when the user names no destination.

The seeds' "download it from the UI": the file lands in storage Ferry runs
(the local folder ``data/exports`` by default, or any destination block named
by ``FERRY_MANAGED_DESTINATION``, typically an S3-compatible bucket that signs
download URLs) and stays there for ``FERRY_MANAGED_RETENTION_DAYS`` (30). The
``cleanup-managed-exports`` flow (flows/cleanup.py) deletes what is older.

Cleanup deletes *every* file older than the retention period under the
managed location, so that location must belong to Ferry alone: a block whose
folder is empty (a bucket's root, an SFTP login folder) is refused for
cleanup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field, PrivateAttr

from blocks.destination import Delivery, Destination, Leftover, StoredFile
from ferry.errors import DestinationError


class ManagedStorage(Destination):
    """Ferry's own export storage with a retention period; delegates to a folder or a destination block."""

    _block_type_name = "Ferry Managed Storage"
    _block_type_slug = "ferry-managed-storage"
    _description = "Where exports go when no destination is named; files expire after the retention period."

    reference: str | None = Field(
        default=None,
        title="Storage",
        description="Block reference (SLUG/NAME) of the storage; empty means the local folder below.",
    )
    folder: str = Field(title="Local folder", description="Folder used when no block reference is given.")
    retention_days: int = Field(
        default=30, ge=1, le=3650, title="Retention (days)", description="Days a file stays before retention cleanup removes it."
    )

    _inner: Any = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, default_folder: Path) -> ManagedStorage:
        from ferry.settings import get_settings

        settings = get_settings()
        return cls(
            reference=settings.managed_destination or None, folder=str(default_folder), retention_days=settings.managed_retention_days
        )

    def use(self, inner: Destination) -> ManagedStorage:
        """Set the destination that holds the files (``blocks.registry.managed_storage`` resolves it)."""
        if isinstance(inner, ManagedStorage):
            raise DestinationError("Managed storage cannot point at itself.", "Set FERRY_MANAGED_DESTINATION to a block reference.")
        self._inner = inner
        return self

    def inner(self) -> Destination:
        """The destination that holds the files: the one set with :meth:`use`, else the local folder."""
        if self._inner is None:
            from blocks.local_directory import LocalDirectory

            self._inner = LocalDirectory(path=self.reference if self.reference and "/" not in self.reference else self.folder)
        return self._inner

    def describe(self) -> str:
        return f"managed storage ({self.inner().describe()}, files kept {self.retention_days} days)"

    def block_label(self) -> str:
        return self.inner().block_label()

    def expires_at(self, delivered: datetime) -> datetime:
        return delivered + timedelta(days=self.retention_days)

    def check_own_area(self) -> None:
        """Refuse cleanup where it could delete files that are not Ferry's (a bucket root, a login folder)."""
        inner = self.inner()
        missing = [c for c in ("list", "delete") if not inner.can(c)]
        if missing:
            raise DestinationError(
                f"Managed storage {inner.describe()} cannot {' or '.join(missing)} files, so files cannot expire.",
                "Point FERRY_MANAGED_DESTINATION at a local folder or an object-storage block.",
            )
        folder = getattr(inner, "_folder", None)
        if folder is None:
            folder = getattr(inner, "folder", None)
        if isinstance(folder, str) and folder.strip("/") == "" and not isinstance(getattr(inner, "path", None), str):
            raise DestinationError(
                f"Managed storage {inner.describe()} is the root of its bucket or server.",
                "Set a folder of its own in the block (e.g. ferry-exports): cleanup deletes every old file there.",
            )

    # --- the contract, delegated --------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        return self.inner().deliver(source, key, overwrite=overwrite)

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        with self.inner().open_source(key) as stream:
            yield stream

    def download(self, key: str, target: Path) -> Path:
        return self.inner().download(key, target)

    def download_url(self, key: str, expires: timedelta) -> str | None:
        return self.inner().download_url(key, expires)

    def local_path(self, key: str) -> Path | None:
        return self.inner().local_path(key)

    def exists(self, key: str) -> bool:
        return self.inner().exists(key)

    def delete_file(self, key: str) -> None:
        self.inner().delete_file(key)

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        return self.inner().list_files(prefix)

    def key_for(self, location: str) -> str:
        return self.inner().key_for(location)

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        return self.inner().leftovers(older_than)

    def remove_leftover(self, leftover: Leftover) -> None:
        self.inner().remove_leftover(leftover)

    def leftovers_note(self) -> str | None:
        return self.inner().leftovers_note()

    def can(self, capability: str) -> bool:
        return self.inner().can(capability)
