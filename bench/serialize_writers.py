"""Rows per second and peak memory of every serialize writer on seeded contact rows (not a test).

    .venv/bin/python bench/serialize_writers.py [ROWS] [--fields a,b,c] [--formats pdf,csv.gz]

Seeds ROWS contacts (default 200,000) into a throw-away SQLite store, extracts
them once, shapes them per format the way the export flow does (default
options), then times ``write_file`` alone for each format in a fresh process,
so the heap growth it reports (peak anonymous RSS while writing minus before)
is that writer's own. PDF is measured on its 50,000-row cap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [
    ("csv", False),
    ("csv", True),
    ("tsv", False),
    ("json", False),
    ("jsonl", False),
    ("jsonl", True),
    ("xml", False),
    ("xml", True),
    ("parquet", False),
    ("xlsx", False),
    ("pdf", False),
]


def _rss_mb() -> float:
    """Anonymous resident memory (heap): the memory-mapped spool's file pages are left out."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1e3
    raise RuntimeError("no RssAnon in /proc/self/status")


def one(spool: Path, fmt: str, gz: bool, fields: list[str] | None) -> None:
    """Child process: write one file from a shaped spool and print a JSON line.

    RSS is sampled every 10 ms while writing; CPU seconds are reported too,
    since wall time on a shared machine depends on its neighbours.
    """
    import threading

    from ferry.params import ExportRequest
    from ferry.spool import read_spool, spool_schema
    from tasks.export.serialize import write_file

    request = ExportRequest(workspace="bench", resource="contacts", format=fmt, gzip=gz, fields=fields)
    target = spool.with_name(f"out.{request.extension()}")
    before = _rss_mb()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t, cpu = time.perf_counter(), time.process_time()
    out = write_file(read_spool(spool), spool_schema(spool), request, target)
    took, cpu_took = time.perf_counter() - t, time.process_time() - cpu
    done.set()
    sampler.join()
    print(json.dumps({"rows": out.rows, "seconds": took, "cpu": cpu_took, "mb": out.bytes / 1e6, "rss_growth": peak[0] - before}))
    target.unlink()


def main(rows: int, fields: list[str] | None, only: list[str] | None = None) -> None:
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    try:
        _run(work, rows, fields, only)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, rows: int, fields: list[str] | None, only: list[str] | None) -> None:
    from ferry.columns import output_columns
    from ferry.params import ExportRequest
    from ferry.spool import read_spool, spool_schema, write_spool
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace
    from tasks.export.extract import arrow_schema, build_query, stream_batches
    from tasks.export.serialize import PDF_MAX_ROWS
    from tasks.export.transform import transform_batch, transformed_schema

    engine = get_engine(f"sqlite:///{work / 'bench.db'}")
    upgrade(engine)
    t = time.perf_counter()
    seed_workspace(engine, "bench", SeedCounts(contacts=rows, events=0, products=0, survey_responses=0), seed=3)
    print(f"seeded {rows:,} contacts in {time.perf_counter() - t:.1f} s", flush=True)

    base = ExportRequest(workspace="bench", resource="contacts", fields=fields)
    with engine.connect() as conn:
        query, columns = build_query(base, conn)
    raw = work / "raw.arrow"
    write_spool(raw, arrow_schema(columns), stream_batches(engine, query, arrow_schema(columns), 65_536))
    print(f"{len(columns)} columns: {', '.join(c.key for c in columns)}", flush=True)

    for fmt, gz in CASES:
        if only and fmt + (".gz" if gz else "") not in only:
            continue
        request = ExportRequest(workspace="bench", resource="contacts", format=fmt, gzip=gz, fields=fields)
        cols = output_columns(request)
        limit = PDF_MAX_ROWS if fmt == "pdf" else rows

        def shaped(request=request, cols=cols, limit=limit):
            left = limit
            for batch in read_spool(raw):
                if left <= 0:
                    return
                batch = batch.slice(0, left)
                left -= batch.num_rows
                yield transform_batch(batch, request, cols)

        spool = work / f"{fmt}.arrow"
        write_spool(spool, transformed_schema(spool_schema(raw), request, cols), shaped())
        args = [sys.executable, __file__, "--one", str(spool), fmt, str(int(gz))] + (["--fields", ",".join(fields)] if fields else [])
        result = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(
            f"{request.extension():9} {result['rows']:>8,} rows {result['seconds']:7.2f} s wall "
            f"{result['rows'] / result['seconds']:>9,.0f} rows/s | {result['cpu']:7.2f} s CPU "
            f"{result['rows'] / result['cpu']:>9,.0f} rows/CPU-s | {result['mb']:7.1f} MB file | "
            f"heap +{result['rss_growth']:4.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=200_000)
    parser.add_argument("--fields", default=None)
    parser.add_argument("--formats", default=None, help="only these, e.g. pdf,csv.gz")
    parser.add_argument("--one", nargs=3, metavar=("SPOOL", "FORMAT", "GZIP"))
    args = parser.parse_args()
    fields = args.fields.split(",") if args.fields else None
    if args.one:
        one(Path(args.one[0]), args.one[1], args.one[2] == "1", fields)
    else:
        main(args.rows, fields, args.formats.split(",") if args.formats else None)
