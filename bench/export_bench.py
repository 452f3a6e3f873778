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
   - the whole ``ferry export contacts --gzip`` process as a user runs it
     (interpreter start, imports, the ``export_data`` flow run) against a
     Prefect server started once for the benchmark (untimed), on every store
     size: the issue's whole-process wall time and peak RSS;
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
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.export_children import CHILDREN, WORKSPACE  # noqa: E402
from bench.export_report import CLI_METHOD, EVENTS_WINDOW, Result, method_rank, targets, write_report  # noqa: E402
from bench.prefect_server import prefect_server  # noqa: E402

DEFAULT_PG_ADMIN = os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: the whole-process measurement: what a user types (the Prefect server it talks to is started once, untimed)
CLI_EXPORT = ["export", "contacts", "--workspace", WORKSPACE, "--gzip"]


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
            args.repeat,
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
        if not args.no_flow and resource_slug == "contacts":
            spec = {**args.prefect, "url": store.url, "data_dir": str(data_dir), "argv": CLI_EXPORT}
            record(resource_slug, CLI_METHOD, "cli", spec, note="the whole `ferry export` process; Prefect server start not timed")
        if store.size <= args.pandas_max_rows and not args.no_pandas:
            spec = {"url": store.url, "sql": sql, "target": str(out / "pandas.csv")}
            record(resource_slug, "pandas csv", "pandas", spec, note="read_sql + to_csv")
    return results


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="Store sizes: contacts (= events) per store, comma-separated.")
    parser.add_argument("--backends", default="postgresql,sqlite", help="Comma-separated: postgresql, sqlite.")
    parser.add_argument("--resources", default="contacts,events", help="Comma-separated resources to export.")
    parser.add_argument(
        "--quick", action="store_true", help="1M rows only (unless --rows is given), contacts only, no `ferry export` process."
    )
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
    parser.add_argument("--no-flow", action="store_true", help="Skip the whole `ferry export` process (and its Prefect server).")
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
        results.sort(key=lambda r: (r.backend != "postgresql", r.size, r.resource, method_rank(r.method)))

    def report_stores() -> list[Store]:
        """This run's stores, plus (when merging) the earlier ones, with their seeding logs."""
        out = list(stores)
        for backend, size in sorted({(r.backend, r.size) for r in results}, key=lambda k: (k[0] != "postgresql", k[1])):
            if not any((st.backend, st.size) == (backend, size) for st in out):
                earlier = Store(backend, size, "")
                earlier.load_seed_log(args.workdir)
                out.append(earlier)
        return sorted(out, key=lambda st: (st.backend != "postgresql", st.size))

    with contextlib.ExitStack() as running:
        args.prefect = {} if args.no_flow else running.enter_context(prefect_server(args.workdir, log))
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
