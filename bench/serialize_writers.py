"""Rows per second of every serialize writer on seeded contact rows (not a test).

    .venv/bin/python bench/serialize_writers.py [ROWS]

Seeds ROWS contacts (default 200,000) into a throw-away SQLite store, extracts
and transforms them once per format the way the export flow does (all columns,
default options), then times ``write_file`` alone for each format. PDF is
measured on its 50,000-row cap.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from ferry.params import ExportRequest, output_columns
from ferry.spool import read_spool, spool_schema, write_spool
from ferry.store.engine import get_engine
from ferry.store.migrate import upgrade
from ferry.store.seed import SeedCounts, seed_workspace
from tasks.extract import arrow_schema, build_query, stream_batches
from tasks.serialize import PDF_MAX_ROWS, write_file
from tasks.transform import transform_batch, transformed_schema


def main(rows: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    engine = get_engine(f"sqlite:///{work / 'bench.db'}")
    upgrade(engine)
    t = time.perf_counter()
    seed_workspace(engine, "bench", SeedCounts(contacts=rows, events=0, products=0, survey_responses=0), seed=3)
    print(f"seeded {rows:,} contacts in {time.perf_counter() - t:.1f} s", flush=True)

    base = ExportRequest(workspace="bench", resource="contacts")
    with engine.connect() as conn:
        query, columns = build_query(base, conn)
    raw = work / "raw.arrow"
    write_spool(raw, arrow_schema(columns), stream_batches(engine, query, arrow_schema(columns), 65_536))

    for fmt, gz in (("csv", False), ("csv", True), ("tsv", False), ("json", False), ("jsonl", False), ("jsonl", True),
                    ("xml", False), ("parquet", False), ("xlsx", False), ("pdf", False)):
        request = ExportRequest(workspace="bench", resource="contacts", format=fmt, gzip=gz)
        cols = output_columns(request)
        shaped = work / f"{fmt}.arrow"
        limit = PDF_MAX_ROWS if fmt == "pdf" else rows

        def batches():
            left = limit
            for batch in read_spool(raw):
                if left <= 0:
                    return
                batch = batch.slice(0, left)
                left -= batch.num_rows
                yield transform_batch(batch, request, cols)

        write_spool(shaped, transformed_schema(spool_schema(raw), request, cols), batches())
        target = work / f"out.{request.extension()}"
        t = time.perf_counter()
        out = write_file(read_spool(shaped), spool_schema(shaped), request, target)
        took = time.perf_counter() - t
        print(f"{request.extension():9} {out.rows:>8,} rows {took:7.2f} s {out.rows / took:>10,.0f} rows/s {out.bytes / 1e6:8.1f} MB", flush=True)
        target.unlink()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
