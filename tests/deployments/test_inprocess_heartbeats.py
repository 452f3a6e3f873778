"""Runs started in the caller's own process (the CLI with nothing serving, the API's answers in the body) send
Prefect heartbeats every ``HEARTBEAT_SECONDS``, so a kill -9 of that process leaves a run ``ferry.sweep`` marks
Crashed within minutes, and a live one is never taken for dead (issue 15).

Prefect's default frequency (180 s) is longer than the sweep's ``STALE_SECONDS`` (150 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]


def _heartbeats_of(run_id: str) -> list[datetime]:
    """The run's heartbeats as the server stored them, oldest first."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventOrder, EventResourceFilter

    from ferry.sweep import HEARTBEAT_EVENT

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(since=datetime.now(UTC) - timedelta(hours=1), until=datetime.now(UTC) + timedelta(minutes=5)),
                event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
                order=EventOrder.ASC,
            ),
            limit=50,
        )
    return [event.occurred for event in page.events]


def test_runs_started_in_this_process_beat_as_often_as_the_sweep_expects(tmp_path, monkeypatch):
    """Each in-process entry of the service layer runs its flow with Ferry's heartbeat frequency, not Prefect's default."""
    from prefect import flow
    from prefect.settings import get_current_settings

    import flows.export
    import flows.import_
    import flows.rollback
    from deployments import service
    from ferry.import_params import ImportRequest
    from ferry.params import parse_request
    from ferry.sweep import HEARTBEAT_SECONDS, STALE_SECONDS

    seen: dict[str, int | None] = {}

    def probe(name: str):
        @flow(name=f"probe-{name}")
        def probed(*args, **kwargs):
            seen[name] = get_current_settings().flows.heartbeat_frequency

        return probed

    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    monkeypatch.setattr(flows.export, "export_data", probe("export"))
    monkeypatch.setattr(flows.import_, "import_data", probe("import"))
    monkeypatch.setattr(flows.rollback, "rollback_import", probe("rollback"))
    source = tmp_path / "contacts.csv"
    source.write_text("email\nada@example.com\n")

    service.run_export_here(parse_request({"workspace": "beats", "resource": "contacts"}))
    service.run_import(ImportRequest(source=str(source), resource="contacts", workspace="beats", auto_map=True))
    service.roll_back_import("00000000-0000-0000-0000-000000000000", "tester")

    assert seen == {"export": HEARTBEAT_SECONDS, "import": HEARTBEAT_SECONDS, "rollback": HEARTBEAT_SECONDS}
    assert HEARTBEAT_SECONDS * 3 < STALE_SECONDS


_CLI_EXPORT = textwrap.dedent(
    """
    import time
    import flows.export
    from prefect import task
    from prefect.runtime import flow_run
    from deployments.service import run_export_here
    from ferry.params import parse_request

    @task
    def slow_extract(*args, **kwargs):  # an export that takes its time, then a kill -9
        print(flow_run.get_id(), flush=True)
        time.sleep(300)

    flows.export.extract = slow_extract
    run_export_here(parse_request({"workspace": "beats", "resource": "contacts", "actor": "tester"}))
    """
)


def test_a_killed_cli_run_is_marked_crashed_by_the_sweep_and_a_live_one_is_not(empty_store, tmp_path):
    """``ferry export`` with nothing serving runs the flow in the CLI's own process: it beats while
    alive (never stale), and once killed -9 the sweep marks it Crashed with an audit entry."""
    from prefect import get_client
    from prefect.settings import get_current_settings

    from ferry.store.schema import audit_log
    from ferry.store.seed import SeedCounts, seed_workspace
    from ferry.sweep import crash_dead_runs

    seed_workspace(empty_store.engine, "beats", SeedCounts(contacts=5, events=1, products=1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # Prefect's default heartbeat frequency
    env.update(PREFECT_API_URL=get_current_settings().api.url, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _CLI_EXPORT], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the export never started"
        # The first beat comes at the start; how often the next ones come is the test above's (a second beat takes 30 s).
        deadline = time.monotonic() + 30
        while not _heartbeats_of(run_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _heartbeats_of(run_id), "no heartbeat within 30 s of the start"
        assert run_id not in crash_dead_runs()  # alive: the sweep's own rule keeps it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(4)
        assert run_id in crash_dead_runs(stale_seconds=3)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
    finally:
        proc.kill()
        proc.wait()

    assert state.type.value == "CRASHED" and "process died" in state.message
    with empty_store.engine.connect() as conn:
        entries = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.run_id)).all()
    assert ("export.crashed", "tester", run_id) in [tuple(e) for e in entries]
