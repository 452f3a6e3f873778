"""Bulk writes of Arrow data into the store, through each database's bulk interface.

PostgreSQL gets ``COPY ... FROM STDIN`` fed with CSV that pyarrow writes; SQLite
gets ``executemany`` on the DBAPI cursor. Never row-by-row ORM.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Table


def insert_batches(conn: Connection, table: Table, batches: Iterable[pa.RecordBatch | pa.Table]) -> int:
    """Append every row of ``batches`` (column names = table column names) to ``table``."""
    if conn.dialect.name == "postgresql":
        return _copy_batches(conn, table, batches)
    total = 0
    for batch in batches:
        if batch.num_rows:
            _executemany_batch(conn, table, batch)
            total += batch.num_rows
    return total


def _copy_batches(conn: Connection, table: Table, batches: Iterable[pa.RecordBatch | pa.Table]) -> int:
    """One ``COPY`` for every batch: the server parses one batch's text while pyarrow writes the next one's."""
    total = 0
    raw = conn.connection.driver_connection  # psycopg 3 connection, inside SQLAlchemy's transaction
    with ExitStack() as stack:
        copy = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if copy is None:
                columns = ", ".join(f'"{name}"' for name in batch.schema.names)
                cursor = stack.enter_context(raw.cursor())
                copy = stack.enter_context(cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)'))
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
            copy.write(buffer.getbuffer())
            total += batch.num_rows
    return total


def _executemany_batch(conn: Connection, table: Table, batch: pa.RecordBatch | pa.Table) -> None:
    names = batch.schema.names
    columns = [_sqlite_values(batch.column(i)) for i in range(len(names))]
    sql = f'INSERT INTO "{table.name}" ({", ".join(names)}) VALUES ({", ".join("?" for _ in names)})'
    conn.exec_driver_sql(sql, list(zip(*columns)))


def _sqlite_values(array: pa.Array | pa.ChunkedArray) -> list:
    """Python values in the text form SQLAlchemy's SQLite dialect stores."""
    if pa.types.is_timestamp(array.type):
        return pc.strftime(array, format="%Y-%m-%d %H:%M:%S").to_pylist()
    if pa.types.is_date(array.type):
        return pc.strftime(array, format="%Y-%m-%d").to_pylist()
    if pa.types.is_boolean(array.type):
        return pc.cast(array, pa.int8()).to_pylist()
    return array.to_pylist()
