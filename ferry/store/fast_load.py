"""Fast bulk loading for large seeds and imports: indexes rebuilt after the load, a bigger SQLite cache, batches prefetched.

Building an index once over a million rows is several times faster than
maintaining it row by row, so a large insert drops the table's secondary
indexes and constraints first and recreates them afterwards, in the same
transaction.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlalchemy import Connection

from ferry.store.bulk import insert_batches

BULK_ROWS = 200_000


def bulk_insert(conn: Connection, table, batches: Iterator[pa.Table], rows: int) -> int:
    """``insert_batches`` with generation running one chunk ahead of the database."""
    with rebuilt_indexes(conn, table.name, rows >= BULK_ROWS):
        return insert_batches(conn, table, _prefetch(batches))


@contextmanager
def rebuilt_indexes(conn: Connection, table: str, enabled: bool) -> Iterator[None]:
    """Drop ``table``'s secondary indexes (and, on PostgreSQL, its unique and
    foreign-key constraints) for the body, then recreate them from their own DDL.

    The definitions are read back from the database catalog, so names and
    options stay exactly what the migrations created. Everything runs in the
    caller's transaction: a failed load leaves the schema untouched.
    """
    if not enabled:
        yield
        return
    if conn.dialect.name == "postgresql":
        recreate = _drop_pg_indexes(conn, table)
    elif conn.dialect.name == "sqlite":
        recreate = _drop_sqlite_indexes(conn, table)
    else:
        recreate = []
    yield
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for ddl in recreate:
        conn.exec_driver_sql(ddl)


def _drop_pg_indexes(conn: Connection, table: str) -> list[str]:
    constraints = conn.exec_driver_sql(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %(t)s::regclass AND contype IN ('u', 'f') ORDER BY conname",
        {"t": f'"{table}"'},
    ).all()
    indexes = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %(t)s::regclass AND NOT i.indisprimary AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) ORDER BY c.relname",
        {"t": f'"{table}"'},
    ).all()
    for name, _type, _ddl in constraints:
        conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for name, _ddl in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    # unique constraints first, then plain indexes, then foreign keys (which may need the others)
    unique = [f'ALTER TABLE "{table}" ADD CONSTRAINT "{n}" {d}' for n, t, d in constraints if t == "u"]
    foreign = [f'ALTER TABLE "{table}" ADD CONSTRAINT "{n}" {d}' for n, t, d in constraints if t == "f"]
    return unique + [ddl for _, ddl in indexes] + foreign


def _drop_sqlite_indexes(conn: Connection, table: str) -> list[str]:
    # Inline UNIQUE constraints are automatic indexes (sql IS NULL) and cannot be dropped; named ones can.
    indexes = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name", (table,)
    ).all()
    for name, _ddl in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [ddl for _, ddl in indexes]


@contextmanager
def bigger_sqlite_cache(conn: Connection) -> Iterator[None]:
    """A 256 MB page cache while seeding SQLite: unique-index inserts stop thrashing the default 2 MB."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql("PRAGMA cache_size = -262144")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def _prefetch(items: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Yield ``items`` while a thread generates the next ones (numpy and Arrow
    release the GIL), so generation overlaps the database's work. Order, and
    so determinism, is unchanged: one producer, one FIFO queue."""
    done = object()
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="seed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
