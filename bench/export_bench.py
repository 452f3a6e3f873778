"""Export benchmark: Ferry against `psql \\copy`, `sqlite3 -csv` and pandas, on 1M and 10M rows.

What it does, in one run (``make bench``; ``--help`` for the flags):

1. Seeds a dedicated store per backend and size: PostgreSQL database
   ``ferry_bench_<rows>`` (created here, dropped at the end unless ``--keep``)
   and SQLite file ``bench/out/ferry_bench_<rows>.db``, each with one workspace
   ``bench`` holding ``<rows>`` contacts and ``<rows>`` events (plus the usual
   accounts, lists, survey responses; see ``ferry.store.seed``). A kept store
   with the right counts is reused.
2. Measures, each in a fresh subprocess so peak RSS is that export's alone:
   - Ferry through the stage functions users run (extract -> validate ->
     transform -> serialize) to CSV, CSV.gz and Parquet;
   - one full ``export_data`` flow run (CSV.gz) on a local Prefect server, to
     show the orchestration overhead;
   - ``psql \\copy (<the same SELECT>) to stdout``, to a file and piped
     through ``gzip -6``; on SQLite, ``sqlite3 -csv`` the same way;
   - pandas ``read_sql`` + ``to_csv`` (only up to ``--pandas-max-rows``:
     it holds everything in memory).
3. Writes ``BENCHMARKS.md`` (machine, date, table, targets met or not).

Peak RSS is the child's ``ru_maxrss`` (``RUSAGE_SELF`` for Python children,
``RUSAGE_CHILDREN`` for shell pipelines, i.e. the largest process of it). The
database server's own memory and CPU are outside every figure, for Ferry and
the references alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_ADMIN = os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WORKSPACE = "bench"
# events may span at most 31 days per export; the seeded events cover the 90 days before 2026-11-01
EVENTS_WINDOW = {"from": "2026-10-01", "to": "2026-10-31"}
TARGET_GZ_RATIO = 1.5
TARGET_RSS_MB = 400
TARGET_PANDAS_SPEEDUP = 3.0


# --- results ------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    size: int  # seeded contacts (= events) of the store
    resource: str
    method: str  # e.g. "ferry csv.gz", "psql csv", "pandas csv"
    rows: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    file_mb: float
    stages: dict[str, float] = field(default_factory=dict)
    note: str = ""
    load: float = 0.0  # 1-minute load average when the measurement started

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- children: each measured export runs in its own process ---------------------------


def import_stages() -> None:
    """Import what the stages load on first use (pyarrow.compute on the first cast, the drivers): untimed, like other imports."""
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import adbc_driver_sqlite.dbapi  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow.compute  # noqa: F401


def run_stages(request, spool_dir: Path):
    """The export's stage functions in order (what the flow's tasks run), each timed; returns (Serialized, seconds by stage)."""
    from tasks.export.extract import extract
    from tasks.export.serialize import serialize
    from tasks.export.transform import transform
    from tasks.export.validate import validate

    marks = [time.perf_counter()]
    extracted = extract.fn(request, spool_dir)
    marks.append(time.perf_counter())
    validate.fn(extracted.spool, extracted.columns, request.resource_def, request.on_invalid)
    marks.append(time.perf_counter())
    shaped = transform.fn(extracted.spool, request, extracted.columns)
    marks.append(time.perf_counter())
    written = serialize.fn(shaped, request)
    marks.append(time.perf_counter())
    return written, {name: marks[i + 1] - marks[i] for i, name in enumerate(("extract", "validate", "transform", "serialize"))}


def child_ferry(spec: dict) -> dict:
    """Ferry's export through the stage functions (what the flow's tasks run), no Prefect server."""
    _ferry_env(spec)
    from ferry.params import parse_request

    import_stages()
    request = parse_request(spec["request"])
    spool_dir = Path(spec["data_dir"]) / "spool" / spec["run"]
    base_rss = _maxrss_mb(resource.RUSAGE_SELF)
    cpu0 = _cpu(resource.RUSAGE_SELF)
    written, stages = run_stages(request, spool_dir)
    out = {
        "rows": written.rows,
        "seconds": sum(stages.values()),
        "cpu_seconds": _cpu(resource.RUSAGE_SELF) - cpu0,
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "base_rss_mb": base_rss,
        "file_mb": written.bytes / 1e6,
        "stages": stages,
    }
    shutil.rmtree(spool_dir, ignore_errors=True)
    return out


def child_flow(spec: dict) -> dict:
    """One full ``export_data`` flow run against a local Prefect server (its start is not timed)."""
    _ferry_env(spec)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from prefect.testing.utilities import prefect_test_harness

    from ferry.params import parse_request
    from flows.export import export_data

    request = parse_request(spec["request"])
    with prefect_test_harness(server_startup_timeout=90):
        cpu0 = _cpu(resource.RUSAGE_SELF)
        start = time.perf_counter()
        record = export_data(request)
        seconds = time.perf_counter() - start
        cpu = _cpu(resource.RUSAGE_SELF) - cpu0
    if getattr(record, "status", None) != "success":
        raise SystemExit(f"flow run failed: {record}")
    Path(record.destination_path).unlink(missing_ok=True)
    return {
        "rows": record.record_count,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "file_mb": record.file_size / 1e6,
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


CHILDREN = {"ferry": child_ferry, "flow": child_flow, "shell": child_shell, "pandas": child_pandas, "seed": child_seed}


def _ferry_env(spec: dict) -> None:
    os.environ["FERRY_DATABASE_URL"] = spec["url"]
    os.environ["FERRY_DATA_DIR"] = spec["data_dir"]
    os.chdir(ROOT)


def run_child(kind: str, spec: dict, timeout: float | None = None) -> dict:
    """Run one measurement in a fresh interpreter and return what it printed as JSON."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- stores -------------------------------------------------------------------------


