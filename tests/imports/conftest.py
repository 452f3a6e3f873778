"""Fixtures of the import tests: writable stores on both backends.

The root conftest's seeded stores are read-only, so imports write into stores
of their own: one migrated SQLite file and one PostgreSQL database per test
process, with a fresh workspace per test (which is also what keeps tests
independent of each other).
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from imports.stages import ImportStore

from ferry.store.engine import get_engine
from ferry.store.migrate import upgrade

PG_ADMIN_URL = os.environ.get("FERRY_TEST_PG_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")


def _pg_database() -> tuple[str, sa.Engine]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ferry_import_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); run `make test-services`.")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", admin


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def import_store(request, tmp_path_factory):
    """A migrated, writable store on each backend for import tests."""
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('import-sqlite') / 'ferry.db'}"
    else:
        url, admin = _pg_database()
    engine = get_engine(url)
    upgrade(engine)
    yield ImportStore(request.param, url, engine)
    if admin is not None:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def istore(import_store: ImportStore) -> ImportStore:
    import_store.activate()
    return import_store
