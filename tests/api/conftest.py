"""The live service the API tests call over HTTP: a Prefect server on PostgreSQL, ``ferry serve``, ``ferry api``, a store.

Everything is real and on loopback: the store is a PostgreSQL database with
two seeded workspaces (acme and globex), ``ferry serve`` runs the export
deployment, and ``ferry api`` is a separate process, called with httpx. The
processes start once per test worker; every module starts from a freshly
seeded store with its own keys (``fresh_store``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from servers.api import start_api
from servers.postgres import fresh_database
from servers.prefect import FerryProcess, deployment_ready, ferry_env, start_prefect_server, wait_for

CONTACTS = 120


@dataclass
class Service:
    """The running service: its base URL, store and data folder, and keys by name."""

    url: str
    store_url: str
    engine: sa.Engine
    data_dir: Path
    env: dict[str, str]
    keys: dict[str, str]

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key is not None:
            headers["x-api-key"] = self.keys.get(key, key)
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    @staticmethod
    def poll(http: httpx.Client, run_id: str, timeout: float) -> dict:
        """GET /v1/runs/{id} until the run has ended; its last answer."""
        deadline = time.monotonic() + timeout
        while True:
            run = http.get(f"/v1/runs/{run_id}").json()
            if run.get("status") in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                return run
            time.sleep(1)


def seed_store(engine: sa.Engine) -> dict[str, str]:
    """Every table emptied (ids from 1 again), workspaces acme and globex seeded, and a key per workspace and role."""
    from ferry.keys import create_key
    from ferry.store.schema import metadata
    from ferry.store.seed import SeedCounts, seed_workspace

    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} RESTART IDENTITY CASCADE")
    seed_workspace(engine, "acme", SeedCounts(contacts=CONTACTS, events=100, products=2), seed=1)
    seed_workspace(engine, "globex", SeedCounts(contacts=CONTACTS, events=100, products=2), seed=2)
    keys = {}
    for workspace in ("acme", "globex"):
        for role in ("admin", "operator", "viewer"):
            keys[f"{workspace}-{role}"] = create_key(engine, workspace, role, f"tests {role}")[1]
    return keys


@pytest.fixture(scope="session")
def api_store(tmp_path_factory):
    """A fresh, migrated PostgreSQL store for the API service; dropped at the end."""
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade

    with fresh_database("ferry_api") as url:
        engine = get_engine(url)
        upgrade(engine)
        yield url, engine


@pytest.fixture(scope="session")
def api_prefect_server(tmp_path_factory):
    """One Prefect server on PostgreSQL per test worker for every API module: starting one per module cost ~20 s each."""
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def prefect_api(api_prefect_server):
    """While an API module runs, its in-process Prefect clients talk to the service's server (other modules keep theirs)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_prefect_server.api_url}):
        yield api_prefect_server


@pytest.fixture(scope="module", autouse=True)
def fresh_store(service):
    """Each API module starts from the seeded store with new keys, as if the service were its own."""
    service.keys.clear()
    service.keys.update(seed_store(service.engine))


@pytest.fixture(scope="session")
def service(api_prefect_server, api_store, tmp_path_factory):
    """``ferry serve`` and ``ferry api`` against one Prefect server, store and data folder (keys: ``fresh_store``)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, engine = api_store
    workdir = tmp_path_factory.mktemp("api")
    data_dir = workdir / "data"
    env = ferry_env(api_prefect_server.api_url, data_dir, url)
    runner = FerryProcess(["serve", "--poll-seconds", "1", "--sync-seconds", "2", "--limit", "4"], env, workdir, "serve").start()
    api_process = None
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_prefect_server.api_url}):
            wait_for(lambda: deployment_ready("export-data/default"), 180, "ferry serve polling export-data/default", logs=runner.log_text)
        api_process, base_url = start_api(workdir, env)
        yield Service(base_url, url, engine, data_dir, env, {})
    finally:
        if api_process is not None:
            api_process.stop()
        runner.stop()