@dataclass
class Store:
    backend: str
    size: int
    url: str
    sqlite_path: Path | None = None
    seed_seconds: float | None = None
    seeded_rows: dict[str, int] = field(default_factory=dict)
    reused: bool = False

    def load_seed_log(self, workdir: Path) -> None:
        """A reused store reports how long its seeding took when it was made."""
        log = _seed_log(workdir, self.backend, self.size)
        if log.exists():
            data = json.loads(log.read_text())
            self.seed_seconds, self.seeded_rows = data["seconds"], data["added"]
        self.reused = True


def _seed_log(workdir: Path, backend: str, size: int) -> Path:
    return workdir / f"seed_{backend}_{size}.json"


def _pg_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq URI for psql."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _seeded_counts(url: str) -> dict[str, int] | None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            counts = {}
            for table in ("contacts", "events"):
                counts[table] = conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} t JOIN workspaces w ON w.id = t.workspace_id WHERE w.slug = :ws"),
                    {"ws": WORKSPACE},
                ).scalar_one()
            return counts
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def prepare_store(backend: str, size: int, args: argparse.Namespace, log) -> Store:
    import sqlalchemy as sa

    name = f"ferry_bench_{size}"
    if backend == "postgresql":
        url = _pg_url(args.pg_admin_url, name)
        admin = sa.create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        store = Store(backend, size, url)
        if exists and _seeded_counts(url) == {"contacts": size, "events": size}:
            log(f"reusing PostgreSQL database {name}")
            admin.dispose()
            store.load_seed_log(args.workdir)
            return store
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    else:
        path = args.workdir / f"{name}.db"
        url = f"sqlite:///{path}"
        store = Store(backend, size, url, sqlite_path=path)
        if path.exists() and _seeded_counts(url) == {"contacts": size, "events": size}:
            log(f"reusing SQLite file {path}")
            store.load_seed_log(args.workdir)
            return store
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"seeding {backend} with {size:,} contacts and {size:,} events ...")
    seeded = run_child("seed", {"url": url, "rows": size})
    store.seed_seconds = seeded["seconds"]
    store.seeded_rows = seeded["added"]
    _seed_log(args.workdir, backend, size).write_text(json.dumps(seeded))
    total = sum(seeded["added"].values())
    log(f"  seeded {total:,} rows in {seeded['seconds']:.1f} s ({total / seeded['seconds']:,.0f} rows/s)")
    if backend == "postgresql":
        _psql(url, "VACUUM ANALYZE")  # what a real store's autovacuum would have done; fair to every reader
    return store


def drop_store(store: Store, args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    if store.backend == "postgresql":
        admin = sa.create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "ferry_bench_{store.size}" WITH (FORCE)')
        admin.dispose()
    elif store.sqlite_path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.sqlite_path}{suffix}").unlink(missing_ok=True)


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq(url), "-c", sql], check=True, capture_output=True)


