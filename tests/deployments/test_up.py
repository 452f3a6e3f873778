"""``ferry up`` as a real process: it starts a Prefect server, the runner and the HTTP API, and stops them in order.

Nothing is mocked: ``ferry up`` runs with a clean environment (no ``PREFECT_*``
variables, a home of its own so no Prefect profile applies), so it starts its
own Prefect server on SQLite under the data folder. An export started over the
API runs to success at once (the API wakes the runner); a second one, taken by the runner when SIGTERM arrives,
still finishes (the drain); then everything is gone and the exit code is 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time

import httpx
import pytest
from servers import free_port
from servers.prefect import die_with_parent, ferry_executable, wait_for

START_TIMEOUT = 180  # Prefect server (fresh SQLite: migrations), runner and API, on a loaded 2-core machine
RUN_TIMEOUT = 240
POLL_SECONDS = 600
DRAIN_SECONDS = 90
STOP_MARGIN = 60  # after the drain: stopping the API and the Prefect server
CONTACTS = 30


def _run_if_finished(http: httpx.Client, run_id: str) -> dict | None:
    run = http.get(f"/v1/runs/{run_id}").json()
    return run if run.get("status") in ("succeeded", "failed", "cancelled") else None


def _prefect_state(prefect_api: str, run_id: str) -> str:
    return httpx.get(f"{prefect_api}/flow_runs/{run_id}", timeout=5).json()["state_type"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ferry_up_runs_exports_and_drains_on_sigterm(tmp_path):
    from ferry.keys import create_key
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store_url = f"sqlite:///{data_dir / 'ferry.db'}"
    engine = get_engine(store_url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=CONTACTS, events=50, products=2), seed=9)
    key = create_key(engine, "acme", "admin", "ferry up test")[1]

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(home), FERRY_DATA_DIR=str(data_dir), FERRY_DATABASE_URL=store_url, PYTHONUNBUFFERED="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stdout, stderr = tmp_path / "up.out", tmp_path / "up.err"
    # The runner polls for runs only every POLL_SECONDS, longer than RUN_TIMEOUT: the API wakes it for each export it starts.
    argv = [ferry_executable(), "up", "--port", str(port), "--poll-seconds", str(POLL_SECONDS), "--drain-seconds", str(DRAIN_SECONDS)]
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(die_with_parent(argv), stdout=out, stderr=err, env=env, cwd=tmp_path, start_new_session=True)

    def printed() -> str:
        return stdout.read_text(errors="replace")

    def logs() -> str:
        return f"--- ferry up stdout\n{printed()[-3000:]}\n--- stderr\n{stderr.read_text(errors='replace')[-8000:]}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"ferry up exited with code {process.returncode} while starting\n{logs()}", pytrace=False)
        return httpx.get(f"{base}/v1/health", timeout=5).json().get("status") == "ok"

    try:
        started = time.monotonic()
        wait_for(healthy, START_TIMEOUT, "ferry up's API reporting healthy", logs=logs)
        wait_for(lambda: "Ferry is up" in printed(), 30, "ferry up announcing its URLs", logs=logs, interval=0.2)
        startup = time.monotonic() - started

        text = printed()
        assert re.search(rf"^\s*API\s+{re.escape(base)}\s*$", text, re.M), text
        assert re.search(rf"^\s*API docs\s+{re.escape(base)}/docs\s*$", text, re.M), text
        ui = re.search(r"^\s*Prefect UI\s+(http://127\.0\.0\.1:(\d+))\s*$", text, re.M)
        server_pid = re.search(r"started here \(pid (\d+)", text)
        assert ui and server_pid, text
        ui_url, prefect_api, server_pid = ui.group(1), f"{ui.group(1)}/api", int(server_pid.group(1))
        assert int(ui.group(2)) != port
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
        assert httpx.get(ui_url, timeout=10).status_code == 200  # the UI, served by the Prefect server ferry up started
        assert httpx.get(f"{prefect_api}/health", timeout=5).json() is True

        with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=60) as http:
            response = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"]})
            assert response.status_code == 202, response.text
            first = response.json()["id"]
            run = wait_for(lambda: _run_if_finished(http, first), RUN_TIMEOUT, "the export to end", logs=logs)
            assert run["status"] == "succeeded" and run["recordCount"] == CONTACTS, (run, logs())

            # the drain: a run the runner has taken when SIGTERM arrives still finishes
            response = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"]})
            assert response.status_code == 202, response.text
            second = response.json()["id"]
            taken = lambda: (now := _prefect_state(prefect_api, second)) != "SCHEDULED" and now  # noqa: E731
            state = wait_for(taken, RUN_TIMEOUT, "the runner taking the second export", logs=logs, interval=0.1)
            assert state in ("PENDING", "RUNNING"), (state, logs())

        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=DRAIN_SECONDS + STOP_MARGIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ferry up did not stop within {DRAIN_SECONDS + STOP_MARGIN} s of SIGTERM\n{logs()}", pytrace=False)
        stop_seconds = time.monotonic() - stopping
        assert code == 0, logs()
        assert "Ferry stopped." in printed(), logs()

        # everything it started is gone: the Prefect server's process and port, the API's port
        assert not _pid_alive(server_pid), logs()
        for url in (f"{prefect_api}/health", f"{base}/v1/health"):
            with pytest.raises(httpx.TransportError):
                httpx.get(url, timeout=3)

        # the run in flight was drained, not cancelled: Prefect's own database says so, and its file is there
        with contextlib.closing(sqlite3.connect(data_dir / "prefect" / "prefect.db")) as db:
            row = db.execute("SELECT state_type FROM flow_run WHERE id = ?", (second,)).fetchone()
        assert row == ("COMPLETED",), (row, logs())
        assert list((data_dir / "exports").glob(f"*{second}*.csv")), logs()
        print(f"ferry up: ready after {startup:.0f} s, stopped {stop_seconds:.0f} s after SIGTERM (drain included)")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=DRAIN_SECONDS + STOP_MARGIN)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
