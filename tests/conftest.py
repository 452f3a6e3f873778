"""Shared fixtures: real stores (SQLite and PostgreSQL), seeded workspaces, a Prefect server.

PostgreSQL is not optional: when it cannot be reached the tests that need it
error with the reason (``make test`` installs and starts it first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from servers.postgres import fresh_database

#: The real servers' session fixtures (tests/servers/), available to every test.
pytest_plugins = [f"servers.{name}" for name in ("azurite", "ftp", "gcs", "http", "local", "prefect", "s3", "sftp", "smtp")]

SMALL = dict(contacts=400, events=3_000, products=12)


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory) -> Iterator[None]:
    """One temporary Prefect server (and database) for the whole session."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # nothing leaves the machine (and no telemetry writes to lock SQLite)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
        _drain_prefect_workers()


def _drain_prefect_workers(seconds: float = 30) -> None:
    """Drain Prefect's log and event workers with a deadline, before the harness drains them without one.

    A worker whose server has gone (a test's own Prefect server, stopped at its module's end) can wait for
    it forever, and the session's teardown with it (seen: one xdist worker stuck in the harness's drain).
    Whatever has not drained by the deadline is dropped, as it would be at interpreter exit.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        _, pending = worker.drain_all(timeout=seconds)
        if pending:
            with worker._instance_lock:
                worker._instances.clear()


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ferry-data")
    os.environ["FERRY_DATA_DIR"] = str(path)
    return path


@dataclass
class Store:
    """A migrated store and how to reach it."""

    kind: str
    url: str
    engine: sa.Engine

    def activate(self) -> None:
        """Make this the store that flows and the CLI use (FERRY_DATABASE_URL)."""
        from ferry.settings import reload_settings

        os.environ["FERRY_DATABASE_URL"] = self.url
        reload_settings()


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test process, dropped at the end."""
    with fresh_database("ferry_test") as url:
        yield url


def _make_store(kind: str, tmp_path_factory, pg_url_factory) -> Store:
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ferry.db'}"
    else:
        url = pg_url_factory()
    engine = get_engine(url)
    upgrade(engine)
    return Store(kind, url, engine)


_SEEDED: dict[str, Store] = {}


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def seeded_store(request, tmp_path_factory) -> Store:
    """A store on each backend with two seeded workspaces, acme and globex. Read-only for tests."""
    from ferry.store.seed import SeedCounts, seed_workspace

    # pytest sets a parametrized session fixture up again whenever the test order switches
    # backends (e.g. file by file under xdist's loadfile); the store outlives that: seed it once.
    if request.param in _SEEDED:
        return _SEEDED[request.param]
    store = _make_store(request.param, tmp_path_factory, lambda: request.getfixturevalue("pg_url"))
    seed_workspace(store.engine, "acme", SeedCounts(**SMALL), seed=1)
    seed_workspace(store.engine, "globex", SeedCounts(**SMALL), seed=2)
    _SEEDED[request.param] = store
    return store


@pytest.fixture
def store(seeded_store: Store) -> Store:
    """The seeded store of the current backend, made active for flows and the CLI."""
    seeded_store.activate()
    return seeded_store


@pytest.fixture
def empty_store(request, tmp_path_factory) -> Store:
    """A fresh, empty SQLite store (function-scoped) for tests that write."""
    store = _make_store("sqlite", tmp_path_factory, None)
    store.activate()
    return store
