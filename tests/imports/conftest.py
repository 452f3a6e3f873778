"""Fixtures of the import tests: writable stores on both backends.

The root conftest's seeded stores are read-only, so imports write into stores
of their own: one migrated SQLite file and one PostgreSQL database per test
process, with a fresh workspace per test (which is also what keeps tests
independent of each other).
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from imports.stages import ImportStore
from servers.postgres import fresh_database

from ferry.store.engine import get_engine
from ferry.store.migrate import upgrade


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def import_store(request, tmp_path_factory):
    """A migrated, writable store on each backend for import tests."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('import-sqlite') / 'ferry.db'}"
        else:
            url = stack.enter_context(fresh_database("ferry_import"))
        engine = get_engine(url)
        upgrade(engine)
        yield ImportStore(request.param, url, engine)
        engine.dispose()


@pytest.fixture
def istore(import_store: ImportStore) -> ImportStore:
    import_store.activate()
    return import_store
