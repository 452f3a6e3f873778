"""The parse stage as Prefect tasks: what the file is (before any mapping), then its rows into an Arrow spool.

Two tasks so the flow can settle and check the mapping between them: a bad
mapping is refused from the header alone, before a single data row is read.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from ferry.errors import ConfigurationError
from ferry.import_params import ImportRequest
from ferry.progress import Progress
from ferry.settings import get_settings
from ferry.spool import write_spool
from tasks.imports.parse.batches import Stats
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.opening import ensure_free_space, expanded_size
from tasks.imports.parse.reading import BLOCK_BYTES, read_batches
from tasks.imports.parse.sniffing import sniff


@dataclass
class Parsed:
    """The file's rows in a spool (all text), and what the reader noticed."""

    spool: Path
    rows: int
    columns: list[str]
    file_type: str
    warnings: list[str] = field(default_factory=list)


@task(name="import-sniff", cache_policy=NONE, persist_result=False)
def sniff_source(request: ImportRequest) -> FileInfo:
    """Format, compression, encoding, dialect and columns of the request's file (its chosen sheet), from its head."""
    return sniff(request.source_path, sheet=request.sheet)


@task(name="import-parse", cache_policy=NONE, persist_result=False)
def read_rows(info: FileInfo, spool_dir: Path) -> Parsed:
    """Every row of the file into ``spool_dir/source.arrow``, reporting progress per batch.

    The spool needs about as much disk as the file's text: that much free space is checked
    first. A write error on the way (disk full, a file size limit) ends the stage as a
    :class:`ConfigurationError` saying so, with the reader closed (pyarrow's threads stopped,
    see :mod:`.csv_parser`) and the partial spool removed; it once aborted the process.
    """
    progress = Progress("read", None, key="import-progress")
    spool = spool_dir / "source.arrow"
    ensure_free_space(spool_dir, expanded_size(info.path, info.compression, info.member), f"the spool of {info.path.name}")
    stats = Stats()
    batches = read_batches(info, get_settings().batch_rows, BLOCK_BYTES, stats)

    def counted():
        for batch in batches:
            progress.advance(batch.num_rows)
            yield batch

    try:
        rows = write_spool(spool, info.schema(), counted())
    except OSError as exc:
        spool.unlink(missing_ok=True)
        if (error := _write_error(exc, spool_dir)) is None:
            raise
        raise error from exc
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    finally:
        batches.close()
    progress.finish()
    warnings = list(info.warnings) + ([nul] if (nul := stats.nul_warning()) else [])
    return Parsed(spool, rows, list(info.columns), info.file_type, warnings)


def _write_error(exc: OSError, spool_dir: Path) -> ConfigurationError | None:
    """A write error of the spool (disk full, file size limit, quota) as an error a person can act on; None for other errors."""
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EFBIG: "the file grew past the size limit of the process (ulimit -f)",
        errno.EDQUOT: "the disk quota is used up",
    }
    reason = reasons.get(exc.errno or 0)
    if reason is None:  # pyarrow gives the errno in its text only ("[errno 27] File too large")
        found = re.search(r"\[errno (\d+)\]", str(exc).lower())
        reason = reasons.get(int(found.group(1))) if found else None
    if reason is None:
        return None
    return ConfigurationError(
        f"The import's spool could not be written in {spool_dir}: {reason}. Nothing was imported, and the partial spool was removed.",
        "Free disk space there (or point FERRY_DATA_DIR at a bigger disk, or raise the limit) and run the import again.",
    )