# --- scenarios ------------------------------------------------------------------------


def export_request(resource_slug: str, fmt: str, gzip: bool) -> dict[str, Any]:
    request: dict[str, Any] = {"workspace": WORKSPACE, "resource": resource_slug, "format": fmt, "gzip": gzip}
    if resource_slug == "events":
        request.update(EVENTS_WINDOW)
    return request


def reference_sql(store: Store, resource_slug: str) -> tuple[str, int]:
    """Ferry's own SELECT for the export, with literal values, and its row count."""
    os.environ["FERRY_DATABASE_URL"] = store.url
    from ferry.params import parse_request
    from ferry.store.engine import get_engine
    from tasks.export.extract import build_query, count_rows

    engine = get_engine(store.url)
    request = parse_request(export_request(resource_slug, "csv", False))
    with engine.connect() as conn:
        query, _ = build_query(request, conn)
        rows = count_rows(request, conn)
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    return " ".join(sql.split()), rows


def measure_store(store: Store, args: argparse.Namespace, log) -> list[Result]:
    results: list[Result] = []
    out = args.workdir
    data_dir = out / "data"

    def record(resource_slug: str, method: str, kind: str, spec: dict, note: str = "") -> Result | None:
        best: dict | None = None
        load = os.getloadavg()[0]
        for _ in range(args.repeat):
            try:
                got = run_child(kind, spec)
            except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
                log(f"  {method:<18} FAILED: {exc}")
                return None
            if best is None or got["seconds"] < best["seconds"]:
                best = got
        assert best is not None
        result = Result(
            store.backend,
            store.size,
            resource_slug,
            method,
            best["rows"],
            best["seconds"],
            best["cpu_seconds"],
            best["peak_rss_mb"],
            best["file_mb"],
            best.get("stages", {}),
            note,
            load,
        )
        stages = " ".join(f"{k}={v:.1f}" for k, v in result.stages.items())
        log(
            f"  {method:<18} {result.rows:>10,} rows {result.seconds:7.1f} s {result.rows_per_s:>10,.0f} rows/s "
            f"cpu {result.cpu_seconds:6.1f} s rss {result.peak_rss_mb:6.0f} MB file {result.file_mb:7.1f} MB {stages}"
        )
        results.append(result)
        return result

    narrow = store.size > 1_000_000 and args.large_scope == "pg-gz"
    resources = ["contacts"] if args.quick or narrow else args.resources
    for resource_slug in resources:
        sql, rows = reference_sql(store, resource_slug)
        log(f"{store.backend} {store.size:,}: {resource_slug} ({rows:,} rows)")
        warm = out / "warm.csv"
        if store.backend == "postgresql":
            copy = f"\\copy ({sql}) to stdout with (format csv, header)"
            psql = f"psql -X -q -d {shlex.quote(_libpq(store.url))} -c {shlex.quote(copy)}"
            subprocess.run(f"{psql} > /dev/null", shell=True, check=True, executable="/bin/bash")  # warm the caches
            reference = [("psql csv", f"{psql} > {warm}", warm), ("psql csv.gz", f"{psql} | gzip -6 > {warm}.gz", Path(f"{warm}.gz"))]
        else:
            sqlite = f"sqlite3 -csv -header {shlex.quote(str(store.sqlite_path))} {shlex.quote(sql)}"
            subprocess.run(f"{sqlite} > /dev/null", shell=True, check=True, executable="/bin/bash")
            reference = [
                ("sqlite3 csv", f"{sqlite} > {warm}", warm),
                ("sqlite3 csv.gz", f"{sqlite} | gzip -6 > {warm}.gz", Path(f"{warm}.gz")),
            ]
        for method, command, target in reference:
            record(resource_slug, method, "shell", {"command": command, "target": str(target), "rows": rows})
        for fmt, gz in (("csv", True),) if narrow else (("csv", False), ("csv", True), ("parquet", False)):
            method = f"ferry {fmt}{'.gz' if gz else ''}"
            spec = {
                "url": store.url,
                "data_dir": str(data_dir),
                "run": f"{store.backend}-{store.size}-{fmt}{gz}",
                "request": export_request(resource_slug, fmt, gz),
            }
            record(resource_slug, method, "ferry", spec)
        if not args.no_flow and resource_slug == "contacts" and store.size == min(args.rows):
            spec = {"url": store.url, "data_dir": str(data_dir), "request": export_request(resource_slug, "csv", True)}
            record(resource_slug, "ferry flow csv.gz", "flow", spec, note="full export_data flow run; server start not timed")
        if store.size <= args.pandas_max_rows and not args.no_pandas:
            spec = {"url": store.url, "sql": sql, "target": str(out / "pandas.csv")}
            record(resource_slug, "pandas csv", "pandas", spec, note="read_sql + to_csv")
    return results


