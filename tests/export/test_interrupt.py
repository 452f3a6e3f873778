"""Ctrl-C on an export running in the CLI's own process: its stages, which run side by side in threads, stop within
a batch; the run ends Crashed and leaves neither a file nor its spool folder behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# An extract from a store without end: only the pipe to the next stage can stop it.
_ENDLESS_EXPORT = textwrap.dedent(
    """
    import faulthandler
    import signal

    import pyarrow as pa
    from prefect import task
    from prefect.runtime import flow_run

    import flows.export
    from deployments.service import run_export_here
    from ferry.params import parse_request
    from ferry.pipe import StreamHeader
    from ferry.store.engine import get_engine
    from tasks.export.extract import arrow_schema, build_queries

    @task(name="extract")
    def endless_extract(request, into):
        with get_engine().connect() as conn:
            _, _, columns = build_queries(request, conn)
        schema = arrow_schema(columns)
        batch = pa.RecordBatch.from_arrays([pa.nulls(100, f.type) for f in schema], schema=schema)
        with into.writing("extract"):
            into.open(StreamHeader(schema, columns, 10**12))
            print(flow_run.get_id(), flush=True)
            while True:
                into.put(batch)

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for every thread's stack before a kill
    # Ctrl-C as in a terminal: a test run started in the background (nohup ... &) hands its children SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    flows.export.extract = endless_extract
    run_export_here(parse_request({"workspace": "stops", "resource": "contacts", "format": "csv", "gzip": True}))
    """
)


def test_ctrl_c_stops_a_running_export_at_once_and_leaves_nothing(empty_store, tmp_path):
    from prefect import get_client
    from prefect.settings import get_current_settings

    from ferry.settings import get_settings
    from ferry.store.seed import SeedCounts, seed_workspace

    seed_workspace(empty_store.engine, "stops", SeedCounts(contacts=5, events=1, products=1))
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _ENDLESS_EXPORT], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the export never started"
        spool = get_settings().spool_dir / run_id
        deadline = time.monotonic() + 60
        while not (spool.exists() and any(spool.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)  # serialize, the last stage submitted, has started its file: every stage is running
        assert spool.exists() and any(spool.iterdir()), "the export's stages never all started"
        time.sleep(0.5)  # batches are flowing through every stage
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(30)
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:  # still running: its threads' stacks go to the test's output, to show where it hangs
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
        proc.kill()
        proc.wait()

    assert proc.returncode != 0 and stopped_in < 10  # not after the (endless) export
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    assert state.type.value == "CRASHED" and "interrupt" in state.message
    assert not (get_settings().spool_dir / run_id).exists()
    assert list(get_settings().exports_dir.glob("*")) == []
