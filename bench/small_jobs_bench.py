"""Small jobs: the wall time of a 2,000-row import and export through the ``ferry`` CLI against a running ``ferry up``.

What it does (``python bench/small_jobs_bench.py``; ``--help`` for the flags):

1. In a temporary folder: a SQLite store seeded with 2,000 contacts, and a
   2,000-row contacts CSV with vendor headers (``bench/contact_files.py``'s
   generator: ~1% invalid rows, ~2% repeated e-mails).
2. Starts ``ferry up`` there (its own Prefect server on SQLite, the runner, the
   API) with a clean environment, and waits until it is up. Its start is not timed.
3. One untimed export and import (first-run effects), then ``--runs`` times,
   alternating: ``ferry export contacts --workspace bench --limit 2000 --json``
   and ``ferry import run FILE --resource contacts --workspace bench --auto-map
   --duplicates update --match email --json``, each a fresh process, as a user
   types them. The CLI finds ``ferry up``'s server by itself (``--explicit-url``
   sets ``PREFECT_API_URL`` instead, for code that predates that).
4. For each run, from Prefect's state history: created -> Pending (the runner
   took it), Pending -> Running (its process started and loaded the flow),
   Running -> Completed (the flow itself). Prints a Markdown table: wall time
   median (min-max) of the CLI process, its CPU time, and the phases' medians,
   with ``ferry --help``'s wall time and the targets met or not, and writes it
   as the ``## Small jobs`` section of BENCHMARKS.md (``--no-write``: don't).

``--set FERRY_WARM_RUNS=0`` (any ``KEY=VALUE``) runs with that variable set.
``--code DIR`` runs another checkout's code (``PYTHONPATH``, for ``ferry up``
and the CLI alike), e.g. a ``git worktree`` of an earlier commit, for a
before/after comparison on the same machine and load. The machine's load
average is printed with the table: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchmarks_file import write_section  # noqa: E402

WORKSPACE = "bench"
START_TIMEOUT = 300
SECTION = "## Small jobs"
#: issue 14: a 2,000-row import or export under 3 s wall through the CLI against a running server, a 1,000-row job
#: under 1.5 s inside its run (measured here on 2,000 rows), and ``ferry --help`` under 1 s
TARGET_WALL_S = 3.0
TARGET_IN_FLOW_S = 1.5
TARGET_HELP_S = 1.0


@dataclass
class Sample:
    job: str
    wall: float
    cpu: float
    code: int
    run_id: str | None
    phases: dict[str, float] = field(default_factory=dict)


def ferry_executable() -> str:
    candidate = Path(sys.executable).parent / "ferry"
    return str(candidate) if candidate.exists() else shutil.which("ferry") or "ferry"


def run_cli(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, str, str]:
    """Wall time, CPU time (user + system, the process and its children), exit code, stdout, stderr."""
    out, err = cwd / "cli.out", cwd / "cli.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, process.returncode, out.read_text(errors="replace"), err.read_text(errors="replace")


def help_seconds(env: dict[str, str], cwd: Path, runs: int = 3) -> float:
    """Median wall time of ``ferry --help``: the CLI's own start-up."""
    return statistics.median(run_cli([ferry_executable(), "--help"], env, cwd)[0] for _ in range(runs))


