"""Spool files: how record batches travel between an import's stage tasks (an export's stages use pipes, ``ferry.pipe``).

Prefect keeps the results of tasks in memory until a flow ends, so stages pass
each other the *path* of an Arrow IPC file, never the data. Reading is batch
by batch with plain reads (not a memory map: mapped pages that were read stay
in the process's RSS until the map closes, so a 10M-row spool would show up as
gigabytes of RSS), so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

#: Spool folders and files hold plain customer data: owner only.
FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: Prefix of an import run's spool folder; an export's folder is named by its run id alone.
IMPORT_PREFIX = "import-"


def private_folder(folder: Path) -> Path:
    """Create ``folder`` (and missing parents) owner-only; tighten it if it exists with wider rights."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with contextlib.suppress(OSError):  # not ours (a shared folder someone passed in): leave it
        if folder.stat().st_mode & 0o077:
            folder.chmod(FOLDER_MODE)
    return folder


def _create_private_file(path: Path) -> None:
    """Create (or truncate) ``path`` as 0600 before any data is written to it."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
    os.chmod(path, FILE_MODE)  # an existing file keeps its mode through O_CREAT


def write_spool(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Write ``batches`` to ``path`` (owner-only file in an owner-only folder); returns the row count."""
    private_folder(path.parent)
    _create_private_file(path)
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def spool_schema(path: Path) -> pa.Schema:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).schema


def read_spool(path: Path) -> Iterator[pa.RecordBatch]:
    """Yield the batches of a spool file, one at a time."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def spool_rows(path: Path) -> int:
    """Row count of a spool file, from its batch metadata (no data is read).

    A plain file, not a memory map: mapped pages count toward RSS (+184 MB on a 10M-row spool).
    """
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).count_rows()


def spool_run_id(folder: Path) -> str:
    """The Prefect flow run id a spool folder belongs to (``import-<id>`` or ``<id>``)."""
    return folder.name.removeprefix(IMPORT_PREFIX)


def last_touched(folder: Path) -> float:
    """Newest mtime of the folder and anything in it: a run that still writes is not orphaned."""
    newest = folder.stat().st_mtime
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def sweep_spools(
    root: Path, older_than_hours: float, is_active: Callable[[str], bool] | None = None, now: float | None = None
) -> list[Path]:
    """Remove spool folders of dead runs: untouched for ``older_than_hours`` and (if known) not active in Prefect.

    A kill -9 skips the flows' ``finally``, so their folders stay; this is the
    second line. ``is_active(run_id)`` guards a long run that wrote nothing for
    a while. Also makes ``root`` owner-only. Returns the folders removed.
    """
    if not root.is_dir():
        return []
    private_folder(root)
    cutoff = (now if now is not None else time.time()) - older_than_hours * 3600
    removed: list[Path] = []
    for folder in sorted(root.iterdir()):
        try:
            if not folder.is_dir() or folder.is_symlink() or last_touched(folder) >= cutoff:
                continue
        except OSError:  # removed meanwhile
            continue
        if is_active is not None and is_active(spool_run_id(folder)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed
