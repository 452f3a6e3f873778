"""Seeding stays deterministic when made fast, and the bulk-load path leaves the schema as the migrations made it.

Also the streaming readers behind extract: row-aligned COPY blocks (with line
breaks and quotes inside values) and the prefetch thread's clean-up.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from ferry.store import fast_load, seed
from ferry.store.seed import SeedCounts, seed_workspace

PG_ADMIN_URL = os.environ.get("FERRY_TEST_PG_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")

# Digests of the generators' output, computed with the original (numpy-string)
# implementation: the Arrow-native rewrite must produce exactly the same rows.
GOLDEN = ("af8280c60e14b005", "570a5156a3d591fa", "f9f53976862eb4f2", "9d78b6923a04b03f")
SERVER_DEFAULTS = {"added_at", "created_at", "updated_at"}  # filled by the database, differ between runs
GENERATED_TIMES = {"accounts", "contacts", "events", "survey_responses", "products"}  # times set by the seeder


def _digest(tables: Iterator[pa.Table]) -> str:
    h = hashlib.sha256()
    for table in tables:
        h.update(repr(table.schema.names).encode())
        h.update(repr(table.to_pylist()).encode())
    return h.hexdigest()[:16]


def test_generators_give_the_rows_of_the_original_implementation():
    rng = np.random.default_rng(11)
    got = (
        _digest(seed._accounts(rng, 3, 250, "w")),
        _digest(seed._contacts(rng, 3, 1000, np.arange(10, 60), "w")),
        _digest(seed._events(rng, 3, 1000, np.arange(5, 900))),
        _digest(seed._responses(rng, 3, 300, np.arange(5, 900))),
    )
    assert got == GOLDEN


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[sa.Engine]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); run `make test-services`.")
    yield admin
    admin.dispose()


def _fresh_store(kind: str, tmp_path, pg_admin: sa.Engine, cleanup: list) -> sa.Engine:
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
    else:
        name = f"ferry_test_seed_{uuid.uuid4().hex[:8]}"
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        cleanup.append(name)
    engine = make_engine(url)
    upgrade(engine)
    return engine


def _rows(engine: sa.Engine) -> dict[str, list]:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.c if not (c.name in SERVER_DEFAULTS and table.name not in GENERATED_TIMES)]
            order = list(table.primary_key.columns) or columns
            out[table.name] = conn.execute(sa.select(*columns).order_by(*order)).all()
    return out


def _schema(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return sorted(conn.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master").all())
        indexes = conn.exec_driver_sql("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").all()
        constraints = conn.exec_driver_sql(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace"
        ).all()
        return sorted(indexes) + sorted(constraints)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_bulk_load_path_gives_the_same_rows_and_schema(kind, tmp_path, pg_admin, monkeypatch):
    cleanup: list[str] = []
    try:
        plain = _fresh_store(kind, tmp_path, pg_admin, cleanup)
        bulk = _fresh_store(kind, tmp_path, pg_admin, cleanup)
        counts = SeedCounts(contacts=300, events=800, products=4)
        seed_workspace(plain, "acme", counts, seed=3)  # below BULK_ROWS: indexes updated row by row
        schema_before = _schema(bulk)

        rebuilt: list[str] = []
        original = fast_load._drop_pg_indexes if kind == "postgresql" else fast_load._drop_sqlite_indexes

        def spy(conn, table):
            ddl = original(conn, table)
            rebuilt.extend(ddl)
            return ddl

        monkeypatch.setattr(fast_load, "_drop_pg_indexes" if kind == "postgresql" else "_drop_sqlite_indexes", spy)
        monkeypatch.setattr(fast_load, "BULK_ROWS", 1)
        seed_workspace(bulk, "acme", counts, seed=3)

        assert any("contacts" in ddl for ddl in rebuilt)  # the bulk path did run...
        assert _schema(bulk) == schema_before  # ...and put every index and constraint back as it was
        assert _rows(bulk) == _rows(plain)
    finally:
        from ferry.store.engine import forget_engines

        forget_engines()
        with pg_admin.connect() as conn:
            for name in cleanup:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_prefetch_raises_the_generators_error_and_stops_early():
    def broken():
        yield pa.table({"x": [1]})
        raise ValueError("generator failed")

    got = fast_load._prefetch(broken())
    assert next(got).num_rows == 1
    with pytest.raises(ValueError, match="generator failed"):
        next(got)

    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield pa.table({"x": [i]})

    stream = fast_load._prefetch(endless())
    next(stream)
    stream.close()  # the consumer stops: the producer thread must end, not fill memory
    assert len(produced) < 10


def test_postgresql_reader_keeps_line_breaks_quotes_and_nulls_apart_from_empty_text(pg_admin):
    """Values with newlines, quotes and commas, and NULL next to '', come back as stored."""
    import tasks.export.extract as extract
    from ferry.store.engine import make_engine

    engine = make_engine(PG_ADMIN_URL)
    texts = ["plain", 'say "hi"', "two\nlines", "comma, here", "", None, "\r\nwindows", "x" * 100]
    values = sa.values(sa.column("n", sa.Integer), sa.column("t", sa.Text), name="v").data(list(enumerate(texts)))
    query = sa.select(values.c.n, values.c.t).order_by(values.c.n)
    schema = pa.schema([pa.field("n", pa.int64()), pa.field("t", pa.string())])
    try:
        batches = list(extract.stream_batches(engine, query, schema, 1000))
        table = pa.Table.from_batches(batches)
        assert table.column("t").to_pylist() == texts
        assert table.column("n").to_pylist() == list(range(len(texts)))

        # stopping early closes the reader and leaves the store usable
        stream = extract.stream_batches(engine, query, schema, 1000)
        next(stream)
        stream.close()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()
