"""Export to S3 against export to a local folder: 1M contacts as CSV.gz, time and peak memory.

The target (issue 4): the same export delivered to an S3 server takes at most
1.3x the time of delivering it to a local folder, and memory stays flat (the
upload streams one part at a time, so peak RSS does not grow with the file).

What it does (``.venv/bin/python bench/destination_bench.py``; ``--help``):

1. Seeds (or reuses, with ``--keep``) a PostgreSQL store ``ferry_bench_dest_<rows>``
   with one workspace of ``<rows>`` contacts, via bench/export_children.py's seeder.
2. Starts a moto S3 server on loopback (the one the tests use) and creates a bucket.
3. Runs the export (extract -> validate -> transform -> serialize -> deliver,
   the functions the flow's tasks run) in a fresh process per measurement,
   alternating local folder and S3 for ``--rounds`` rounds, at ``--rows`` and
   at a quarter of it (to show memory does not grow with the file); the
   median of each is compared.
4. Replaces the ``## Export to object storage`` section of BENCHMARKS.md.

moto keeps objects in its own memory and answers from Python, so it is a
slower S3 than AWS's; its process is outside the measured RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench.benchmarks_file import write_section  # noqa: E402

WORKSPACE = "bench"
TARGET_RATIO = 1.3
SECTION = "## Export to object storage"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- child: one measured export -----------------------------------------------------------


def child_export(spec: dict) -> dict:
    os.environ["FERRY_DATABASE_URL"] = spec["url"]
    os.environ["FERRY_DATA_DIR"] = spec["data_dir"]
    from export_children import import_stages, run_stages

    from ferry.params import parse_request
    from tasks.export.deliver import deliver

    if spec["dest"] == "s3":
        from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

        from blocks.s3 import S3Destination

        credentials = AwsCredentials(
            aws_access_key_id=spec["key"],
            aws_secret_access_key=spec["secret"],
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=spec["endpoint"]),
        )
        destination = S3Destination(bucket=S3Bucket(bucket_name=spec["bucket"], bucket_folder="bench", credentials=credentials))
        destination.client()  # connect before timing, like the local folder's nothing-to-connect
    else:
        from blocks.local_directory import LocalDirectory

        destination = LocalDirectory(path=spec["folder"])
    request = parse_request({"workspace": WORKSPACE, "resource": "contacts", "format": "csv", "gzip": True, "limit": spec["rows"]})
    spool_dir = Path(spec["data_dir"]) / "spool" / spec["run"]
    import_stages()
    base_rss = _maxrss_mb()
    written, stages, seconds = run_stages(request, spool_dir)
    started = time.perf_counter()
    delivery = deliver.fn(written.path, destination, f"{spec['run']}.csv.gz")
    stages["deliver"] = time.perf_counter() - started
    shutil.rmtree(spool_dir, ignore_errors=True)
    return {
        "rows": written.rows,
        "seconds": seconds + stages["deliver"],
        "stages": stages,
        "bytes": delivery.bytes,
        "peak_rss_mb": _maxrss_mb(),
        "base_rss_mb": base_rss,
        "location": delivery.location,
    }


def run_child(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"export child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- store --------------------------------------------------------------------------------


def prepare_store(admin_url: str, rows: int, workdir: Path, log) -> str:
    import sqlalchemy as sa

    name = f"ferry_bench_dest_{rows}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    if exists:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                count = conn.execute(
                    sa.text("SELECT count(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = :ws"),
                    {"ws": WORKSPACE},
                ).scalar_one()
        except sa.exc.SQLAlchemyError:
            count = -1
        finally:
            engine.dispose()
        if count == rows:
            log(f"reusing PostgreSQL database {name}")
            admin.dispose()
            return url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    log(f"seeding {rows:,} contacts into {name} ...")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "export_bench.py"), "--child", "seed", json.dumps({"url": url, "rows": rows})],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"seeding failed:\n{proc.stderr[-3000:]}")
    log(f"  seeded in {json.loads(proc.stdout.strip().splitlines()[-1])['seconds']:.0f} s")
    return url


def drop_store(admin_url: str, rows: int) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "ferry_bench_dest_{rows}" WITH (FORCE)')
    admin.dispose()


# --- report -------------------------------------------------------------------------------


def report(results: dict[tuple[str, int], list[dict]], rows: int, rounds: int, load: tuple[str, str], started: datetime) -> str:
    def median(dest: str, size: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(dest, size)])

    def median_stage(dest: str, size: int, stage: str) -> float:
        return statistics.median(r["stages"][stage] for r in results[(dest, size)])

    small = rows // 4
    ratio = median("s3", rows, "seconds") / median("local", rows, "seconds")
    growth = median("s3", rows, "peak_rss_mb") - median("s3", small, "peak_rss_mb")
    extra = median("s3", rows, "peak_rss_mb") - median("local", rows, "peak_rss_mb")
    upload = median_stage("s3", rows, "deliver") - median_stage("local", rows, "deliver")
    calm = min(range(len(results[("local", rows)])), key=lambda i: results[("local", rows)][i]["seconds"])
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    lines = [
        SECTION,
        "",
        f"`bench/destination_bench.py`, {started:%Y-%m-%d %H:%M} UTC, {platform.node()}: {os.cpu_count()} cores ({cpu}), "
        f"load average {load[0]} -> {load[1]} (other work shares this machine). PostgreSQL store, contacts as CSV.gz, "
        f"S3 = moto server on loopback (8 MiB parts, SHA-256 per part). Median of {rounds} runs, each in a fresh process; "
        "local and S3 alternate.",
        "",
        "| rows | destination | file MB | total s | deliver s | peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size in (small, rows):
        for dest in ("local", "s3"):
            lines.append(
                f"| {size:,} | {'local folder' if dest == 'local' else 'S3 (moto)'} | "
                f"{median(dest, size, 'bytes') / 1e6:.1f} | {median(dest, size, 'seconds'):.1f} | "
                f"{median_stage(dest, size, 'deliver'):.2f} | {median(dest, size, 'peak_rss_mb'):.0f} |"
            )
    lines += [
        "",
        f"- S3 / local time at {rows:,} rows: **{ratio:.2f}x** (target <= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'}). "
        f"In the calmest round: {results[('s3', rows)][calm]['seconds'] / results[('local', rows)][calm]['seconds']:.2f}x.",
        f"- What S3 itself costs (deliver stage, S3 minus local): {upload:+.1f} s, "
        f"{upload / median('local', rows, 'seconds'):.1%} of the local export; the rest of the difference is noise from the shared machine.",
        f"- Peak RSS of the S3 export: {growth:+.0f} MB from {small:,} to {rows:,} rows "
        f"({'flat' if growth <= 40 else 'NOT flat'}: the upload holds one 8 MiB part); "
        f"{extra:+.0f} MB against the local export (boto3 and its S3 model).",
        "",
    ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(child_export(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Contacts exported (the store holds this many).")
    parser.add_argument("--rounds", type=int, default=3, help="Runs per destination and size; medians are compared.")
    parser.add_argument(
        "--pg-admin-url", default=os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "destination")
    parser.add_argument("--keep", action="store_true", help="Keep the seeded store for the next run.")
    parser.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)

    from servers.s3 import ACCESS_KEY, SECRET_KEY, start_moto

    args.workdir.mkdir(parents=True, exist_ok=True)
    started, load0 = datetime.now(UTC), f"{os.getloadavg()[0]:.1f}"
    url = prepare_store(args.pg_admin_url, args.rows, args.workdir, log)
    moto = start_moto(args.workdir / "moto")
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        bucket = moto.new_bucket()
        for round_ in range(1, args.rounds + 1):
            for size in (args.rows // 4, args.rows):
                for dest in ("local", "s3"):
                    run = f"{dest}-{size}-{round_}-{uuid.uuid4().hex[:6]}"
                    spec = {
                        "url": url,
                        "data_dir": str(args.workdir / "data"),
                        "rows": size,
                        "dest": dest,
                        "run": run,
                        "folder": str(args.workdir / "local"),
                        "endpoint": moto.url,
                        "bucket": bucket,
                        "key": ACCESS_KEY,
                        "secret": SECRET_KEY,
                    }
                    got = run_child(spec)
                    results.setdefault((dest, size), []).append(got)
                    stages = " ".join(f"{k}={v:.2f}" for k, v in got["stages"].items())
                    log(
                        f"round {round_} {dest:<5} {got['rows']:>9,} rows {got['seconds']:6.1f} s rss {got['peak_rss_mb']:5.0f} MB "
                        f"file {got['bytes'] / 1e6:6.1f} MB  {stages}"
                    )
                    if dest == "local":
                        Path(got["location"]).unlink(missing_ok=True)
                    else:
                        moto.client().delete_object(Bucket=bucket, Key=f"bench/{run}.csv.gz")  # keep moto's memory small
    finally:
        moto.process.stop()
        if not args.keep:
            drop_store(args.pg_admin_url, args.rows)
    (args.workdir / "results.json").write_text(json.dumps({f"{d}:{n}": runs for (d, n), runs in results.items()}, indent=2))
    text = report(results, args.rows, args.rounds, (load0, f"{os.getloadavg()[0]:.1f}"), started)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        log("wrote BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
