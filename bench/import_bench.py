"""Import benchmark: Ferry against a hand-written `psql \\copy` pipeline and pandas, on 1M and 10M rows.

What it does, in one run (``python bench/import_bench.py``; ``--help`` for the flags):

1. Generates contact files in a CRM-export shape (HubSpot-style vendor headers,
   ~1% invalid rows: bad e-mails, numbers, lifecycle stages, phones; ~2% rows
   that repeat an earlier row's e-mail, often in another case) under
   ``bench/out/`` (reused when present; ``bench/contact_files.py``).
2. Measures, each in a fresh subprocess on a fresh database, so that the
   wall time and peak RSS are that pipeline's alone:
   - Ferry's full import: one ``import_data`` flow run (auto-map, validate,
     transform, load with ``duplicates=update`` on e-mail, rejected-rows file,
     GX data-quality summary on a 20k-row sample) into PostgreSQL and into
     SQLite, against a Prefect server this script starts once (untimed), as
     a production run talks to the server of ``ferry up``;
   - the hand-written reference: ``psql`` running ``\\copy`` into an unlogged
     text staging table, then ONE ``INSERT ... SELECT DISTINCT ON (e-mail) ...
     ON CONFLICT DO UPDATE`` into the same typed ``contacts`` table, with the
     same checks as regular expressions (e-mail, phones, numbers, stages);
   - the minimal hand-written floor: the same ``\\copy`` into an unlogged text
     table, then ONE ``INSERT ... SELECT DISTINCT ON (lower(e-mail)) ... ON
     CONFLICT (e-mail) DO UPDATE`` with only an e-mail regular expression, into
     a table with one unique index and no foreign keys (what Ferry's import is
     held to: at most 1.3x its time);
   - Ferry's re-import (``ferry-pg-again``, ``ferry-sqlite-again``): the file
     is imported once untimed, then a copy with every job title changed is
     imported with ``duplicates=update, merge=overwrite`` - every valid row
     updates a record - on each store (SQLite is held to 2x PostgreSQL);
   - pandas ``read_csv`` (chunks of 200k rows, dtype=str) + ``to_sql`` (default
     executemany, psycopg 3) into PostgreSQL, which validates nothing.
3. Writes the ``## Import`` section of ``BENCHMARKS.md`` (other sections are
   left alone).

Peak RSS is the measured process's own high-water mark, ``VmHWM`` (Ferry's
flow process; the pandas process; psql's ``ru_maxrss``, its parent is small).
Not ``ru_maxrss`` of the Python children: Linux carries the forking parent's
peak across ``fork`` + ``exec``, so a child started after this script generated
a 10M-row file would report the generator's memory. Ferry's GX summary runs in a child
process: its peak is reported separately. The database server's memory and
CPU are outside every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchmarks_file import write_section  # noqa: E402
from bench.contact_files import OUT, changed_file, contact_file  # noqa: E402
from bench.prefect_server import prefect_server  # noqa: E402

PG_ADMIN = os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")
TARGET_PSQL_RATIO = 1.3  # against the minimal psql pipeline (issue 14)
TARGET_RSS_MB = 450
TARGET_10M_SECONDS = 180
PSQL = "psql \\copy + INSERT..SELECT"
PSQL_MIN = "minimal psql (one unique index)"
FERRY_PG = "ferry import (PostgreSQL)"


# --- databases ------------------------------------------------------------------------------


def pg_database(name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        # Each pipeline starts on clean buffers: the previous one's dirty pages and WAL would
        # otherwise be flushed (by a checkpoint) on this one's time.
        conn.exec_driver_sql("CHECKPOINT")
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def migrated_store(url: str) -> None:
    from ferry.store.engine import ensure_workspace, make_engine
    from ferry.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        ensure_workspace(conn, "bench")
    engine.dispose()


def psql_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- measured children -------------------------------------------------------------------------


@dataclass
class Result:
    rows: int
    pipeline: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    detail: dict

    def line(self) -> str:
        return f"{self.pipeline:<28} {self.rows:>11,} rows {self.seconds:8.1f} s  cpu {self.cpu_seconds:7.1f} s  rss {self.peak_rss_mb:7.0f} MB"


def _peak_rss_mb() -> float:
    """This process image's peak RSS (``VmHWM``): unlike ``ru_maxrss``, it starts afresh at ``exec``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _RssSampler:
    """Samples this process's RSS in a thread, so a report can say which stage reached the peak."""

    def __init__(self, every: float = 0.05) -> None:
        import threading

        import psutil

        self._process, self._every = psutil.Process(), every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((time.monotonic(), self._process.memory_info().rss / 2**20))

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self, start: float, laps: dict[str, float]) -> dict[str, int]:
        """Peak RSS (MB) within each stage, the stages' seconds laid end to end from ``start``."""
        out, begin = {}, start
        if self.samples:
            at, rss = max(self.samples, key=lambda sample: sample[1])
            out["peak_at_s"], out["peak"] = round(at - start, 1), round(rss)
            out["at_start"] = round(next((rss for t, rss in self.samples if t >= start), self.samples[-1][1]))
        for name, seconds in laps.items():
            end = begin + seconds
            inside = [rss for t, rss in self.samples if begin <= t <= end]
            out[name] = round(max(inside)) if inside else None
            begin = end
        return out