def phases(api_url: str, run_id: str) -> dict[str, float]:
    """Seconds from the run's creation to Pending, Pending to Running, Running to its final state."""
    import httpx

    run = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=10).json()
    states = httpx.get(f"{api_url}/flow_run_states/", params={"flow_run_id": run_id}, timeout=10).json()
    created = datetime.fromisoformat(run["created"])
    first: dict[str, datetime] = {}
    for state in sorted(states, key=lambda s: s["timestamp"]):
        first.setdefault(state["type"], datetime.fromisoformat(state["timestamp"]))
    final = next((first[t] for t in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") if t in first), None)
    found: dict[str, float] = {}
    if "PENDING" in first:
        found["queued"] = (first["PENDING"] - created).total_seconds()
        if "RUNNING" in first:
            found["starting"] = (first["RUNNING"] - first["PENDING"]).total_seconds()
            if final is not None:
                found["running"] = (final - first["RUNNING"]).total_seconds()
    return found


def prepare(workdir: Path, rows: int, log) -> tuple[Path, str]:
    from bench.contact_files import generate
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    store_url = f"sqlite:///{data_dir / 'ferry.db'}"
    engine = get_engine(store_url)
    upgrade(engine)
    seed_workspace(engine, WORKSPACE, SeedCounts(contacts=rows, events=100, products=10), seed=3)
    engine.dispose()
    source = workdir / f"contacts_{rows}.csv"
    generate(source, rows)
    log(f"store seeded with {rows:,} contacts, {source.name} written")
    return source, store_url


def start_ferry_up(workdir: Path, env: dict[str, str], log) -> tuple[subprocess.Popen, str]:
    from deployments.children import free_port

    out = workdir / "up.out"
    argv = [ferry_executable(), "up", "--port", str(free_port())]
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            argv, env=env, cwd=workdir, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        if "Ferry is up" in text:
            found = re.search(r"^\s*Prefect\s+(http://\S+/api)", text, re.M)
            if found:
                log(f"ferry up is up (Prefect {found.group(1)})")
                return process, found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.5)
    stop(process)
    raise SystemExit(f"ferry up did not start:\n{out.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def measure(args: argparse.Namespace, log) -> tuple[list[Sample], float]:
    workdir = Path(tempfile.mkdtemp(prefix="ferry-small-jobs-"))
    try:
        source, store_url = prepare(workdir, args.rows, log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
        (workdir / "home").mkdir()
        env.update(
            HOME=str(workdir / "home"),
            FERRY_DATA_DIR=str(workdir / "data"),
            FERRY_DATABASE_URL=store_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        if args.code:
            env["PYTHONPATH"] = str(Path(args.code).resolve())
        env.update(dict(pair.split("=", 1) for pair in args.set or []))
        startup = help_seconds(env, workdir)
        log(f"ferry --help: {startup:.2f} s")
        up, api_url = start_ferry_up(workdir, env, log)
        cli_env = dict(env, PREFECT_API_URL=api_url) if args.explicit_url else env
        jobs = {
            "export": [ferry_executable(), "export", "contacts", "--workspace", WORKSPACE, "--limit", str(args.rows), "--json"],
            "import": [ferry_executable(), "import", "run", str(source), "--resource", "contacts", "--workspace", WORKSPACE]
            + ["--auto-map", "--duplicates", "update", "--match", "email", "--json"],
        }
        samples: list[Sample] = []
        try:
            for round_ in range(args.runs + 1):  # round 0: untimed warm-up
                for job, argv in jobs.items():
                    wall, cpu, code, stdout, stderr = run_cli(argv, cli_env, workdir)
                    try:
                        run_id = json.loads(stdout)["run_id"]
                    except (ValueError, KeyError):
                        run_id = None
                    if code not in (0, 3) or run_id is None:
                        log(f"{job} exited {code}:\n{stderr[-3000:]}")
                    if round_ == 0:
                        continue
                    found = phases(api_url, run_id) if run_id else {}
                    samples.append(Sample(job, wall, cpu, code, run_id, found))
                    log(f"{job} #{round_}: {wall:.2f} s wall, {cpu:.2f} s CPU, exit {code}, phases {found}")
        finally:
            stop(up)
        return samples, startup
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def markdown(samples: list[Sample], startup: float, args: argparse.Namespace, load: tuple[float, float]) -> str:
    label = args.label or ("code at " + args.code if args.code else "this checkout")
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/small_jobs_bench.py`. "
        f"Small jobs through the CLI against a running `ferry up` ({label}; {args.rows:,} rows; "
        f"median of {args.runs} runs each; load average {load[0]:.1f} before, {load[1]:.1f} after, on {os.cpu_count()} cores):",
        "",
        "| job | wall, median (min-max) | CLI CPU | created -> Pending | Pending -> Running | Running -> end |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for job in ("import", "export"):
        rows = [s for s in samples if s.job == job]
        if not rows:
            continue
        walls = [s.wall for s in rows]
        lines.append(
            f"| {job} | {statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}) | {_median([s.cpu for s in rows])} s | "
            + " | ".join(f"{_median([s.phases[k] for s in rows if k in s.phases])} s" for k in ("queued", "starting", "running"))
            + " |"
        )
    lines += ["", "Targets:", ""]
    for job in ("import", "export"):
        rows = [s for s in samples if s.job == job]
        if rows:
            wall = round(statistics.median(s.wall for s in rows), 2)  # judged as shown: 2.996 s is "3.00 s", not under 3
            running = [s.phases["running"] for s in rows if "running" in s.phases]
            lines.append(
                f"- {job}, {args.rows:,} rows through the CLI: {wall:.2f} s wall (target < {TARGET_WALL_S:.0f} s): {_met(wall < TARGET_WALL_S)}."
            )
            if running:
                inside = round(statistics.median(running), 2)
                lines.append(
                    f"- {job}, inside its run: {inside:.2f} s (target < {TARGET_IN_FLOW_S} s for 1,000 rows): {_met(inside < TARGET_IN_FLOW_S)}."
                )
    startup = round(startup, 2)
    lines.append(f"- `ferry --help`: {startup:.2f} s (target < {TARGET_HELP_S:.0f} s): {_met(startup < TARGET_HELP_S)}.")
    return "\n".join(lines) + "\n"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each job (default 5).")
    parser.add_argument("--rows", type=int, default=2_000, help="Rows imported and exported (default 2,000).")
    parser.add_argument("--code", help="Run this checkout's code instead (PYTHONPATH), e.g. a git worktree of an earlier commit.")
    parser.add_argument("--explicit-url", action="store_true", help="Give the CLI PREFECT_API_URL instead of letting it find ferry up.")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="An environment variable for ferry up and the CLI, e.g. FERRY_WARM_RUNS=0."
    )
    parser.add_argument("--label", help="What the table's title calls this code.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, store).")
    parser.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def log(message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    before = os.getloadavg()[0]
    samples, startup = measure(args, log)
    text = markdown(samples, startup, args, (before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0 if samples and all(s.code in (0, 3) for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
