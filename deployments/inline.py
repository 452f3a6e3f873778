"""Imports whose data arrives in one request: an upload made of a request's file or of rows sent inline, and mapping suggestions
for columns a client names (what the vendor adapters in api/compat call; the native API uses signed uploads).

Both kinds of upload are ordinary uploads of the caller's workspace
(:mod:`deployments.uploads`): counted against ``FERRY_API_MAX_UPLOAD_BYTES``,
kept ``FERRY_UPLOAD_RETENTION_DAYS``, readable by every import step and by the
import run. Rows sent inline are written as JSON Lines, one object per row with
every key of any row (missing ones null), so the row numbers the import reports
are the rows' own positions (1 = the first row) and values keep their JSON
types.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson

from deployments.uploads import Upload, create_upload, max_upload_bytes, read_upload, write_content
from ferry.errors import MalformedRequestError, ParameterError, PayloadTooLargeError, Problem
from ferry.keys import Principal
from ferry.settings import get_settings

#: The name of an upload made of inline rows.
ROWS_FILENAME = "inline-rows.jsonl"
_CHUNK = 1 << 20


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The file is over {limit:,} bytes (FERRY_API_MAX_UPLOAD_BYTES).", "Split it into smaller files.")


def _incoming() -> Path:
    folder = get_settings().data_dir.resolve() / "uploads" / ".incoming"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


async def _chunks_of(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:
        while chunk := await anyio.to_thread.run_sync(file.read, _CHUNK):
            yield chunk


async def _store(caller: Principal, filename: str, path: Path, size: int) -> Upload:
    """An upload of ``caller``'s workspace holding the file at ``path`` (``size`` bytes)."""
    target = await anyio.to_thread.run_sync(
        lambda: create_upload(caller, {"filename": filename, "sizeBytes": size}, "http://ferry.invalid")
    )
    upload = await anyio.to_thread.run_sync(read_upload, caller.workspace, target["uploadId"])
    return await write_content(upload, _chunks_of(path), size)


async def save_upload(caller: Principal, filename: str, chunks: AsyncIterator[bytes]) -> Upload:
    """A completed upload of the bytes ``chunks`` yields, named ``filename``: counted as they arrive (413 over the limit)."""
    limit = max_upload_bytes()
    with tempfile.NamedTemporaryFile(dir=_incoming(), prefix="part-") as spool:
        written = 0
        async for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise _too_large(limit)
            await anyio.to_thread.run_sync(spool.write, chunk)
        spool.flush()
        if not written:
            raise MalformedRequestError(f"The file {filename!r} is empty.", "Send a file with a header row and data.")
        return await _store(caller, filename, Path(spool.name), written)


def _jsonl(rows: list[dict[str, Any]], keys: list[str]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps({key: row.get(key) for key in keys}) + b"\n"


def rows_upload(caller: Principal, rows: list[Any], field: str = "rows") -> Upload:
    """A completed upload of ``rows`` (JSON objects) as JSON Lines; ParameterError naming every row that is not an object."""
    problems = [
        Problem(f"{field}[{i}]", row, "must be an object of column -> value") for i, row in enumerate(rows) if not isinstance(row, dict)
    ]
    if not rows:
        problems.append(Problem(field, rows, "give at least one row"))
    if problems:
        raise ParameterError(problems[:20])
    keys = list(dict.fromkeys(key for row in rows for key in row))
    limit = max_upload_bytes()
    with tempfile.NamedTemporaryFile(dir=_incoming(), prefix="rows-") as spool:
        written = 0
        for line in _jsonl(rows, keys):
            written += len(line)
            if written > limit:
                raise _too_large(limit)
            spool.write(line)
        spool.flush()
        return anyio.run(_store, caller, ROWS_FILENAME, Path(spool.name), written)


def suggest_columns(columns: list[str], sample_rows: list[dict], resource: str, workspace: str | None = None):
    """The suggested mapping of ``columns`` (with optional sample rows) onto ``resource``, and the fields it can map to.

    The same rules as for a file (:mod:`tasks.imports.map`); with ``workspace``
    a mapping the workspace accepted before for the same columns comes first.
    """
    from tasks.imports.map import suggest_mapping, target_fields

    return suggest_mapping(columns, sample_rows, resource, workspace=workspace), target_fields(resource)