# --- report ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import pyarrow

    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    sqlite = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split(" ")[0]
    return {
        "host": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem:.0f} GiB",
        "software": f"Python {platform.python_version()}, pyarrow {pyarrow.__version__}, {pg}, sqlite3 {sqlite}",
    }


def _find(results: list[Result], backend: str, size: int, resource_slug: str, method: str) -> Result | None:
    return next((r for r in results if (r.backend, r.size, r.resource, r.method) == (backend, size, resource_slug, method)), None)


METHOD_ORDER = (
    "psql csv",
    "psql csv.gz",
    "sqlite3 csv",
    "sqlite3 csv.gz",
    "ferry csv",
    "ferry csv.gz",
    "ferry parquet",
    "ferry flow csv.gz",
    "pandas csv",
)


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


REFERENCE_OF = {"ferry csv": "csv", "ferry csv.gz": "csv.gz", "ferry parquet": "csv", "ferry flow csv.gz": "csv.gz"}


def ratio_to_reference(results: list[Result], r: Result) -> str:
    tool = "psql" if r.backend == "postgresql" else "sqlite3"
    if r.method.startswith(tool):
        return "1.00"
    kind = REFERENCE_OF.get(r.method, "csv")
    ref = _find(results, r.backend, r.size, r.resource, f"{tool} {kind}")
    return f"{r.seconds / ref.seconds:.2f}" if ref and ref.seconds else "–"


def targets(results: list[Result]) -> list[str]:
    lines = []
    for size in sorted({r.size for r in results}):
        gz = _find(results, "postgresql", size, "contacts", "ferry csv.gz")
        ref = _find(results, "postgresql", size, "contacts", "psql csv.gz")
        if gz and ref:
            ratio = gz.seconds / ref.seconds
            lines.append(
                f"- CSV.gz within {TARGET_GZ_RATIO}x of `psql \\copy | gzip` (PostgreSQL, {size:,} contacts): "
                f"**{ratio:.2f}x** wall — {'met' if ratio <= TARGET_GZ_RATIO else 'NOT met'} "
                f"(client CPU {gz.cpu_seconds:.0f} s vs {ref.cpu_seconds:.0f} s for psql + gzip)."
            )
    ferry = [r for r in results if r.method.startswith("ferry") and "flow" not in r.method]
    if ferry:
        worst = max(ferry, key=lambda r: r.peak_rss_mb)
        lines.append(
            f"- Peak RSS under {TARGET_RSS_MB} MB: worst Ferry export {worst.peak_rss_mb:.0f} MB "
            f"({worst.backend} {worst.size:,} {worst.resource} {worst.method}) — {'met' if worst.peak_rss_mb < TARGET_RSS_MB else 'NOT met'}."
        )
        sizes = sorted({r.size for r in ferry})
        if len(sizes) > 1:
            flat = []
            for r in ferry:
                if r.size != sizes[0]:
                    continue
                big = _find(results, r.backend, sizes[-1], r.resource, r.method)
                if big:
                    flat.append((big.peak_rss_mb - r.peak_rss_mb, r, big))
            if flat:
                growth, small, big = max(flat, key=lambda x: x[0])
                lines.append(
                    f"- Flat from {sizes[0]:,} to {sizes[-1]:,} rows: largest growth {growth:+.0f} MB "
                    f"({small.backend} {small.resource} {small.method}: {small.peak_rss_mb:.0f} -> {big.peak_rss_mb:.0f} MB) — "
                    f"{'met' if growth < 50 else 'NOT met'} (threshold +50 MB)."
                )
    for r in results:
        if r.method != "pandas csv":
            continue
        ferry_csv = _find(results, r.backend, r.size, r.resource, "ferry csv")
        if ferry_csv:
            speedup = r.seconds / ferry_csv.seconds
            cpu = r.cpu_seconds / ferry_csv.cpu_seconds if ferry_csv.cpu_seconds else 0.0
            lines.append(
                f"- At least {TARGET_PANDAS_SPEEDUP:.0f}x faster than pandas ({r.backend} {r.size:,} {r.resource}, CSV): "
                f"**{speedup:.1f}x** wall — {'met' if speedup >= TARGET_PANDAS_SPEEDUP else 'NOT met'} "
                f"(CPU pandas / Ferry: {cpu:.1f}x; pandas peaks at {r.peak_rss_mb:,.0f} MB)."
            )
    return lines


