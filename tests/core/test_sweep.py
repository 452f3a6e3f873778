"""What a kill -9 leaves behind: spool folders (owner-only, swept) and runs left Running (marked Crashed, audited)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from ferry.spool import sweep_spools, write_spool

HOUR = 3600


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spools_are_written_owner_only(tmp_path):
    folder = tmp_path / "spool" / f"import-{uuid.uuid4()}"
    schema = pa.schema([("email", pa.string())])
    write_spool(folder / "source.arrow", schema, [pa.RecordBatch.from_pylist([{"email": "a@example.com"}], schema=schema)])

    assert _mode(folder) == 0o700
    assert _mode(folder / "source.arrow") == 0o600


def test_an_existing_wider_spool_folder_is_tightened(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    schema = pa.schema([("x", pa.int64())])
    write_spool(folder / "a.arrow", schema, [])
    assert _mode(folder) == 0o700


def _aged(folder: Path, hours: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "extract.arrow").write_bytes(b"customer data")
    then = time.time() - hours * HOUR
    for path in (folder / "extract.arrow", folder):
        os.utime(path, (then, then))
    return folder


def test_the_sweep_removes_old_folders_of_dead_runs_only(tmp_path):
    root = tmp_path / "spool"
    dead = _aged(root / "import-dead", 30)
    fresh = _aged(root / "fresh", 1)
    running = _aged(root / "long-running", 30)

    removed = sweep_spools(root, 24, is_active=lambda run_id: run_id == "long-running")

    assert removed == [dead]
    assert not dead.exists() and fresh.exists() and running.exists()
    assert _mode(root) == 0o700


def test_a_folder_a_run_still_writes_in_is_kept(tmp_path):
    root = tmp_path / "spool"
    folder = _aged(root / "busy", 30)
    (folder / "new.arrow").write_bytes(b"just written")  # the folder's own mtime is old, a file is new

    assert sweep_spools(root, 24) == []
    assert folder.exists()


_RUN = textwrap.dedent(
    """
    import time
    from prefect import flow

    @flow(name="export-data")
    def export_data(request: dict):
        print("started", flush=True)
        time.sleep(300)

    export_data({"workspace": "kills", "resource": "contacts", "actor": "tester"})
    """
)


def test_a_killed_run_is_marked_crashed_with_an_audit_entry(empty_store, tmp_path):
    """A real flow process with Prefect's heartbeats, kill -9: the sweep marks it Crashed and audits it."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import get_current_settings

    from ferry.store.schema import audit_log
    from ferry.store.seed import SeedCounts, seed_workspace
    from ferry.sweep import crash_dead_runs

    seed_workspace(empty_store.engine, "kills", SeedCounts(contacts=1, events=1, products=1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=get_current_settings().api.url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30")
    proc = subprocess.Popen([sys.executable, "-c", _RUN], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["export-data"])))
            run = next(r for r in runs if r.state.is_running() and (r.parameters["request"] or {}).get("workspace") == "kills")
            time.sleep(3)  # the first heartbeat is sent at the start; let it be persisted
            assert crash_dead_runs(stale_seconds=60) == []  # alive: its heartbeat is fresh
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            time.sleep(4)
            assert crash_dead_runs(stale_seconds=3) == [str(run.id)]
            state = client.read_flow_run(run.id).state
    finally:
        proc.kill()
        proc.wait()

    assert state.type.value == "CRASHED" and "process died" in state.message
    with empty_store.engine.connect() as conn:
        entries = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.run_id)).all()
    assert ("export.crashed", "tester", str(run.id)) in [tuple(e) for e in entries]