def _child_ferry(url: str, path: str, first: str | None = None) -> None:
    """Child: one import_data flow run (server start and store setup not timed).

    ``first``: a file imported untimed before, so the timed run updates records
    that all exist (a nightly re-sync, ``merge=overwrite``) instead of creating them.
    """
    os.environ["FERRY_DATABASE_URL"] = url
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from ferry.import_params import ImportRequest
    from ferry.settings import reload_settings

    reload_settings()
    migrated_store(url)
    from flows.import_ import import_data

    with _RssSampler() as sampler:  # against the parent's Prefect server (bench/prefect_server.py)
        request = ImportRequest(
            source=path, resource="contacts", workspace="bench", auto_map=True, duplicates="update", match=["email"], processing="inline"
        )
        if first:
            import_data(request.model_copy(update={"source": first}), return_state=True)
            request = request.model_copy(update={"merge": "overwrite"})
        cpu0, t0 = time.process_time(), time.monotonic()
        state = import_data(request, return_state=True)
        seconds, cpu = time.monotonic() - t0, time.process_time() - cpu0
        record = state.result(raise_on_failure=False)
        rss = _peak_rss_mb()
        gx_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "rss": rss,
                "detail": {
                    "status": record.status,
                    "error": record.error,
                    "created": record.created_rows,
                    "updated": record.updated_rows,
                    "skipped": record.skipped_rows,
                    "rejected": record.error_rows,
                    "total": record.total_rows,
                    "largest_child_rss_mb": round(gx_rss),
                    "data_quality": len(record.data_quality),
                    "warnings": record.warnings[:3],
                    "mapped": sum(1 for m in record.mapping if m.get("targetFieldSlug")),
                    "timings": record.timings,
                    "stage_peak_rss_mb": sampler.peaks(t0, record.timings),
                },
            }
        ),
        flush=True,
    )


def _child_pandas(url: str, path: str) -> None:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    cpu0, t0 = time.process_time(), time.monotonic()
    rows = 0
    for chunk in pd.read_csv(path, chunksize=200_000, dtype=str, keep_default_na=False, na_values=[""]):
        chunk.to_sql("contacts_pandas", engine, if_exists="append", index=False)
        rows += len(chunk)
    seconds, cpu = time.monotonic() - t0, time.process_time() - cpu0
    rss = _peak_rss_mb()
    print("RESULT " + json.dumps({"seconds": seconds, "cpu": cpu, "rss": rss, "detail": {"rows": rows}}), flush=True)