def write_report(
    path: Path, results: list[Result], stores: list[Store], args: argparse.Namespace, started: datetime, loads: tuple[str, str]
) -> None:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/export_bench.py` (`make bench`); do not edit by hand, re-run instead.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC, took {(datetime.now(UTC) - started).total_seconds() / 60:.0f} min",
        f"- Machine: {info['host']}; {info['cpu']}; {info['memory']} RAM",
        f"- Software: {info['software']}",
        f"- Command: `{' '.join(['python', 'bench/export_bench.py', *sys.argv[1:]])}`"
        + (" (merged with the earlier results in the work folder: rows keep their own load figure)" if args.merge else ""),
        f"- Load average (1 min) at start / end: {loads[0]} / {loads[1]}; each row also shows the load when it started. "
        "On a shared machine wall times swing several-fold with load (the database server competes for the same cores); "
        "CPU seconds (client side only, the database server is not counted) are much steadier.",
        "",
        "## Targets",
        "",
        *(targets(results) or ["- (no comparable measurements in this run)"]),
        "",
        "## Results",
        "",
        "Each row is the best of "
        f"{args.repeat} run(s) in a fresh process. `x ref` is wall time divided by the reference tool's "
        "(`psql \\copy` on PostgreSQL, `sqlite3 -csv` on SQLite) for the same rows: CSV.gz against the "
        "reference piped through `gzip -6`, everything else against its plain CSV. Ferry's time covers "
        "extract -> validate -> transform -> serialize (imports and interpreter start excluded); "
        "stage seconds are listed last.",
        "",
        "| backend | store rows | resource | method | rows | seconds | rows/s | x ref | CPU s | peak RSS MB | file MB | load | stages (s) |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r.stages.items()) or r.note
        lines.append(
            f"| {r.backend} | {r.size:,} | {r.resource} | {r.method} | {r.rows:,} | {r.seconds:.1f} | "
            f"{r.rows_per_s:,.0f} | {ratio_to_reference(results, r)} | {r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} | "
            f"{r.file_mb:.0f} | {r.load:.1f} | {stages} |"
        )
    lines += ["", "## Seeding", "", "| backend | store rows | rows written | seconds | rows/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in stores:
        if s.seed_seconds is None:
            lines.append(f"| {s.backend} | {s.size:,} | (reused, no seed log) | | |")
        else:
            total = sum(s.seeded_rows.values())
            reused = " (kept from an earlier run)" if s.reused else ""
            lines.append(f"| {s.backend} | {s.size:,} | {total:,} | {s.seed_seconds:.0f}{reused} | {total / s.seed_seconds:,.0f} |")
    lines += [
        "",
        "Notes:",
        "",
        f"- Events exports cover one 31-day window ({EVENTS_WINDOW['from']} .. {EVENTS_WINDOW['to']}), the longest the "
        "catalog allows, so they hold about a third of the seeded events.",
        "- Ferry's CSV is not byte-identical to the references: it writes ISO 8601 UTC timestamps and neutralises "
        "spreadsheet formulas; the row and column sets are the same.",
        "- Peak RSS of a reference is its largest process (psql, sqlite3 or gzip); of Ferry, the Python process "
        "including its imports (~100-150 MB before the first row).",
        "",
    ]
    path.write_text("\n".join(lines + _other_sections(path)))


def _other_sections(path: Path) -> list[str]:
    """Sections other benchmarks own (bench/import_bench.py, bench/destination_bench.py): kept as they are."""
    if not path.exists():
        return []
    pattern = re.compile(r"^## (?:Import|Export to object storage)\n.*?(?=^## |\Z)", re.S | re.M)
    return [m.group(0).rstrip() + "\n" for m in pattern.finditer(path.read_text())]


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="Store sizes: contacts (= events) per store, comma-separated.")
    parser.add_argument("--backends", default="postgresql,sqlite", help="Comma-separated: postgresql, sqlite.")
    parser.add_argument("--resources", default="contacts,events", help="Comma-separated resources to export.")
    parser.add_argument("--quick", action="store_true", help="1M rows only (unless --rows is given), contacts only, no flow run.")
    parser.add_argument(
        "--large-scope",
        choices=("full", "pg-gz"),
        default="full",
        help="What runs on stores above 1M rows: everything, or (pg-gz) only PostgreSQL contacts "
        "as CSV/CSV.gz with psql and Ferry CSV.gz, the issue's headline comparison.",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Runs per measurement; the fastest counts.")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="Start from the previous run's results (WORKDIR/results.json); measurements of this run replace the ones they repeat.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the seeded stores for the next run (reused when their counts match).")
    parser.add_argument("--no-flow", action="store_true", help="Skip the full flow run.")
    parser.add_argument("--no-pandas", action="store_true", help="Skip pandas.")
    parser.add_argument(
        "--pandas-max-rows", type=int, default=1_000_000, help="Largest store pandas is run on (it holds all rows in memory)."
    )
    parser.add_argument(
        "--pg-admin-url", default=DEFAULT_PG_ADMIN, help="SQLAlchemy URL of a PostgreSQL database to create the bench databases from."
    )
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / "bench" / "out" / "export", help="Scratch folder (SQLite stores, spool and output files)."
    )
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="Report to write.")
    args = parser.parse_args(argv)
    explicit_rows = any(a == "--rows" or a.startswith("--rows=") for a in argv)
    args.rows = [int(x.replace("_", "")) for x in args.rows.split(",") if x.strip()]
    if args.quick and not explicit_rows:
        args.rows = [1_000_000]
    if args.quick:
        args.no_flow = True
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.resources = [r.strip() for r in args.resources.split(",") if r.strip()]
    unknown = [b for b in args.backends if b not in ("postgresql", "sqlite")]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; use postgresql and/or sqlite")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(CHILDREN[argv[1]](json.loads(argv[2]))))
        return 0
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_start = f"{os.getloadavg()[0]:.1f}"

    def log(message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)

    free = shutil.disk_usage(args.workdir).free / 2**30
    # ~0.85 GB of store per 1M contacts (with its events, memberships...), ~1.2 GB of spool and output per 1M exported
    needed = sum(0.85 * size / 1e6 for size in args.rows) * len(args.backends) + 1.2 * max(args.rows) / 1e6
    log(f"{free:.0f} GiB free in {args.workdir}; this run needs roughly {needed:.0f} GiB")
    if free < needed:
        log("not enough disk space; use smaller --rows")
        return 2
    results: list[Result] = []
    stores: list[Store] = []
    previous = args.workdir / "results.json"
    if args.merge and previous.exists():
        kept = json.loads(previous.read_text())
        results = [Result(**r) for r in (kept["results"] if isinstance(kept, dict) else kept)]
        log(f"merging with {len(results)} earlier results")

    def add(new: list[Result]) -> None:
        keys = {(r.backend, r.size, r.resource, r.method) for r in new}
        results[:] = [r for r in results if (r.backend, r.size, r.resource, r.method) not in keys] + new
        results.sort(key=lambda r: (r.backend != "postgresql", r.size, r.resource, _method_rank(r.method)))

    def report_stores() -> list[Store]:
        """This run's stores, plus (when merging) the earlier ones, with their seeding logs."""
        out = list(stores)
        for backend, size in sorted({(r.backend, r.size) for r in results}, key=lambda k: (k[0] != "postgresql", k[1])):
            if not any((st.backend, st.size) == (backend, size) for st in out):
                earlier = Store(backend, size, "")
                earlier.load_seed_log(args.workdir)
                out.append(earlier)
        return sorted(out, key=lambda st: (st.backend != "postgresql", st.size))

    for backend in args.backends:
        for size in args.rows:
            if size > 1_000_000 and args.large_scope == "pg-gz" and backend != "postgresql":
                continue
            store = prepare_store(backend, size, args, log)
            stores[:] = [s for s in stores if (s.backend, s.size) != (backend, size)] + [store]
            try:
                add(measure_store(store, args, log))
            finally:
                if not args.keep:
                    drop_store(store, args)
            write_report(args.output, results, report_stores(), args, started, (load_start, f"{os.getloadavg()[0]:.1f}"))
    previous.write_text(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    log(f"wrote {args.output}")
    for line in targets(results):
        log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
