"""Soak: 50 concurrent runs (imports and exports mixed) against a Prefect server on PostgreSQL with two runners.

What it does, in one run (``python bench/soak_bench.py``; ``--help`` for the flags):

1. Creates two fresh PostgreSQL databases - one for Prefect's own server, one
   for Ferry's store - and a temporary ``FERRY_DATA_DIR``.
2. Starts ``prefect server start`` on a free loopback port (on the first
   database, telemetry off, as ``ferry up`` does) while it seeds a few
   workspaces with ``ferry db seed`` and generates the import files: a few
   thousand contacts each, e-mails drawn from a pool shared by the files of a
   workspace (so concurrent merges touch the same rows), some of them seeded
   contacts' e-mails in another case, repeats inside a file, a few files with
   some bad e-mails (partial imports) and one file per workspace with too many
   (a run that must fail, clearly, and load nothing).
3. Starts TWO runners: ``ferry serve --limit N`` twice (the first applies
   prefect.yaml's deployments, the second ``--no-deploy``), or with
   ``--runner worker`` ``ferry deploy`` then two ``ferry worker --limit N``.
4. Submits the runs as fast as it can through Ferry's own submit path
   (``deployments.adhoc.submit``: ``run_deployment(..., timeout=0)`` on
   ``import-data/default`` and ``export-data/default``), shuffled, from 8
   threads, then waits (with a deadline) until every run is in a final state.
5. Checks: every run final (Completed, or Failed with a Ferry message; Crashed,
   Cancelled or still running = lost), exactly one run on the server per
   submission and each executed by exactly one runner, both runners took runs;
   for each workspace the contacts are exactly the seeded e-mails plus the
   valid e-mails of the imports that completed, no e-mail twice
   (``GROUP BY workspace_id, lower(email) HAVING count(*) > 1``), the created
   counts of the import records add up, failed imports left no rollback
   journal entry; every export wrote a file with a header whose row count is
   its record's, within what the store held while it ran.
6. Reports time to drain, runs per minute, each runner's share, latency p50/p95
   (created -> final), peak RSS (``VmHWM``) of each runner and of the run
   processes, load average at start and end; writes the ``## Soak`` section of
   ``BENCHMARKS.md`` (other sections stay) and ``bench/out/soak_bench.json``.

Processes it started are stopped (by process group) and both databases dropped
on exit, also on Ctrl-C, SIGTERM or an error (``--keep`` keeps the databases
and the data folder for a post-mortem).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchmarks_file import write_section  # noqa: E402

OUT = ROOT / "bench" / "out"
PG_ADMIN = os.environ.get("FERRY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECTION = "## Soak"
HEADER = ["Email", "First Name", "Last Name", "Job Title", "Lifecycle Stage", "City"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "Margaret", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Berners-Lee"]
TITLES = ["Engineer", "Buyer", "Founder", "Analyst", "Office manager", ""]
STAGES = ["subscriber", "lead", "opportunity", "customer", ""]
CITIES = ["Berlin", "Lisbon", "Austin", "Osaka", "Nairobi", ""]
BAD_EMAILS = ["not-an-email-{n}", "user{n}@", "@example{n}.org", "two@@example{n}.org", "user {n}@example.org"]
EXPORTS = [
    ("contacts", "csv", False),
    ("contacts", "jsonl", False),
    ("contacts", "csv", True),
    ("contacts", "parquet", False),
    ("accounts", "csv", False),
]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
#: The processes a runner runs flow runs in: Prefect's own, and Ferry's warm standby (deployments/warm.py) where present.
RUN_PROCESSES = {"-m prefect.engine", "-m deployments.warm"}


# --- plumbing ---------------------------------------------------------------------------------


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


def create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return name


def drop_database(name: str) -> None:
    engine = admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def db_url(name: str, driver: str = "psycopg") -> str:
    return PG_ADMIN.replace("postgresql+psycopg", f"postgresql+{driver}").rsplit("/", 1)[0] + f"/{name}"


def vm_hwm_mb(pid: int) -> float | None:
    """The process's peak resident set (``VmHWM``), in MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Proc:
    """A process this script started: in a session of its own (its group id is its pid), SIGTERM'd if this script dies."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Proc:
        from deployments.children import die_with_parent

        with open(log_path, "ab") as output:
            process = subprocess.Popen(
                die_with_parent(argv), env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(name, process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float) -> None:
        """SIGTERM to its process group, then SIGKILL to the group after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            try:  # the leader is gone; anything left in its group (run processes) goes too
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


