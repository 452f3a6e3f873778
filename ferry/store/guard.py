"""Writers of the store: one merge per workspace and resource at a time, a clear word when the store is busy, no values in errors.

* PostgreSQL: concurrent imports into one workspace and resource take a
  transaction-level advisory lock before their merge (:func:`merge_lock`), so
  they serialise where they conflict (staging still runs in parallel) instead
  of failing on a unique-index race; the lock goes with the transaction.
* SQLite has one writer at a time: a writer waits (``busy_timeout``) and, when
  it gives up, :func:`store_writes` says which run holds the store (the holder
  notes itself beside the database file while it writes).
* A driver error (``IntegrityError``, ``DataError``...) quotes the rows it was
  about (``Key (workspace_id, email)=(21, ann@example.com)``) and SQLAlchemy
  adds the statement's parameters: neither may reach run logs or records.
  :func:`store_writes` turns one into a :class:`StoreWriteError` holding only
  the server's primary message (which names the constraint, not the values).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ferry.errors import StoreBusyError, StoreWriteError

SQLITE_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
logger = logging.getLogger("ferry.store")


def merge_lock(conn: Connection, workspace_id: int, resource: str) -> None:
    """Wait for, then hold until commit, the merge lock of ``resource`` in ``workspace_id`` (PostgreSQL; SQLite needs none)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"ferry-merge:{workspace_id}:{resource}".encode(), digest_size=8).digest()
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest, "big", signed=True)})


def primary_message(exc: DBAPIError) -> str:
    """The database's own first line about ``exc``, without DETAIL lines, statement or parameters."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)  # psycopg
    if orig is None:
        return type(exc).__name__
    message = getattr(diag, "message_primary", None) or (str(orig).splitlines() or [""])[0]
    return f"{type(orig).__name__}: {message}"


def _holder_file(engine: Engine) -> Path | None:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(f"{database}.writer") if database and database != ":memory:" else None


def _holder(engine: Engine) -> str:
    path = _holder_file(engine)
    try:
        note = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        note = None
    if not note:
        return "another writer (no Ferry run noted itself; `ferry serve`, a seed or a script may hold it)"
    return f"{note['what']} run {note['run_id']} (process {note['pid']}, writing since {note['since']})"


@contextmanager
def store_writes(engine: Engine, run_id: str, what: str) -> Iterator[None]:
    """Around one run's writes: note the holder (SQLite), and turn driver errors into Ferry's, without values."""
    note = _holder_file(engine)
    try:
        yield
    except DBAPIError as exc:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logger.error("%s run %s: %s\n%s", what, run_id, primary_message(exc), frames)  # frames only: no values
        if code in SQLITE_BUSY_CODES:
            raise StoreBusyError(
                f"The store is busy: {_holder(engine)} kept it locked longer than this {what} waits.",
                "Run it again once that run has finished; if its process is gone, its lock went with it.",
            ) from None
        raise StoreWriteError(f"The store refused the {what}'s writes: {primary_message(exc)}.", "Nothing was written.") from None
    finally:
        if note is not None and note.exists() and _noted_by_me(note, run_id):
            note.unlink(missing_ok=True)


def note_writer(engine: Engine, run_id: str, what: str) -> None:
    """Say beside an SQLite store who holds its write lock from now on (the holder has just taken it)."""
    path = _holder_file(engine)
    if path is None:
        return
    note = {"run_id": run_id, "what": what, "pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(note))


def _noted_by_me(path: Path, run_id: str) -> bool:
    try:
        return json.loads(path.read_text()).get("run_id") == run_id
    except (OSError, ValueError):
        return False
