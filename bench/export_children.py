"""The export benchmark's measured children: each measurement runs in a fresh interpreter of its own.

``bench/export_bench.py --child KIND SPEC`` runs one of :data:`CHILDREN` and
prints its result as JSON, so a peak RSS is that export's alone.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "bench"


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def import_stages() -> None:
    """Import what the stages load on first use (pyarrow.compute on the first cast, the drivers): untimed, like other imports."""
    import adbc_driver_manager  # noqa: F401
    import adbc_driver_postgresql  # noqa: F401
    import adbc_driver_sqlite  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow.compute  # noqa: F401


def run_stages(request, spool_dir: Path):
    """The export's streaming stages as the flow runs them: at the same time, a thread each, joined by pipes.

    Returns (Serialized, how long each stage ran, wall seconds of the whole); the stages' times overlap.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ferry.pipe import Pipe
    from tasks.export.extract import extract
    from tasks.export.serialize import serialize
    from tasks.export.transform import transform
    from tasks.export.validate import validate

    rows, checked, shaped = Pipe(), Pipe(), Pipe()
    stages = {
        "extract": lambda: extract.fn(request, rows),
        "validate": lambda: validate.fn(rows, request.resource_def, checked, request.on_invalid),
        "transform": lambda: transform.fn(checked, request, shaped),
        "serialize": lambda: serialize.fn(shaped, request, spool_dir),
    }

    def timed(stage):
        start = time.perf_counter()
        return stage(), time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(len(stages)) as pool:
        running = {name: pool.submit(timed, stage) for name, stage in stages.items()}
    wall = time.perf_counter() - start
    done = {name: future.result() for name, future in running.items()}
    return done["serialize"][0], {name: seconds for name, (_, seconds) in done.items()}, wall


def child_ferry(spec: dict) -> dict:
    """Ferry's export through the stage functions (what the flow's tasks run), no Prefect server."""
    _ferry_env(spec)
    from ferry.params import parse_request

    import_stages()
    request = parse_request(spec["request"])
    spool_dir = Path(spec["data_dir"]) / "spool" / spec["run"]
    base_rss = _maxrss_mb(resource.RUSAGE_SELF)
    cpu0 = _cpu(resource.RUSAGE_SELF)
    written, stages, seconds = run_stages(request, spool_dir)
    out = {
        "rows": written.rows,
        "seconds": seconds,
        "cpu_seconds": _cpu(resource.RUSAGE_SELF) - cpu0,
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "base_rss_mb": base_rss,
        "file_mb": written.bytes / 1e6,
        "stages": stages,
    }
    shutil.rmtree(spool_dir, ignore_errors=True)
    return out


def child_cli(spec: dict) -> dict:
    """The whole ``ferry export`` process, as a user runs it (interpreter start, imports, the flow run), against a running
    Prefect server with no served deployment, so the export runs in this process; RSS is the process's own
    (``/usr/bin/time -f %M``: ``wait4``'s ``ru_maxrss``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
    env.update(
        FERRY_DATABASE_URL=spec["url"],
        FERRY_DATA_DIR=spec["data_dir"],
        PREFECT_API_URL=spec["api_url"],
        PREFECT_HOME=spec["prefect_home"],
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    ferry = str(Path(sys.executable).parent / "ferry")
    out = Path(spec["data_dir"]) / "cli.json"
    with open(out, "wb") as stdout:
        start = time.perf_counter()
        process = subprocess.Popen([ferry, *spec["argv"], "--json"], env=env, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ferry export exited {os.waitstatus_to_exitcode(status)}:\n{process.stderr.read().decode()[-3000:]}")
    record = json.loads(out.read_text())
    target = Path(record["destination_path"])
    size = target.stat().st_size
    target.unlink()
    return {
        "rows": record["record_count"],
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "file_mb": size / 1e6,
    }


def child_shell(spec: dict) -> dict:
    """A reference pipeline (psql / sqlite3 / gzip) run by the shell; RSS is its largest process."""
    target = Path(spec["target"])
    start = time.perf_counter()
    subprocess.run(spec["command"], shell=True, check=True, executable="/bin/bash")
    seconds = time.perf_counter() - start
    rows = int(spec.get("rows") or 0)
    size = target.stat().st_size
    target.unlink()
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": _cpu(resource.RUSAGE_CHILDREN),
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN),
        "file_mb": size / 1e6,
    }


def child_pandas(spec: dict) -> dict:
    """The usual pandas route: the whole result in one DataFrame, then ``to_csv``."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(spec["url"])
    target = Path(spec["target"])
    cpu0 = _cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(spec["sql"]), conn)
    frame.to_csv(target, index=False)
    seconds = time.perf_counter() - start
    out = {
        "rows": len(frame),
        "seconds": seconds,
        "cpu_seconds": _cpu(resource.RUSAGE_SELF) - cpu0,
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "file_mb": target.stat().st_size / 1e6,
    }
    target.unlink()
    return out


def child_seed(spec: dict) -> dict:
    """Create the schema and seed the bench workspace (timed, so BENCHMARKS.md shows seeding speed)."""
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    engine = make_engine(spec["url"])
    upgrade(engine)
    start = time.perf_counter()
    added = seed_workspace(engine, WORKSPACE, SeedCounts(contacts=spec["rows"], events=spec["rows"]), seed=7)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "added": added, "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF)}


CHILDREN = {"ferry": child_ferry, "cli": child_cli, "shell": child_shell, "pandas": child_pandas, "seed": child_seed}


def _ferry_env(spec: dict) -> None:
    os.environ["FERRY_DATABASE_URL"] = spec["url"]
    os.environ["FERRY_DATA_DIR"] = spec["data_dir"]
    os.chdir(ROOT)
