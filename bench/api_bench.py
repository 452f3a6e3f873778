"""HTTP API benchmark: requests per second and latency, sync-export overhead, and memory while streaming an upload.

1. Starts Ferry as a service (``ferry up``) on loopback: a Prefect server and
   the store on fresh PostgreSQL databases, the runner and the API (rate limits
   raised so they do not throttle the measurement).
2. ``GET /v1/runs/{id}`` and ``POST /v1/exports`` at 1, 8 and 32 concurrent
   clients: requests/s, p50 and p99 latency.
3. A 10,000-row export answered in the body (``Prefer: respond=sync``) against
   the same export through the CLI's path (the ``export_data`` flow in this
   process, server already running): the time the HTTP route adds.
4. A 1 GB upload streamed to the API's signed URL while the API process's RSS
   is sampled: memory stays flat.
5. Writes the ``## HTTP API`` section of ``BENCHMARKS.md`` (other sections stay).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchmarks_file import write_section  # noqa: E402

PG_ADMIN = os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres")
CONTACTS = 10_000


def database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name


def drop(name: str) -> None:
    with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def load(url: str, headers: dict, method: str, path: str, body: dict | None, clients: int, requests: int) -> dict:
    """``requests`` calls spread over ``clients`` threads (one HTTP connection each): rps, p50, p99 in ms."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            for _ in range(n):
                seconds = timed(lambda: http.request(method, path, json=body).raise_for_status())
                with lock:
                    latencies.append(seconds)

    share = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, share))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": requests,
        "rps": requests / wall,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def api_process(up: subprocess.Popen) -> psutil.Process:
    """The API child of ``ferry up`` (``python -m cli.main api``)."""
    for child in psutil.Process(up.pid).children(recursive=True):
        if "api" in child.cmdline() and "cli.main" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("no API process under ferry up")


def upload_memory(url: str, headers: dict, process: psutil.Process, size: int) -> dict:
    """Stream ``size`` bytes to a signed upload URL while sampling the API's RSS every 50 ms."""
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        target = http.post("/v1/uploads", json={"filename": "big.csv", "sizeBytes": size}).raise_for_status().json()
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(process.memory_info().rss)
            time.sleep(0.05)

    def body():
        chunk = (b"email\n" + b"someone@example.com\n" * 3270)[: 1 << 16]
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            sent += len(part)
            yield part

    before = process.memory_info().rss
    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        response = httpx.request(
            target["method"], target["url"], headers={**target["headers"], "Content-Length": str(size)}, content=body(), timeout=600
        )
    finally:
        done.set()
        sampler.join()
    return {
        "bytes": size,
        "status": response.status_code,
        "seconds": time.perf_counter() - started,
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": max(samples) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="GET requests per concurrency level.")
    parser.add_argument("--starts", type=int, default=32, help="Exports started per concurrency level.")
    parser.add_argument("--upload-bytes", type=int, default=1 << 30)
    parser.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    args = parser.parse_args()

    from ferry.keys import create_key
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    workdir = Path(tempfile.mkdtemp(prefix="ferry-api-bench-"))
    prefect_db, store_db = database("ferry_bench_prefect"), database("ferry_bench_store")
    store_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{store_db}"
    engine = get_engine(store_url)
    upgrade(engine)
    seed_workspace(engine, "bench", SeedCounts(contacts=CONTACTS, events=100, products=2), seed=3)
    key = create_key(engine, "bench", "admin", "bench")[1]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        FERRY_DATA_DIR=str(workdir / "data"),
        FERRY_DATABASE_URL=store_url,
        FERRY_API_RATE_LIMIT="1000000/minute",
        FERRY_API_RUN_RATE_LIMIT="1000000/minute",
        FERRY_API_MAX_UPLOAD_BYTES=str(args.upload_bytes + 1),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=PG_ADMIN.replace("postgresql+psycopg", "postgresql+asyncpg").rsplit("/", 1)[0]
        + f"/{prefect_db}",
    )
    log = open(workdir / "ferry-up.log", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--drain-seconds", "5"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url, headers = f"http://127.0.0.1:{port}", {"x-api-key": key}
    results: dict = {}
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or up.poll() is not None:
                raise RuntimeError(f"ferry up did not come up; see {workdir / 'ferry-up.log'}")
            time.sleep(1)
        with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
            run_id = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"], "limit": 10}).json()["id"]
            while http.get(f"/v1/runs/{run_id}").json()["status"] in ("queued", "running"):
                time.sleep(1)
            sync = [
                timed(
                    lambda: http.post(
                        "/v1/exports", json={"resource": "contacts", "format": "csv"}, headers={"Prefer": "respond=sync"}
                    ).raise_for_status()
                )
                for _ in range(3)
            ]
        results["get"] = [load(url, headers, "GET", f"/v1/runs/{run_id}", None, c, args.requests) for c in (1, 8, 32)]
        results["start"] = [
            load(url, headers, "POST", "/v1/exports", {"resource": "contacts", "fields": ["email"], "limit": 1}, c, args.starts)
            for c in (1, 8, 32)
        ]
        results["sync_http_s"] = statistics.median(sync)
        results["upload"] = upload_memory(url, headers, api_process(up), args.upload_bytes)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=120)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
    results["sync_cli_s"] = cli_export_seconds(store_url, workdir)
    engine.dispose()
    for name in (prefect_db, store_db):
        drop(name)
    text = section(results, args)
    print(text)
    if not args.no_write:
        write_section("## HTTP API", text)


def cli_export_seconds(store_url: str, workdir: Path) -> float:
    """In-flow seconds of the same 10,000-row CSV through ``ferry export`` (its record's start to end; server start not counted)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "FERRY_DATABASE_URL": store_url,
        "FERRY_DATA_DIR": str(workdir / "cli-data"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "export", "contacts", "--workspace", "bench", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    import json

    record = json.loads(out.stdout)
    from datetime import datetime

    return (datetime.fromisoformat(record["completed_at"]) - datetime.fromisoformat(record["started_at"])).total_seconds()


def section(results: dict, args) -> str:
    lines = [
        "## HTTP API",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/api_bench.py` on {os.cpu_count()} cores against "
        "`ferry up` (Prefect server and store on PostgreSQL, the runner and the API on this machine, rate limits raised); "
        f"the load generator runs on the same cores. Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        "| request | clients | requests | requests/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in (("GET /v1/runs/{id}", results["get"]), ("POST /v1/exports (start a run)", results["start"])):
        lines += [f"| {name} | {r['clients']} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} |" for r in rows]
    added = results["sync_http_s"] - results["sync_cli_s"]
    upload = results["upload"]
    lines += [
        "",
        f"- Sync export of {CONTACTS:,} contacts (CSV, `Prefer: respond=sync`): {results['sync_http_s']:.2f} s over HTTP (median of 3, "
        f"request to last byte) vs {results['sync_cli_s']:.2f} s in-flow time of the same export through `ferry export`: "
        f"{1000 * added:+.0f} ms added (target under 200 ms: {'met' if added < 0.2 else 'NOT met'}).",
        f"- Upload of {upload['bytes'] / 2**30:.1f} GiB streamed to the signed URL: HTTP {upload['status']} in {upload['seconds']:.1f} s; "
        f"API process RSS {upload['rss_before_mb']:.0f} MB before, peak {upload['rss_peak_mb']:.0f} MB while streaming "
        f"({'flat' if upload['rss_peak_mb'] - upload['rss_before_mb'] < 50 else 'NOT flat'}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
