"""A killed process's PostgreSQL query does not run on (issue 15): its backend notices the client is gone and stops.

PostgreSQL runs a statement to its end even when its client died (it notices only
when it sends a result), which kept a killed import's merge running for 10-18 s and
held its locks against the re-run. Ferry's engine sets ``client_connection_check_interval``
(PostgreSQL 14+), so the backend checks its socket while the statement runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]

_QUERY = textwrap.dedent(
    """
    import sys
    from ferry.store.engine import make_engine

    engine = make_engine(sys.argv[1])
    with engine.connect() as conn:
        print("connected", flush=True)
        conn.exec_driver_sql("SELECT pg_sleep(30)")
    """
)


def _backend(conn: sa.Connection, app: str) -> tuple[int, str] | None:
    return conn.execute(sa.text("SELECT pid, state FROM pg_stat_activity WHERE application_name = :app"), {"app": app}).first()


def test_a_killed_clients_query_stops_within_seconds(pg_url):
    app = f"ferry-kill-{uuid.uuid4().hex[:12]}"
    url = f"{pg_url}?application_name={app}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _QUERY, url], env=env, stdout=subprocess.PIPE, text=True)
    watcher = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        assert proc.stdout.readline().strip() == "connected"
        with watcher.connect() as conn:
            deadline = time.monotonic() + 20
            while (row := _backend(conn, app)) is None or row.state != "active":
                assert time.monotonic() < deadline, "the query never started"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            killed = time.monotonic()
            while _backend(conn, app) is not None and time.monotonic() - killed < 10:
                time.sleep(0.05)
            gone_after = time.monotonic() - killed
            print(f"backend gone {gone_after:.2f} s after the kill")
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :app"), {"app": app})
    finally:
        proc.kill()
        proc.wait()
        watcher.dispose()
    assert gone_after < 4, f"the killed client's query ran on for {gone_after:.1f} s"
