"""Concurrent writers of one store: imports that overlap serialise instead of failing, a busy store says who holds it,
and a driver's error never carries the rows it was about."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid

import pytest
import sqlalchemy as sa
from imports.stages import run_stages

from ferry.errors import StoreBusyError, StoreWriteError
from ferry.store.guard import note_writer, store_writes

ROUTES = {"Email": "email", "First": "first_name"}


@pytest.mark.parametrize("import_store", ["postgresql"], indirect=True)
def test_eight_concurrent_imports_with_overlapping_emails_all_succeed(istore, tmp_path):
    ws = istore.workspace()
    failures: list[BaseException] = []
    results = []

    def one(n: int) -> None:
        rows = [{"Email": f"shared{i}@example.com", "First": f"run{n}"} for i in range(40)]  # the same 40 people in every file
        rows += [{"Email": f"own{n}-{i}@example.com", "First": "x"} for i in range(10)]
        try:
            results.append(run_stages(istore, tmp_path / f"r{n}", ws, rows, ROUTES, duplicates="update")[0])
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == [] and len(results) == 8
    assert sum(r.created_rows for r in results) == 40 + 80  # each shared person created once, each file's own ten
    assert len(istore.rows(ws)) == 120


def test_a_writer_that_gives_up_on_a_busy_sqlite_store_names_the_run_holding_it(tmp_path, monkeypatch):
    from ferry.settings import reload_settings
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    monkeypatch.setenv("FERRY_STORE_BUSY_TIMEOUT_SECONDS", "0.5")
    reload_settings()
    db = tmp_path / "ferry.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")  # another run's open write transaction
    note_writer(engine, "run-holding-it", "import")
    try:
        with pytest.raises(StoreBusyError) as busy, store_writes(engine, "run-waiting", "rollback"), engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO workspaces (slug, name) VALUES ('w', 'w')"))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
        monkeypatch.delenv("FERRY_STORE_BUSY_TIMEOUT_SECONDS")
        reload_settings()
    assert "import run run-holding-it (process" in busy.value.message and "Run it again" in str(busy.value)
    assert busy.value.transient


@pytest.mark.parametrize("import_store", ["postgresql"], indirect=True)
def test_a_driver_error_keeps_the_values_out_of_the_error_and_the_logs(istore, caplog):
    ws = istore.workspace()
    email = f"secret-{uuid.uuid4().hex[:6]}@example.com"
    insert = sa.text("INSERT INTO contacts (workspace_id, email) SELECT id, :email FROM workspaces WHERE slug = :ws").bindparams(
        email=email, ws=ws
    )
    with istore.engine.begin() as conn:
        conn.execute(insert)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreWriteError) as refused, store_writes(istore.engine, "run-1", "import"), istore.engine.begin() as conn:
        conn.execute(insert)  # the same e-mail again: a unique violation whose DETAIL names the e-mail
    assert "duplicate key value violates unique constraint" in str(refused.value)
    assert email not in str(refused.value) and email not in caplog.text
    assert refused.value.__cause__ is None and refused.value.__context__ is not None  # logged frames only, no chained values
