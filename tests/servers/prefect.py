"""A real Prefect server on PostgreSQL, and ``ferry serve`` / ``ferry worker`` processes, for the job tests.

Why not the session's ``prefect_test_harness``: scheduled runs need the
server's scheduler service, and concurrent runs need PostgreSQL (SQLite's
"database is locked"). The server gets its own database in the local
PostgreSQL, a scheduler loop of one second (so a seconds-granular cron fires
promptly), and is stopped by PID with its database dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from . import spawn
from ._process import ServerProcess
from .postgres import PG_ADMIN_URL


@dataclass
class PrefectServer:
    api_url: str
    database: str
    server: ServerProcess

    def log_text(self) -> str:
        return self.server.log_text()

    def stop(self) -> None:
        self.server.stop()
        _drop_database(self.database)


def _drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment minus Prefect client/server settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(extra)
    return env


_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the test process dies (Linux), even without fixture teardown."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, *argv]


def _asyncpg_url(database: str) -> str:
    return sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=database).render_as_string(hide_password=False)


def _template(conn, workdir: Path) -> str:
    """A database with Prefect's schema migrated, built once per Prefect version and cloned per server.

    Migrating a fresh database takes ~30 s on a loaded 2-core machine; cloning a
    template takes a second. Built under another name and renamed when complete,
    so an interrupted build never leaves a half-migrated template. Callers hold
    the advisory lock.
    """
    import prefect

    template = f"ferry_prefect_tpl_{prefect.__version__.replace('.', '_')}"
    if conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": template}).first():
        return template
    building = template + "_building"
    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    conn.exec_driver_sql(f'CREATE DATABASE "{building}"')
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "prefect-migrate.log"
    with open(log, "wb") as log_file:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=600,
            env=_clean_env(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_SERVER_DATABASE_CONNECTION_URL=_asyncpg_url(building)),
        )
    if done.returncode != 0:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        pytest.fail(f"Migrating Prefect's database failed; log:\n{log.read_text(errors='replace')[-4000:]}", pytrace=False)
    conn.exec_driver_sql(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
    return template


def start_prefect_server(workdir: Path) -> PrefectServer:
    """``prefect server start`` on a free port with a fresh PostgreSQL database; fails the test with its log."""
    import httpx

    name = f"ferry_prefect_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(7242026)")  # one template build, one clone at a time
            try:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{_template(conn, workdir)}"')
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7242026)")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); run `make test-services`.", pytrace=False)
    finally:
        admin.dispose()
    db_url = _asyncpg_url(name)
    env = _clean_env(
        PREFECT_HOME=str(workdir / "prefect-home"),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=db_url,
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )

    def ready(port: int) -> bool:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json() is True

    try:
        server, port = spawn(
            "prefect-server",
            lambda port: die_with_parent([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]),
            ready,
            workdir,
            deadline=180,
            env=env,
            attempts=2,
        )
    except BaseException:
        _drop_database(name)
        raise
    return PrefectServer(f"http://127.0.0.1:{port}/api", name, server)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A Prefect server on PostgreSQL for one test module; the module's Prefect clients talk to it.

    Import it into the module (``from servers.prefect import prefect_api``) to use it.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop()


def ferry_executable() -> str:
    candidate = Path(sys.executable).parent / "ferry"
    return str(candidate) if candidate.exists() else shutil.which("ferry") or "ferry"


@dataclass
class FerryProcess:
    """``ferry serve`` or ``ferry worker`` as a child process with its own log; stopped by PID with SIGTERM."""

    args: list[str]
    env: dict[str, str]
    workdir: Path
    name: str
    process: subprocess.Popen | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> FerryProcess:
        self.starts += 1
        log = self.workdir / f"{self.name}.{self.starts}.log"
        self.logs.append(log)
        with open(log, "wb") as log_file:
            self.process = subprocess.Popen(
                die_with_parent([ferry_executable(), *self.args]),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        return self

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n" + (p.read_text(errors="replace")[-6000:] if p.exists() else "") for p in self.logs[-2:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (graceful), then kill after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        try:  # its run subprocesses, should any outlive it (started in its own session: group id = its pid)
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.returncode


def ferry_env(api_url: str, data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a ``ferry serve`` / ``ferry worker`` child: the test server, store and data dir."""
    return _clean_env(
        PREFECT_API_URL=api_url,
        PREFECT_LOGGING_LEVEL="INFO",
        FERRY_DATA_DIR=str(data_dir),
        FERRY_DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        **extra,
    )


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, *, logs: Callable[[], str] | None = None, interval: float = 1.0
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` (and the logs) after ``timeout``."""
    end = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < end:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not there yet
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
    pytest.fail(f"{what} did not happen within {timeout:.0f} s{detail}\n{logs() if logs else ''}", pytrace=False)


def deployment_ready(name: str) -> bool:
    """True once a runner or worker has polled for the deployment's runs (Prefect marks it READY)."""
    from prefect import get_client
    from prefect.client.schemas.objects import DeploymentStatus

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name).status == DeploymentStatus.READY


def flow_run_logs(run_id: str, until: str = "Finished in state", timeout: float = 60) -> list:
    """A flow run's logs once its last line (``until``) has reached the server: logs arrive after the run's final state."""
    import time
    import uuid

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    run_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(run_id))]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=run_filter)
            if any(until in log.message for log in logs) or time.monotonic() > deadline:
                time.sleep(2)  # and what the engine logs after its last state line
                return client.read_logs(log_filter=run_filter)
            time.sleep(1)
