"""A folder on this machine (or a mounted share) as an export destination."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from blocks.destination import Delivery, Destination, HashingReader, Leftover, StoredFile, clean_key, remove_partial, stale_partials
from ferry.errors import DestinationError

CHUNK = 1 << 20


class LocalDirectory(Destination):
    """Writes export files into a folder; the file appears only once complete."""

    _block_type_name = "Local Directory"
    _block_type_slug = "local-directory"
    _description = "A folder on the machine that runs the flow (or a mounted share)."

    path: str = Field(title="Folder", description="Folder that receives the files; created if missing.")

    def _base(self) -> Path:
        return Path(self.path).expanduser().resolve()

    def describe(self) -> str:
        return f"local folder {self.path}"

    def target(self, key: str) -> Path:
        base = self._base()
        target = (base / clean_key(key)).resolve()
        if not target.is_relative_to(base):
            raise DestinationError(
                f"Refusing file name {key!r}: it resolves outside {base}.", "Check the filename template and symlinks in the folder."
            )
        return target

    def local_path(self, key: str) -> Path | None:
        return self.target(key)

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        target = self.target(key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is written; _publish checks again, atomically
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"Cannot create folder {target.parent}: {exc.strerror}.", "Check the path and its permissions.") from exc
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        reader = HashingReader(source)
        try:
            with open(partial, "wb") as out:
                shutil.copyfileobj(reader, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            self._publish(partial, target, key, overwrite)
        except FileExistsError:  # written by someone else after the check: the same clear refusal
            raise self.taken(key) from None
        except OSError as exc:
            raise DestinationError(f"Writing {target} failed: {exc.strerror or exc}.", "Check free space and permissions.") from exc
        finally:
            partial.unlink(missing_ok=True)
        return Delivery(location=str(target), bytes=reader.bytes, sha256=reader.sha256.hexdigest())

    @staticmethod
    def _publish(partial: Path, target: Path, key: str, overwrite: bool) -> None:
        """Move the complete file to its name: readers see the old file or the whole new one.

        Without overwrite a hard link publishes it, which fails when the name is
        taken (``os.replace`` would replace a file another run wrote after the
        check); file systems without hard links fall back to the check alone.
        """
        if overwrite:
            os.replace(partial, target)
            return
        try:
            os.link(partial, target)  # the partial file is removed by the caller
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network shares, FAT)
            if target.exists():
                raise FileExistsError(key) from None
            os.replace(partial, target)

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        target = self.target(key)
        try:
            stream = open(target, "rb")
        except FileNotFoundError:
            raise DestinationError(
                f"No file {key!r} in {self.describe()}.", "Check the file name; expired exports are removed by retention cleanup."
            ) from None
        except OSError as exc:
            raise DestinationError(f"Cannot read {target}: {exc.strerror}.", "Check the path and its permissions.") from None
        with stream:
            yield stream

    def exists(self, key: str) -> bool:
        return self.target(key).is_file()

    def delete_file(self, key: str) -> None:
        self.target(key).unlink(missing_ok=True)

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        base = self._base()
        if not base.is_dir():
            return
        for root, _dirs, files in os.walk(base):
            for name in files:
                path = Path(root) / name
                key = path.relative_to(base).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed while we walked
                    continue
                yield StoredFile(key=key, bytes=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        """Ferry's own ``.NAME.<hex>.partial`` files in the folder (a killed delivery's), last written before ``older_than``."""
        return stale_partials(self, older_than, lambda key: str(self._base() / key))

    def remove_leftover(self, leftover: Leftover) -> None:
        remove_partial(self, leftover)

    def key_for(self, location: str) -> str:
        path = Path(location).expanduser().resolve()
        base = self._base()
        if not path.is_relative_to(base):
            raise DestinationError(f"{location!r} is not inside {self.describe()}.", "Was the file delivered to another folder?")
        return path.relative_to(base).as_posix()
