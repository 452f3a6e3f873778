"""The parse stage as Prefect tasks: what the file is (before any mapping), then its rows into an Arrow spool.

Two tasks so the flow can settle and check the mapping between them: a bad
mapping is refused from the header alone, before a single data row is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from ferry.import_params import ImportRequest
from ferry.progress import Progress
from ferry.settings import get_settings
from ferry.spool import write_spool
from tasks.imports.parse.fileinfo import FileInfo
from tasks.imports.parse.reading import iter_batches
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
    """Every row of the file into ``spool_dir/source.arrow``, reporting progress per batch."""
    progress = Progress("read", None, key="import-progress")

    def counted():
        for batch in iter_batches(info, get_settings().batch_rows):
            progress.advance(batch.num_rows)
            yield batch

    spool = spool_dir / "source.arrow"
    rows = write_spool(spool, info.schema(), counted())
    progress.finish()
    return Parsed(spool, rows, list(info.columns), info.file_type, list(info.warnings))