def run_child(args: list[str], timeout: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(found[-1][len("RESULT ") :])


PSQL_SCRIPT = r"""
\set ON_ERROR_STOP on
CREATE UNLOGGED TABLE stage (line bigserial, record_id text, first_name text, last_name text, email text, phone text, mobile text,
  company text, job_title text, street text, city text, state text, zip text, country text, stage text, lead_status text,
  revenue text, orders text, created text, owner text, ip text);
\copy stage (record_id, first_name, last_name, email, phone, mobile, company, job_title, street, city, state, zip, country, stage, lead_status, revenue, orders, created, owner, ip) FROM '{path}' WITH (FORMAT csv, HEADER true)
INSERT INTO contacts (workspace_id, external_id, first_name, last_name, email, phone_work, phone_mobile, job_title,
  address_street, address_city, address_state, address_zip, address_country, lifecycle_stage, lifetime_value, orders_count,
  owner, ip_address, created_at, updated_at)
SELECT DISTINCT ON (lower(trim(email))) 1, NULLIF(trim(record_id), ''), NULLIF(trim(first_name), ''), NULLIF(trim(last_name), ''),
  lower(trim(email)), NULLIF(regexp_replace(phone, '[\s().\-/]', '', 'g'), ''), NULLIF(regexp_replace(mobile, '[\s().\-/]', '', 'g'), ''),
  NULLIF(trim(job_title), ''), NULLIF(trim(street), ''), NULLIF(trim(city), ''), NULLIF(trim(state), ''), NULLIF(trim(zip), ''),
  NULLIF(trim(country), ''), lower(NULLIF(trim(stage), '')), replace(NULLIF(trim(revenue), ''), ',', '')::float8,
  NULLIF(trim(orders), '')::bigint, NULLIF(trim(owner), ''), NULLIF(trim(ip), ''), now(), now()
FROM stage
WHERE lower(trim(email)) ~ '^[a-z0-9!#$%&''*+/=?^_`{{|}}~.\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+$'
  AND (NULLIF(trim(revenue), '') IS NULL OR replace(trim(revenue), ',', '') ~ '^[+\-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$')
  AND (NULLIF(trim(orders), '') IS NULL OR trim(orders) ~ '^[+\-]?[0-9]{{1,18}}$')
  AND (NULLIF(trim(stage), '') IS NULL OR lower(trim(stage)) IN ('subscriber', 'lead', 'opportunity', 'customer', 'evangelist', 'other'))
  AND (NULLIF(trim(mobile), '') IS NULL OR regexp_replace(mobile, '[\s().\-/]', '', 'g') ~ '^\+?[0-9]{{5,15}}$')
  AND (NULLIF(trim(phone), '') IS NULL OR regexp_replace(phone, '[\s().\-/]', '', 'g') ~ '^\+?[0-9]{{5,15}}$')
ORDER BY lower(trim(email)), line DESC
ON CONFLICT (workspace_id, email) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
  phone_work = EXCLUDED.phone_work, phone_mobile = EXCLUDED.phone_mobile, job_title = EXCLUDED.job_title,
  address_street = EXCLUDED.address_street, address_city = EXCLUDED.address_city, address_state = EXCLUDED.address_state,
  address_zip = EXCLUDED.address_zip, address_country = EXCLUDED.address_country, lifecycle_stage = EXCLUDED.lifecycle_stage,
  lifetime_value = EXCLUDED.lifetime_value, orders_count = EXCLUDED.orders_count, updated_at = now();
"""


PSQL_MIN_SCRIPT = r"""
\set ON_ERROR_STOP on
CREATE TABLE min_contacts (email text NOT NULL UNIQUE, external_id text, first_name text, last_name text, phone_work text,
  phone_mobile text, company text, job_title text, address_street text, address_city text, address_state text, address_zip text,
  address_country text, lifecycle_stage text, lead_status text, lifetime_value text, orders_count text, created text, owner text,
  ip_address text);
CREATE UNLOGGED TABLE stage (line bigserial, record_id text, first_name text, last_name text, email text, phone text, mobile text,
  company text, job_title text, street text, city text, state text, zip text, country text, stage text, lead_status text,
  revenue text, orders text, created text, owner text, ip text);
\copy stage (record_id, first_name, last_name, email, phone, mobile, company, job_title, street, city, state, zip, country, stage, lead_status, revenue, orders, created, owner, ip) FROM '{path}' WITH (FORMAT csv, HEADER true)
INSERT INTO min_contacts
SELECT DISTINCT ON (lower(email)) lower(email), record_id, first_name, last_name, phone, mobile, company, job_title, street, city, state,
  zip, country, stage, lead_status, revenue, orders, created, owner, ip
FROM stage
WHERE lower(email) ~ '^[a-z0-9!#$%&''*+/=?^_`{{|}}~.\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+$'
ORDER BY lower(email), line DESC
ON CONFLICT (email) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone_work = EXCLUDED.phone_work,
  phone_mobile = EXCLUDED.phone_mobile, company = EXCLUDED.company, job_title = EXCLUDED.job_title,
  address_street = EXCLUDED.address_street, address_city = EXCLUDED.address_city, address_state = EXCLUDED.address_state,
  address_zip = EXCLUDED.address_zip, address_country = EXCLUDED.address_country, lifecycle_stage = EXCLUDED.lifecycle_stage,
  lead_status = EXCLUDED.lead_status, lifetime_value = EXCLUDED.lifetime_value, orders_count = EXCLUDED.orders_count,
  created = EXCLUDED.created, owner = EXCLUDED.owner, ip_address = EXCLUDED.ip_address;
"""


def _child_psql(url: str, script: str) -> None:
    """Child: run psql and report its own time and peak RSS (RUSAGE_CHILDREN of this process = psql's)."""
    t0 = time.monotonic()
    proc = subprocess.run(["psql", "-q", "-X", psql_dsn(url), "-f", script], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"psql failed: {proc.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("RESULT " + json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}), flush=True)


def measure_psql(path: Path, rows: int, url: str, minimal: bool = False) -> Result:
    script = OUT / f"psql_{'min_' if minimal else ''}{rows}.sql"
    script.write_text((PSQL_MIN_SCRIPT if minimal else PSQL_SCRIPT).format(path=str(path)))
    out = run_child(["--child-psql", url, str(script)], timeout=max(600, rows / 1_000_000 * 600))
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        loaded = conn.execute(sa.text(f"SELECT count(*) FROM {'min_contacts' if minimal else 'contacts'}")).scalar_one()
    engine.dispose()
    return Result(rows, PSQL_MIN if minimal else PSQL, out["seconds"], out["cpu"], out["rss"], {"loaded": loaded})


# --- the run ------------------------------------------------------------------------------------


_DONE: list[Result] = []  # every result of this run so far (saved after each one)


def warm(path: Path) -> Path:
    """Read ``path`` once, untimed, so every pipeline starts with the file in the page cache (not only the ones after the first)."""
    with path.open("rb") as f:
        while f.read(16 * 1024 * 1024):
            pass
    return path


def measure(rows: int, pipelines: list[str], pandas_max: int, log) -> list[Result]:
    """Run the pipelines in the order given (so the slow ones can go last)."""
    path, meta = contact_file(rows)
    results: list[Result] = []
    timeout = max(600, rows / 1_000_000 * 900)
    for pipeline in pipelines:
        warm(path)
        if pipeline == "ferry-pg":
            name = f"ferry_bench_import_{rows}"
            url = pg_database(name)
            out = run_child(["--child-ferry", url, str(path)], timeout)
            results.append(Result(rows, FERRY_PG, out["seconds"], out["cpu"], out["rss"], out["detail"]))
            drop_pg_database(name)
        elif pipeline in ("ferry-pg-again", "ferry-sqlite-again"):
            # the same file imported a second time: every row matches a record (compares the stores' update paths)
            pg = pipeline == "ferry-pg-again"
            name, db = f"ferry_bench_again_{rows}", OUT / f"ferry_bench_again_{rows}.db"
            url = pg_database(name) if pg else f"sqlite:///{db}"
            out = run_child(["--child-ferry", url, str(warm(changed_file(path))), str(path)], timeout * (2 if pg else 4))
            label = f"ferry re-import ({'PostgreSQL' if pg else 'SQLite'})"
            results.append(Result(rows, label, out["seconds"], out["cpu"], out["rss"], out["detail"]))
            if pg:
                drop_pg_database(name)
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
        elif pipeline == "ferry-sqlite":
            db = OUT / f"ferry_bench_import_{rows}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            out = run_child(["--child-ferry", f"sqlite:///{db}", str(path)], timeout * 2)
            results.append(Result(rows, "ferry import (SQLite)", out["seconds"], out["cpu"], out["rss"], out["detail"]))
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
        elif pipeline == "psql":
            name = f"ferry_bench_psql_{rows}"
            url = pg_database(name)
            migrated_store(url)
            results.append(measure_psql(path, rows, url))
            drop_pg_database(name)
        elif pipeline == "psql-min":
            name = f"ferry_bench_psqlmin_{rows}"
            url = pg_database(name)
            results.append(measure_psql(path, rows, url, minimal=True))
            drop_pg_database(name)
        elif pipeline == "pandas" and rows <= pandas_max:
            name = f"ferry_bench_pandas_{rows}"
            url = pg_database(name)
            out = run_child(["--child-pandas", url, str(path)], timeout * 3)
            results.append(Result(rows, "pandas read_csv + to_sql", out["seconds"], out["cpu"], out["rss"], out["detail"]))
            drop_pg_database(name)
        else:
            continue
        results[-1].detail["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
        log(results[-1].line() + f"  {results[-1].detail}")
        _DONE.append(results[-1])
        (OUT / "import_bench_partial.json").write_text(json.dumps([asdict(r) for r in _DONE], indent=2, default=str))
    for r in results:
        r.detail["file"] = meta
    return results


def markdown(results: list[Result], args) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    lines = [
        "## Import",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/import_bench.py` on {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, PostgreSQL on 127.0.0.1. Files: HubSpot-style contact exports "
        "(20 vendor columns, ~1% invalid rows, ~2% rows repeating an earlier e-mail), read once untimed before each pipeline "
        "so that every one starts with the file in the page cache. Ferry = one `import_data` flow run "
        "(auto-map, validate, transform, one-transaction load with `duplicates=update` on e-mail, rejected-rows file, "
        "GX summary on a 20k-row sample in a child process), in a process of its own that talks to a Prefect server the "
        "bench started once (untimed), as a production run talks to `ferry up`'s. Peak RSS is the measured process's "
        "own high-water mark (`VmHWM`); the database server is not counted.",
        "",
        "| rows | pipeline | wall s | CPU s (client) | peak RSS MB | rows created / updated / skipped / rejected | load avg after |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        d = r.detail
        outcome = (
            f"{d['created']:,} / {d['updated']:,} / {d['skipped']:,} / {d['rejected']:,}"
            if "created" in d
            else f"{d.get('loaded', d.get('rows', 0)):,} rows in the table"
        )
        lines.append(
            f"| {r.rows:,} | {r.pipeline} | {r.seconds:.1f} | {r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} | {outcome} | {d.get('load_avg_1m_after', '')} |"
        )
    lines += ["", "Targets:", ""]
    by = {(r.rows, r.pipeline): r for r in results}
    for rows in sorted({r.rows for r in results}):
        ferry, psql, minimal, pandas = (by.get((rows, name)) for name in (FERRY_PG, PSQL, PSQL_MIN, "pandas read_csv + to_sql"))
        if ferry and minimal:
            ratio = ferry.seconds / minimal.seconds
            lines.append(
                f"- {rows:,} rows: Ferry / minimal psql = {ratio:.2f}x (target <= {TARGET_PSQL_RATIO}x): "
                f"{'met' if ratio <= TARGET_PSQL_RATIO else 'NOT met'}."
            )
        if ferry and psql:
            lines.append(f"- {rows:,} rows: Ferry / psql into Ferry's own indexed table = {ferry.seconds / psql.seconds:.2f}x.")
        if ferry and rows >= 10_000_000:
            lines.append(
                f"- {rows:,} rows: Ferry {ferry.seconds:.1f} s end to end (target < {TARGET_10M_SECONDS} s): "
                f"{'met' if ferry.seconds < TARGET_10M_SECONDS else 'NOT met'}."
            )
        if ferry and pandas:
            lines.append(
                f"- {rows:,} rows: Ferry {ferry.seconds:.1f} s vs pandas to_sql {pandas.seconds:.1f} s: "
                f"{'faster (met)' if ferry.seconds < pandas.seconds else 'NOT faster'}."
            )
        if ferry:
            gx = ferry.detail.get("largest_child_rss_mb")
            lines.append(
                f"- {rows:,} rows: Ferry peak RSS {ferry.peak_rss_mb:.0f} MB (target < {TARGET_RSS_MB} MB): "
                f"{'met' if ferry.peak_rss_mb < TARGET_RSS_MB else 'NOT met'}; GX child {gx} MB."
            )
    for rows in sorted({r.rows for r in results}):
        pg_again, lite_again = by.get((rows, "ferry re-import (PostgreSQL)")), by.get((rows, "ferry re-import (SQLite)"))
        if pg_again and lite_again:
            ratio = lite_again.seconds / pg_again.seconds
            lines.append(
                f"- {rows:,} rows re-imported (every row matches): SQLite / PostgreSQL = {ratio:.2f}x (target <= 2x): "
                f"{'met' if ratio <= 2 else 'NOT met'}."
            )
    ferry_rss = [r.peak_rss_mb for r in results if r.pipeline == FERRY_PG]
    if len(ferry_rss) >= 2:
        lines.append(
            f"- Ferry RSS from the smallest to the largest file: {ferry_rss[0]:.0f} -> {ferry_rss[-1]:.0f} MB "
            f"({'flat' if ferry_rss[-1] <= ferry_rss[0] * 1.25 else 'NOT flat'})."
        )
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-ferry":
        return _child_ferry(sys.argv[2], sys.argv[3], first=sys.argv[4] if len(sys.argv) > 4 else None)
    if len(sys.argv) > 1 and sys.argv[1] == "--child-psql":
        return _child_psql(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 1 and sys.argv[1] == "--child-pandas":
        return _child_pandas(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="Comma-separated file sizes.")
    parser.add_argument(
        "--pipelines", default="ferry-pg,psql-min,psql,pandas,ferry-sqlite,ferry-pg-again,ferry-sqlite-again", help="Run in this order."
    )
    parser.add_argument("--pandas-max-rows", type=int, default=10_000_000)
    parser.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    parser.add_argument("--note", default="", help="A line appended to the section (e.g. what else ran at the time).")
    parser.add_argument("--from-json", default="", help="Write the section from a results JSON (bench/out/import_bench_partial.json).")
    args = parser.parse_args()
    log_path = OUT / "import_bench.log"
    OUT.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    results: list[Result] = []
    if args.from_json:  # render the section from saved results (e.g. a run stopped before its end)
        results = [Result(**r) for r in json.loads(Path(args.from_json).read_text())]
    with contextlib.ExitStack() as running:
        if not args.from_json:
            running.enter_context(prefect_server(OUT, log))
        for rows in [] if args.from_json else [int(r) for r in args.rows.split(",")]:
            results += measure(rows, args.pipelines.split(","), args.pandas_max_rows, log)
    (OUT / "import_bench.json").write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    text = markdown(results, args)
    print(text)
    if not args.no_write:
        write_section("## Import", text)


if __name__ == "__main__":
    main()