class Sampler(threading.Thread):
    """Every 0.25 s: each runner's VmHWM, and the VmHWM of each flow-run process under it (PREFECT__FLOW_RUN_ID)."""

    def __init__(self, runners: list[Proc]) -> None:
        super().__init__(daemon=True)
        self.runners = runners
        self.runner_hwm: dict[str, float] = {r.name: 0.0 for r in runners}
        self.run_owner: dict[str, set[str]] = {}
        self.run_hwm: dict[str, float] = {}
        self.process_hwm: dict[int, float] = {}  # every run process under a runner (warm standbys included)
        self.rounds = 0
        self.slowest = 0.0
        self.commands: dict[str, int] = {}  # processes seen under the runners, by command
        self.commands_seen: dict[int, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.is_set():
            started = time.perf_counter()
            for runner in self.runners:
                if (hwm := vm_hwm_mb(runner.pid)) is not None:
                    self.runner_hwm[runner.name] = max(self.runner_hwm[runner.name], hwm)
                try:
                    children = psutil.Process(runner.pid).children(recursive=True)
                except psutil.Error:
                    continue
                for child in children:
                    try:
                        if child.pid not in self.commands_seen:
                            command = " ".join(child.cmdline()[1:3])
                            self.commands_seen[child.pid] = command
                            self.commands[command] = self.commands.get(command, 0) + 1
                        if self.commands_seen[child.pid] in RUN_PROCESSES and (hwm := vm_hwm_mb(child.pid)) is not None:
                            self.process_hwm[child.pid] = max(self.process_hwm.get(child.pid, 0.0), hwm)
                        run_id = child.environ().get("PREFECT__FLOW_RUN_ID")
                    except psutil.Error:
                        continue
                    if not run_id:
                        continue
                    self.run_owner.setdefault(run_id, set()).add(runner.name)
                    if (hwm := vm_hwm_mb(child.pid)) is not None:
                        self.run_hwm[run_id] = max(self.run_hwm.get(run_id, 0.0), hwm)
            self.rounds += 1
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.done.wait(0.25)


_VIEW_AT = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")


def runs_in_log(proc: Proc) -> list[str]:
    """Flow-run ids a runner executed: each run process prints 'Beginning flow run ... View at .../flow-run/ID' into its runner's log."""
    try:
        text = proc.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [m.group(1) for line in text.splitlines() if " - View at " in line for m in [_VIEW_AT.search(line)] if m]


# --- the workload -----------------------------------------------------------------------------


@dataclass
class ImportFile:
    workspace: str
    path: str
    rows: int
    bad_rows: int
    valid_emails: list[str]  # lower-cased, distinct
    expect_failure: bool


@dataclass
class Submission:
    kind: str  # import | export
    workspace: str
    label: str
    run_id: str | None = None
    submit_seconds: float = 0.0
    error: str | None = None
    file: ImportFile | None = None
    resource: str = "contacts"
    format: str = "csv"
    gzip: bool = False


def _email(workspace: str, i: int) -> str:
    return f"soak.{i}@{workspace}.example{i % 7}.org"


def _case(rng: random.Random, email: str) -> str:
    r = rng.random()
    return email.upper() if r < 0.05 else (email[:1].upper() + email[1:]) if r < 0.12 else email


def make_import_files(folder: Path, workspace: str, seeded: list[str], files: int, rows: int, rng: random.Random) -> list[ImportFile]:
    """``files`` contact files for ``workspace``: overlapping e-mails, repeats, seeded contacts, bad rows in some."""
    from ferry.checks import is_email

    pool = max(rows, int(rows * files * 0.4))
    made = []
    for n in range(files):
        expect_failure = n == files - 1  # 30% bad e-mails: past the default max_error_rate (10%), nothing loads
        bad_share = 0.30 if expect_failure else 0.02 if n in (1, 4) else 0.0
        valid: set[str] = set()
        bad = 0
        path = folder / f"{workspace}-{n:02d}{'-toobad' if expect_failure else '-bad' if bad_share else ''}.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            previous: list[str] = []
            for r in range(rows):
                if rng.random() < bad_share:
                    email = rng.choice(BAD_EMAILS).format(n=r)
                    assert not is_email(email), email
                    bad += 1
                else:
                    roll = rng.random()
                    if roll < 0.05 and seeded:
                        email = rng.choice(seeded)
                    elif roll < 0.08 and previous:
                        email = rng.choice(previous)  # a repeat inside the file
                    else:
                        email = _email(workspace, rng.randrange(pool))
                    assert is_email(email), email
                    valid.add(email.strip().lower())
                    previous.append(email)
                    email = _case(rng, email)
                writer.writerow([email, rng.choice(FIRST), rng.choice(LAST), rng.choice(TITLES), rng.choice(STAGES), rng.choice(CITIES)])
        made.append(ImportFile(workspace, str(path), rows, bad, sorted(valid), expect_failure))
    return made


def plan_runs(files: list[ImportFile], workspaces: list[str], exports: int, rng: random.Random) -> list[Submission]:
    runs = [Submission("import", f.workspace, Path(f.path).name, file=f) for f in files]
    for n in range(exports):
        resource, fmt, gz = EXPORTS[n % len(EXPORTS)]
        ws = workspaces[n % len(workspaces)]
        runs.append(Submission("export", ws, f"{resource}.{fmt}{'.gz' if gz else ''}", resource=resource, format=fmt, gzip=gz))
    rng.shuffle(runs)
    return runs


def submit(run: Submission) -> Submission:
    from deployments import adhoc
    from deployments.project import ADHOC_EXPORT_DEPLOYMENT
    from ferry.import_params import IMPORT_DEPLOYMENT, ImportRequest
    from ferry.params import ExportRequest

    started = time.perf_counter()
    try:
        if run.kind == "import":
            request = ImportRequest(
                source=run.file.path,
                resource="contacts",
                workspace=run.workspace,
                auto_map=True,
                duplicates="update",
                match=["email"],
                processing="inline",
                actor="soak-bench",
            )
            run.run_id = adhoc.submit(IMPORT_DEPLOYMENT, request)
        else:
            request = ExportRequest(workspace=run.workspace, resource=run.resource, format=run.format, gzip=run.gzip, actor="soak-bench")
            run.run_id = adhoc.submit(ADHOC_EXPORT_DEPLOYMENT, request)
        if run.run_id is None:
            run.error = "the deployment was not ready (nobody polled it)"
    except Exception as exc:  # noqa: BLE001 - reported as a lost submission
        run.error = f"{type(exc).__name__}: {exc}"
    run.submit_seconds = time.perf_counter() - started
    return run


# --- checks on the outcome --------------------------------------------------------------------


def count_export_rows(path: Path, fmt: str, gz: bool) -> tuple[int, bool]:
    """(data rows, has a header / schema) of an export file."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        return meta.num_rows, meta.num_columns > 0
    opener = gzip.open if gz else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        if fmt == "jsonl":
            rows = [line for line in f if line.strip()]
            return len(rows), bool(rows) and bool(json.loads(rows[0]))
        reader = csv.reader(f)
        header = next(reader, None)
        return sum(1 for _ in reader), bool(header) and any(h.strip() for h in header)


def find_export_file(data_dir: Path, run_id: str, record) -> Path | None:
    if record is not None and record.destination_path:
        candidate = Path(record.destination_path)
        for path in (candidate, data_dir / "exports" / candidate, data_dir / "exports" / candidate.name):
            if path.is_file():
                return path
    hits = [p for p in (data_dir / "exports").rglob(f"*{run_id}*") if p.is_file() and not p.name.endswith(".partial")]
    return hits[0] if len(hits) == 1 else None


def store_facts(store_url: str, workspaces: list[str]) -> dict:
    import sqlalchemy as sa

    engine = sa.create_engine(store_url)
    facts: dict = {}
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT slug, id FROM workspaces")).all())
        for ws in workspaces:
            wid = ids.get(ws)
            emails = [e for (e,) in conn.execute(sa.text("SELECT lower(email) FROM contacts WHERE workspace_id = :w"), {"w": wid})]
            facts[ws] = {
                "contacts": len(emails),
                "emails": emails,
                "accounts": conn.execute(sa.text("SELECT count(*) FROM accounts WHERE workspace_id = :w"), {"w": wid}).scalar(),
                "journal": {
                    run_id: status
                    for run_id, status in conn.execute(
                        sa.text("SELECT run_id, status FROM import_runs WHERE workspace_id = :w"), {"w": wid}
                    )
                },
            }
        facts["duplicates"] = [
            list(row)
            for row in conn.execute(
                sa.text("SELECT workspace_id, lower(email), count(*) FROM contacts GROUP BY workspace_id, lower(email) HAVING count(*) > 1")
            )
        ]
    engine.dispose()
    return facts


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ferry-soak-")))
    databases: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    result: dict = field(default_factory=dict)

    def run(self) -> dict:
        args = self.args
        rng = random.Random(args.seed)
        workspaces = [f"soak-{n + 1}" for n in range(args.workspaces)]
        data_dir = self.workdir / "data"
        data_dir.mkdir()
        prefect_db = create_database("ferry_soak_prefect")
        self.databases.append(prefect_db)
        store_db = create_database("ferry_soak_store")
        self.databases.append(store_db)
        store_url = db_url(store_db)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        base_env.update(
            FERRY_DATA_DIR=str(data_dir),
            FERRY_DATABASE_URL=store_url,
            PREFECT_HOME=str(self.workdir / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONUNBUFFERED="1",
        )
        # This process is a client too (submits, reads records): same settings, before prefect is imported.
        os.environ.update(base_env, PREFECT_API_URL=api_url)
        for name in [k for k in os.environ if k.startswith("PREFECT_") and k not in base_env and k != "PREFECT_API_URL"]:
            del os.environ[name]
        load_start = os.getloadavg()
        self.result.update(
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            load_start=load_start,
            machine=machine(),
            code=code_state(),
            params={k: v for k, v in vars(args).items() if k not in ("from_json",)},
        )
        log(f"work folder {self.workdir}; Prefect DB {prefect_db}, store DB {store_db}")

        server_env = dict(
            base_env,
            PREFECT_SERVER_DATABASE_CONNECTION_URL=db_url(prefect_db, "asyncpg"),
            PREFECT_UI_API_URL=api_url,
        )
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
        server = Proc.start("prefect-server", argv, server_env, self.workdir / "prefect-server.log")
        self.procs.append(server)
        log(f"Prefect server starting on 127.0.0.1:{port} (PostgreSQL)")

        # Meanwhile: seed the store (the CLI, as a user would) and generate the import files.
        started = time.perf_counter()
        for ws in workspaces:
            cmd = [sys.executable, "-m", "cli.main", "db", "seed", "--workspace", ws, "--contacts", str(args.seed_contacts)]
            cmd += ["--events", "100", "--products", "0", "--survey-responses", "0"]
            out = subprocess.run(cmd, env=dict(base_env), cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"ferry db seed failed:\n{out.stdout}\n{out.stderr}")
        seeded = store_facts(store_url, workspaces)
        files_dir = self.workdir / "files"
        files_dir.mkdir()
        per_ws = [args.imports // len(workspaces) + (1 if i < args.imports % len(workspaces) else 0) for i in range(len(workspaces))]
        files: list[ImportFile] = []
        for ws, count in zip(workspaces, per_ws, strict=True):
            files += make_import_files(files_dir, ws, seeded[ws]["emails"], count, args.rows, rng)
        self.result["prep_seconds"] = round(time.perf_counter() - started, 1)
        log(
            f"seeded {len(workspaces)} workspaces x {args.seed_contacts} contacts, generated {len(files)} files in {self.result['prep_seconds']} s"
        )

        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api_url}/health", timeout=2).json() is True:
                    break
            except Exception:  # noqa: BLE001 - not answering yet
                pass
            if not server.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start:\n{server.tail()}")
            time.sleep(0.5)
        log("Prefect server up")

        runners = self.start_runners(base_env, api_url)
        sampler = Sampler(runners)
        sampler.start()

        runs = plan_runs(files, workspaces, args.runs - args.imports, rng)
        log(f"submitting {len(runs)} runs ({args.imports} imports, {args.runs - args.imports} exports) from 8 threads")
        t0 = datetime.now(UTC)
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            runs = list(pool.map(submit, runs))
        submit_wall = time.perf_counter() - started
        log(f"submitted in {submit_wall:.1f} s; {sum(r.run_id is None for r in runs)} not submitted")

        flow_runs = self.wait_final([r.run_id for r in runs if r.run_id], args.deadline)
        sampler.done.set()
        sampler.join(timeout=5)
        load_end = os.getloadavg()
        log("checking")
        self.result.update(self.evaluate(runs, flow_runs, sampler, runners, seeded, store_url, workspaces, data_dir, t0, submit_wall))
        self.result["load_end"] = load_end
        self.result["runners"] = {r.name: {"pid": r.pid, "alive_at_end": r.alive()} for r in runners}
        return self.result

    def start_runners(self, base_env: dict[str, str], api_url: str) -> list[Proc]:
        """Two runners (``ferry serve`` or ``ferry worker``), the first one ready before the second starts."""
        from prefect import get_client

        args = self.args
        env = dict(base_env, PREFECT_API_URL=api_url)
        cli = [sys.executable, "-m", "cli.main"]
        poll = ["--poll-seconds", str(args.poll_seconds)] if args.poll_seconds and args.runner == "serve" else []
        if args.runner == "worker":
            out = subprocess.run([*cli, "deploy"], env=env, cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"ferry deploy failed:\n{out.stdout}\n{out.stderr}")
            if args.poll_seconds:
                env["PREFECT_WORKER_QUERY_SECONDS"] = str(args.poll_seconds)
        runners = []
        for n in range(2):
            name = f"runner-{n + 1}"
            if args.runner == "serve":
                argv = [*cli, "serve", "--limit", str(args.limit), *poll] + (["--no-deploy"] if n else [])
            else:
                argv = [*cli, "worker", "--limit", str(args.limit), "--name", f"soak-{name}"]
            proc = Proc.start(name, argv, env, self.workdir / f"{name}.log")
            self.procs.append(proc)
            runners.append(proc)
            log(f"{name}: {' '.join(argv[2:])} (pid {proc.pid})")
            self.wait_runner_ready(proc, first=n == 0)
        with get_client(sync_client=True) as client:
            for name in ("import-data/default", "export-data/default"):
                deadline = time.monotonic() + 120
                while client.read_deployment_by_name(name).status.value != "READY":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} never became READY:\n" + "\n".join(r.tail() for r in runners))
                    time.sleep(1)
        return runners

    def wait_runner_ready(self, proc: Proc, first: bool) -> None:
        """Serving (its log lists the deployments, or the worker says it started), plus one poll interval."""
        wanted = re.compile(r"Serving import-data/default|Worker .* started|started!", re.I)
        deadline = time.monotonic() + 180
        while not wanted.search(proc.tail(200)):
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with code {proc.process.returncode}:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start serving within 180 s:\n{proc.tail()}")
            time.sleep(0.5)
        time.sleep(min(self.args.poll_seconds or 10.0, 10.0) + 1)  # its first poll

    def wait_final(self, run_ids: list[str], deadline_seconds: float) -> dict:
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        wanted = [uuid.UUID(r) for r in run_ids]
        deadline = time.monotonic() + deadline_seconds
        last = ""
        with get_client(sync_client=True) as client:
            while True:
                found = {
                    str(fr.id): fr
                    for fr in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=wanted)), limit=200)
                }
                pending = [r for r in run_ids if r not in found or found[r].state is None or found[r].state.type.value not in FINAL]
                status = ", ".join(
                    f"{k} {v}" for k, v in sorted(_count(fr.state.name if fr.state else "none" for fr in found.values()).items())
                )
                if status != last:
                    log(status)
                    last = status
                if not pending or time.monotonic() > deadline:
                    return found
                if not all(p.alive() for p in self.procs):
                    dead = [p.name for p in self.procs if not p.alive()]
                    log(f"WARNING: {', '.join(dead)} exited")
                time.sleep(2)

    def evaluate(self, runs, flow_runs, sampler, runners, seeded, store_url, workspaces, data_dir, t0, submit_wall) -> dict:
        from prefect import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        from deployments import adhoc
        from ferry.runs import read_record

        checks: list[tuple[str, bool, str]] = []
        executed: dict[str, list[str]] = {}  # run id -> the runner of each execution (from the runners' logs)
        for runner in runners:
            for run_id in runs_in_log(runner):
                executed.setdefault(run_id, []).append(runner.name)
        per_run = []
        states = _count((flow_runs[r.run_id].state.name if r.run_id in flow_runs and flow_runs[r.run_id].state else "lost") for r in runs)
        for r in runs:
            fr = flow_runs.get(r.run_id) if r.run_id else None
            state = fr.state if fr is not None else None
            row = {
                "kind": r.kind,
                "workspace": r.workspace,
                "label": r.label,
                "run_id": r.run_id,
                "submit_error": r.error,
                "state_type": state.type.value if state else "LOST",
                "state": state.name if state else "lost",
                "message": (state.message or "") if state else "",
                "runners": executed.get(r.run_id or "", []),
                "sampled_under": sorted(sampler.run_owner.get(r.run_id or "", ())),
                "run_hwm_mb": round(sampler.run_hwm.get(r.run_id or "", 0.0), 1),
                "expect_failure": bool(r.file and r.file.expect_failure),
            }
            if fr is not None and fr.created and fr.end_time:
                row["latency_s"] = (fr.end_time - fr.created).total_seconds()
                row["wait_s"] = (fr.start_time - fr.created).total_seconds() if fr.start_time else None
                row["end"] = fr.end_time.isoformat()
            if fr is not None and state is not None and state.is_final():
                if r.kind == "import":
                    given = SimpleNamespace(source=r.file.path, resource="contacts", workspace=r.workspace)
                    record = adhoc.import_record(fr, given)
                    row.update(
                        status=record.status,
                        created=record.created_rows,
                        updated=record.updated_rows,
                        error_rows=record.error_rows,
                        error=record.error,
                    )
                else:
                    record = read_record(fr)
                    row.update(status=record.status if record else None, error=record.error if record else None)
                    if record is not None and record.status == "success":
                        path = find_export_file(data_dir, r.run_id, record)
                        row["record_count"] = record.record_count
                        if path is not None:
                            rows_in_file, header = count_export_rows(path, r.format, r.gzip)
                            row.update(file=path.name, file_rows=rows_in_file, header=header)
            per_run.append(row)

        final_store = store_facts(store_url, workspaces)
        ends = [datetime.fromisoformat(p["end"]) for p in per_run if p.get("end")]
        drain = (max(ends) - t0).total_seconds() if ends else float("nan")
        latencies = [p["latency_s"] for p in per_run if p.get("latency_s") is not None]
        share = _count(name for p in per_run for name in p["runners"])
        unattributed = sum(1 for p in per_run if p["run_id"] and not p["runners"])

        # 1. every run final, none lost
        lost = [p for p in per_run if p["state_type"] not in ("COMPLETED", "FAILED")]
        checks.append(
            (
                "every run submitted and final (Completed or Failed; none Crashed, Cancelled, lost)",
                not lost,
                "; ".join(f"{p['label']} {p['state']} {p['submit_error'] or p['message'][:120]}" for p in lost)
                or f"{len(per_run)} of {len(per_run)}",
            )
        )
        # 2. failures are the expected ones, each with a Ferry message
        failed = [p for p in per_run if p["state_type"] == "FAILED"]
        unclear = [p for p in failed if not p["message"] or "Traceback" in p["message"] or not p.get("error")]
        unexpected = [p for p in per_run if (p["state_type"] == "FAILED") != p["expect_failure"]]
        if unexpected or unclear:
            detail = "; ".join(f"{p['label']}: {p['state']} {(p.get('error') or p['message'])[:160]}" for p in unexpected + unclear)
        elif failed:
            detail = f'{len(failed)} expected failures, e.g. "{(failed[0].get("error") or failed[0]["message"])[:160]}"'
        else:
            detail = "none failed"
        checks.append(
            ("failed runs are exactly the files with too many bad rows, each with a Ferry message", not unclear and not unexpected, detail)
        )
        # 3. one run on the server per submission, each executed by one runner; both runners worked
        with get_client(sync_client=True) as client:
            deployment_ids = [client.read_deployment_by_name(n).id for n in ("import-data/default", "export-data/default")]
            on_server, page = [], None
            while page is None or len(page) == 200:  # the API returns at most 200 per call
                page = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)), limit=200, offset=len(on_server)
                )
                on_server += page
        submitted = {p["run_id"] for p in per_run if p["run_id"]}
        extra = [str(fr.id) for fr in on_server if str(fr.id) not in submitted]
        twice = [p["label"] for p in per_run if len(p["runners"]) > 1]
        checks.append(
            (
                "one server run per submission, none executed twice",
                not extra and not twice and len(submitted) == len(runs),
                f"{len(on_server)} runs on the server for {len(runs)} submissions; extra {len(extra)}; executed by two runners {twice or 0}",
            )
        )
        checks.append(
            (
                "both runners took runs",
                len(share) == 2 and all(v > 0 for v in share.values()),
                ", ".join(f"{k} {v}" for k, v in sorted(share.items())) + (f"; {unattributed} not seen" if unattributed else ""),
            )
        )
        # 4. store integrity per workspace
        completed_imports = [p for p in per_run if p["kind"] == "import" and p["state_type"] == "COMPLETED"]
        by_id = {r.run_id: r for r in runs}
        integrity = {}
        for ws in workspaces:
            expected = set(seeded[ws]["emails"])
            for p in completed_imports:
                if p["workspace"] == ws:
                    expected |= set(by_id[p["run_id"]].file.valid_emails)
            actual = final_store[ws]["emails"]
            actual_set = set(actual)
            created = sum(p.get("created") or 0 for p in completed_imports if p["workspace"] == ws)
            journal = final_store[ws]["journal"]
            ws_imports = [p for p in per_run if p["kind"] == "import" and p["workspace"] == ws]
            journal_ok = all((p["run_id"] in journal) == (p["state_type"] == "COMPLETED") for p in ws_imports)
            integrity[ws] = {
                "seeded": seeded[ws]["contacts"],
                "expected": len(expected),
                "actual": len(actual),
                "missing": len(expected - actual_set),
                "unexpected": len(actual_set - expected),
                "created_by_records": created,
                "created_in_store": len(actual) - seeded[ws]["contacts"],
                "journal_ok": journal_ok,
                "accounts": final_store[ws]["accounts"],
            }
        checks.append(
            (
                "contacts = seeded + valid e-mails of completed imports (no row lost or extra)",
                all(v["expected"] == v["actual"] and not v["missing"] and not v["unexpected"] for v in integrity.values()),
                "; ".join(
                    f"{ws} {v['actual']:,}/{v['expected']:,} (missing {v['missing']}, extra {v['unexpected']})"
                    for ws, v in integrity.items()
                ),
            )
        )
        checks.append(
            (
                "no e-mail twice in a workspace (GROUP BY workspace_id, lower(email) HAVING count(*) > 1)",
                not final_store["duplicates"],
                f"{len(final_store['duplicates'])} duplicate groups",
            )
        )
        checks.append(
            (
                "import records' created rows add up to the contacts added",
                all(v["created_by_records"] == v["created_in_store"] for v in integrity.values()),
                "; ".join(f"{ws} {v['created_by_records']:,} recorded / {v['created_in_store']:,} in store" for ws, v in integrity.items()),
            )
        )
        checks.append(
            (
                "rollback journal: one committed entry per completed import, none for failed ones",
                all(v["journal_ok"] for v in integrity.values()),
                "ok" if all(v["journal_ok"] for v in integrity.values()) else "mismatch",
            )
        )
        # 5. exports
        bad_exports = []
        for p in per_run:
            if p["kind"] != "export" or p["state_type"] != "COMPLETED":
                continue
            ws = integrity[p["workspace"]]
            lo, hi = (ws["seeded"], ws["actual"]) if p["label"].startswith("contacts") else (ws["accounts"], ws["accounts"])
            problem = None
            if p.get("file_rows") is None:
                problem = "no file found"
            elif not p.get("header"):
                problem = "no header"
            elif p["file_rows"] != p.get("record_count"):
                problem = f"{p['file_rows']} rows in the file, {p.get('record_count')} in the record"
            elif not lo <= p["file_rows"] <= hi or p["file_rows"] == 0:
                problem = f"{p['file_rows']} rows, the store held {lo}..{hi}"
            if problem:
                bad_exports.append(f"{p['label']} {p['run_id']}: {problem}")
        n_exports = sum(1 for p in per_run if p["kind"] == "export" and p["state_type"] == "COMPLETED")
        checks.append(
            (
                "every export: a file with a header, its record's row count, within the store's count at run time",
                not bad_exports,
                "; ".join(bad_exports) or f"{n_exports} files checked",
            )
        )

        def kind_latency(kind: str) -> list[float]:
            return [p["latency_s"] for p in per_run if p["kind"] == kind and p.get("latency_s") is not None]

        run_hwms = [v for v in sampler.process_hwm.values() if v]
        return {
            "runs": per_run,
            "states": states,
            "submit_seconds": round(submit_wall, 1),
            "drain_seconds": round(drain, 1),
            "runs_per_minute": round(len(latencies) / (drain / 60), 1) if latencies and drain > 0 else 0,
            "latency": {
                "all": [percentile(latencies, 0.5), percentile(latencies, 0.95)],
                "import": [percentile(kind_latency("import"), 0.5), percentile(kind_latency("import"), 0.95)],
                "export": [percentile(kind_latency("export"), 0.5), percentile(kind_latency("export"), 0.95)],
                "wait": [percentile([p["wait_s"] for p in per_run if p.get("wait_s") is not None], q) for q in (0.5, 0.95)],
            },
            "share": share,
            "unattributed": unattributed,
            "runner_hwm_mb": {k: round(v, 1) for k, v in sampler.runner_hwm.items()},
            "run_hwm_mb": [round(statistics.median(run_hwms), 1), round(max(run_hwms), 1)] if run_hwms else [0, 0],
            "run_hwm_sampled": len(run_hwms),
            "run_hwm_filtered": True,  # run processes only (RUN_PROCESSES)
            "sampler": {"rounds": sampler.rounds, "slowest_s": round(sampler.slowest, 3), "commands": sampler.commands},
            "integrity": integrity,
            "checks": checks,
            "import_outcomes": _count(p.get("status") or "?" for p in per_run if p["kind"] == "import"),
        }

    def cleanup(self) -> None:
        for proc in reversed(self.procs):  # runners first (they cancel what is left), then the server
            if proc.alive():
                log(f"stopping {proc.name}")
            proc.stop(grace=60 if proc.name.startswith("runner") else 30)
        if self.args.keep:
            log(f"kept {self.workdir} and databases {', '.join(self.databases)}")
            return
        for name in self.databases:
            try:
                drop_database(name)
            except Exception as exc:  # noqa: BLE001 - report and go on
                log(f"could not drop {name}: {exc}")
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# --- the report -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
        memory = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    pg = ""
    try:
        engine = admin_engine()
        with engine.connect() as conn:
            pg = conn.exec_driver_sql("SHOW server_version").scalar().split()[0]
        engine.dispose()
    except Exception:  # noqa: BLE001 - informative only
        pass
    import importlib.metadata as md

    return {
        "host": platform.node(),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "prefect": md.version("prefect"),
        "postgresql": pg,
    }


def code_state() -> dict:
    """The commit measured, and the files the working tree changed (other work in progress is measured too)."""

    def git(*argv: str) -> str:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.rstrip("\n") if out.returncode == 0 else ""  # not strip(): porcelain lines start with a blank

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=all").splitlines() if line[3:].endswith(".py")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed": [c for c in changed if c != "bench/soak_bench.py"]}


def markdown(result: dict) -> str:
    p, m = result["params"], result["machine"]
    lat = result["latency"]
    own = [r["latency_s"] - r["wait_s"] for r in result["runs"] if r.get("latency_s") is not None and r.get("wait_s") is not None]
    command = "python bench/soak_bench.py" + (f" --runner {p['runner']}" if p["runner"] != "serve" else "")
    runner_cmd = (
        f"`ferry serve --limit {p['limit']}` twice (the second `--no-deploy`)"
        if p["runner"] == "serve"
        else f"`ferry deploy`, then `ferry worker --limit {p['limit']}` twice"
    )
    exports = p["runs"] - p["imports"]
    code = result.get("code") or {}
    code_note = f"Code: commit {code['commit']}" if code.get("commit") else ""
    if code_note and code.get("changed"):
        code_note += f", working tree with uncommitted changes to {', '.join(code['changed'])}"
    code_note += "." if code_note else ""
    lines = [
        SECTION,
        "",
        f"`{command}` (`make bench-soak`), {result['started'][:16].replace('T', ' ')} UTC, {m['host']}: {m['cores']} cores ({m['cpu']}), "
        f"{m['memory']}, Python {m['python']}, Prefect {m['prefect']}, PostgreSQL {m['postgresql']}. Load average "
        f"{result['load_start'][0]:.1f} at the start, {result['load_end'][0]:.1f} at the end (other work shares this machine). "
        + code_note,
        "",
        f"A Prefect server on PostgreSQL, Ferry's store on PostgreSQL, two runners: {runner_cmd}, polling every "
        f"{p['poll_seconds'] or 10:g} s. {p['runs']} runs submitted at once through `deployments.adhoc.submit` (`run_deployment(..., timeout=0)`, "
        f"8 threads), shuffled: {p['imports']} imports of {p['rows']:,}-row contact files (`--auto-map --duplicates update`, match on e-mail) "
        f"into {p['workspaces']} workspaces seeded with {p['seed_contacts']:,} contacts each (e-mails overlap between a workspace's files, "
        "some are seeded contacts' in another case, some repeat inside a file; two files per workspace have 2% bad e-mails, one has 30% "
        f"and must fail), and {exports} exports (contacts as CSV, JSONL, CSV.gz and Parquet; accounts as CSV).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| runs by final state | {', '.join(f'{k} {v}' for k, v in sorted(result['states'].items()))} |",
        f"| import outcomes (record status) | {', '.join(f'{k} {v}' for k, v in sorted(result['import_outcomes'].items()))} |",
        f"| submitting all {p['runs']} | {result['submit_seconds']:.1f} s |",
        f"| time to drain all {p['runs']} (first submission to last run's end) | {result['drain_seconds']:.0f} s |",
        f"| runs per minute | {result['runs_per_minute']:.1f} |",
        f"| latency created -> final, p50 / p95 | {lat['all'][0]:.0f} / {lat['all'][1]:.0f} s |",
        f"| imports / exports, p50 / p95 | {lat['import'][0]:.0f} / {lat['import'][1]:.0f} s, {lat['export'][0]:.0f} / {lat['export'][1]:.0f} s |",
        f"| wait created -> running, p50 / p95 | {lat['wait'][0]:.0f} / {lat['wait'][1]:.0f} s |",
        f"| running -> final (the run's own time), p50 / p95 | {percentile(own, 0.5):.0f} / {percentile(own, 0.95):.0f} s |",
        f"| runs per runner | {', '.join(f'{k} {v}' for k, v in sorted(result['share'].items()))}"
        + (f" ({result['unattributed']} not seen)" if result["unattributed"] else "")
        + " |",
        f"| peak RSS (VmHWM) per runner | {', '.join(f'{k} {v:.0f} MB' for k, v in sorted(result['runner_hwm_mb'].items()))} |",
        f"| peak RSS of {'a run process' if result.get('run_hwm_filtered') else 'the child processes of the runners'}, median / max "
        f"({result.get('run_hwm_sampled', '?')} sampled; processes under the runners: "
        f"{', '.join(f'{v} {k}' for k, v in sorted(result.get('sampler', {}).get('commands', {}).items()))}) "
        f"| {result['run_hwm_mb'][0]:.0f} / {result['run_hwm_mb'][1]:.0f} MB |",
    ]
    for ws, v in result["integrity"].items():
        lines.append(f"| contacts in {ws}: seeded, expected, in the store | {v['seeded']:,}, {v['expected']:,}, {v['actual']:,} |")
    lines += ["", "Checks:", ""]
    for name, ok, detail in result["checks"]:
        lines.append(f"- {'PASS' if ok else 'FAIL'}: {name} ({detail}).")
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="Runs submitted in all (imports + exports).")
    parser.add_argument("--imports", type=int, default=30, help="Of which imports; the rest are exports.")
    parser.add_argument("--workspaces", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3000, help="Rows per import file.")
    parser.add_argument("--seed-contacts", type=int, default=2000, help="Contacts `ferry db seed` puts in each workspace.")
    parser.add_argument("--runner", choices=("serve", "worker"), default="serve", help="Two `ferry serve` or two `ferry worker`.")
    parser.add_argument("--limit", type=int, default=4, help="Runs at a time per runner.")
    parser.add_argument("--poll-seconds", type=float, default=None, help="Runner poll interval (default Prefect's, 10 s).")
    parser.add_argument("--deadline", type=float, default=900, help="Seconds to wait for every run to be final.")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="Keep the databases and the work folder.")
    parser.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    parser.add_argument("--note", default="", help="A line appended to the section.")
    parser.add_argument("--from-json", default="", help="Write the section from a saved result (bench/out/soak_bench.json).")
    args = parser.parse_args()
    if args.imports > args.runs or args.imports < args.workspaces:
        parser.error("--imports must be between --workspaces and --runs")

    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:

        def on_term(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, on_term)
        soak = Soak(args)
        try:
            result = soak.run()
        finally:
            soak.cleanup()
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "soak_bench.json").write_text(json.dumps(result, indent=2, default=str))
    if args.note:
        result["note"] = args.note
    text = markdown(result)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0 if all(ok for _, ok, _ in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
