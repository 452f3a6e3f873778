"""``ferry up``: Ferry as a service on one machine - Prefect server, runner and HTTP API - in one command.

``ferry up`` is a small supervisor. In this order it

1. migrates the store (as ``ferry db init`` does; idempotent);
2. uses the Prefect server ``PREFECT_API_URL`` names, or starts one:
   ``prefect server start`` on a free loopback port, on PostgreSQL when
   ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` is set, else on Prefect's SQLite
   default under ``$FERRY_DATA_DIR/prefect`` (``PREFECT_HOME``); its log goes
   to ``$FERRY_DATA_DIR/logs/prefect-server.log``;
3. starts the runner (``python -m deployments.draining``, see :mod:`deployments.draining`):
   what ``ferry serve`` does - prefect.yaml's deployments applied, every Ferry
   deployment and job served - except that it *drains* when told to stop;
4. starts the HTTP API (``ferry api``, as ``python -m cli.main api``) once
   the runner has polled for runs, so an API that answers can get its exports run;
5. prints the API, docs and Prefect UI URLs.

While a server it started runs, ``ferry up`` publishes it in
``$FERRY_DATA_DIR/run/prefect-server.json`` (:mod:`ferry.local_server`: API
URL, pids, start time; owner-only, written atomically, removed when it stops),
so the CLI on this machine uses that server instead of starting a temporary
one of its own, and can wake the runner for a run it just created.

Every child gets SIGTERM when ``ferry up`` dies (``PR_SET_PDEATHSIG``), runs in
a session of its own (a Ctrl-C in the terminal reaches ``ferry up`` only, so the
server and the runs in flight outlive it until they are stopped in order) and
has Prefect's telemetry off.

Ctrl-C or SIGTERM: the runner stops taking new runs at once and lets the runs
in flight finish for up to ``drain_seconds`` (it then cancels the rest; a
second Ctrl-C cancels them at once). The API and the Prefect server keep
answering meanwhile, so runs can report their states and clients can follow
them. Then the API stops, then the Prefect server (only a server ``ferry up``
started itself). A clean stop returns 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deployments import project
from deployments.children import Child, display_url, free_port, port_in_use
from deployments.draining import DEFAULT_DRAIN_SECONDS, RUNNER_STOP_GRACE_SECONDS
from ferry import local_server
from ferry.errors import ConfigurationError
from ferry.local_server import LocalServer

PREFECT_START_SECONDS = 90.0
RUNNER_START_SECONDS = 180.0
API_START_SECONDS = 90.0
#: After the drain: time for cancelling what is still running and for the runner to exit.
API_STOP_SECONDS = 15.0
PREFECT_STOP_SECONDS = 30.0

_DB_URL_SETTINGS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


# --- the supervisor ---------------------------------------------------------------------------


class _Stop(Exception):
    """Ctrl-C / SIGTERM arrived while starting: stop what was started."""


@dataclass
class PrefectTarget:
    api_url: str
    ui_url: str
    server: Child | None = None  # the server ferry up started, if it started one
    database: str = ""


class FerryUp:
    """Start the Prefect server (unless one is configured), the runner and the API; stop them in order."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        drain_seconds: float = DEFAULT_DRAIN_SECONDS,
        limit: int | None = 4,
        poll_seconds: float | None = None,
        sync_seconds: float = 10.0,
        say: Callable[[str], None] = print,
    ) -> None:
        from ferry.settings import get_settings

        self.host, self.port = host, port
        self.drain_seconds = max(float(drain_seconds), 0.0)
        self.limit, self.poll_seconds, self.sync_seconds = limit, poll_seconds, sync_seconds
        self.say = say
        self.data_dir = get_settings().data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.prefect: PrefectTarget | None = None
        self.runner: Child | None = None
        self.api: Child | None = None
        self._signals = 0
        self._stop = threading.Event()
        self._workdir: Path | None = None
        self._published: LocalServer | None = None

    # signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        self._stop.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stop

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stop

    # the whole life --------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until Ctrl-C / SIGTERM or until a part dies, stop everything; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        code = 0
        try:
            try:
                self._start()
                self._announce()
                code = self._watch()
            except _Stop:
                pass
            finally:
                self._shutdown()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
        return code

    def _start(self) -> None:
        if port_in_use(self.host, self.port):
            raise ConfigurationError(
                f"Port {self.port} on {self.host} is already in use.", "Stop what listens there, or pick another port with --port."
            )
        self._prepare_store()
        self._check_stop()
        project.prepare_run_environment()  # FERRY_CODE_DIR and the results folder, inherited by every child
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._workdir = Path(tempfile.mkdtemp(prefix="ferry-up-"))
        self.prefect = self._prefect()
        self._check_stop()
        self._start_runner()
        self._publish()
        self._start_api()

    def _prepare_store(self) -> None:
        from ferry.store.engine import get_engine
        from ferry.store.migrate import upgrade

        engine = get_engine()
        upgrade(engine)
        self.say(f"Store ready at {engine.url.render_as_string(hide_password=True)}")

    def _child_env(self) -> dict[str, str]:
        """What the runner and the API inherit: this environment pointed at the Prefect server, telemetry off."""
        assert self.prefect is not None
        env = dict(os.environ)
        env.update(
            PREFECT_API_URL=self.prefect.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            FERRY_DATA_DIR=str(self.data_dir),  # absolute: runs work in FERRY_CODE_DIR, not in this directory
            PYTHONUNBUFFERED="1",
        )
        return env

    # Prefect ---------------------------------------------------------------------------------

    def _prefect(self) -> PrefectTarget:
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url:
            target = PrefectTarget(settings.api.url.rstrip("/"), (settings.ui_url or settings.api.url.removesuffix("/api")).rstrip("/"))
            self.say(f"Using the Prefect server at {target.api_url} (PREFECT_API_URL)")
            self._wait_for_configured_server(target.api_url)
            return target
        return self._start_prefect_server()

    def _wait_for_configured_server(self, api_url: str) -> None:
        from prefect import get_client

        deadline = time.monotonic() + PREFECT_START_SECONDS
        failure: object = None
        while time.monotonic() < deadline:
            try:
                with get_client(sync_client=True) as client:
                    failure = client.api_healthcheck()
            except Exception as exc:  # noqa: BLE001 - not answering yet
                failure = exc
            if failure is None:
                return
            self._sleep(1)
        raise ConfigurationError(
            f"The Prefect server at {api_url} (PREFECT_API_URL) does not answer ({type(failure).__name__}: {failure}).",
            "Start it, or unset PREFECT_API_URL and ferry up starts one.",
        )

    def _start_prefect_server(self) -> PrefectTarget:
        import httpx

        env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env.pop("PREFECT_API_URL", None)
        if any(os.environ.get(name) for name in _DB_URL_SETTINGS):
            database = "PostgreSQL (PREFECT_SERVER_DATABASE_CONNECTION_URL)"
        else:
            home = self.data_dir / "prefect"
            home.mkdir(parents=True, exist_ok=True)
            env["PREFECT_HOME"] = str(home)
            database = f"SQLite under {home}"
        log = self.log_dir / "prefect-server.log"
        failure = ""
        for _attempt in range(2):  # a second port when another process took the first one meanwhile
            port = free_port()
            api_url, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
            env["PREFECT_UI_API_URL"] = api_url
            self.say(f"Starting the Prefect server on 127.0.0.1:{port} ({database}; log {log})")
            with open(log, "ab") as header:
                header.write(f"\n--- ferry up: prefect server start on port {port}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
            server = Child.start("Prefect server", argv, env, log)
            target = PrefectTarget(api_url, ui_url, server, database)
            self.prefect = target  # stopped by _shutdown should anything below fail
            deadline = time.monotonic() + PREFECT_START_SECONDS
            while time.monotonic() < deadline and server.alive():
                try:
                    if httpx.get(f"{api_url}/health", timeout=2).json() is True:
                        return target
                except Exception as exc:  # noqa: BLE001 - not answering yet
                    failure = f"{type(exc).__name__}: {exc}"
                self._sleep(0.5)
            if server.alive():  # running but not answering: another port will not help
                break
            failure = f"it exited with code {server.process.returncode}"
        raise ConfigurationError(
            f"The Prefect server did not start within {PREFECT_START_SECONDS:.0f} s ({failure or 'no answer'}). Its log ({log}):\n"
            + (server.log_tail() or "(empty)"),
        )

    def _publish(self) -> None:
        """Tell the CLI on this machine about the Prefect server started here (and the runner it can wake)."""
        server = self.prefect.server if self.prefect is not None else None
        if server is None or not server.alive():
            return  # a server named by PREFECT_API_URL: the CLI is configured for it the same way
        runner = self.runner.pid if self.runner is not None and self.runner.alive() else None
        self._published = LocalServer(
            api_url=self.prefect.api_url,
            ui_url=self.prefect.ui_url,
            pid=server.pid,
            started=local_server.started_now(),
            supervisor_pid=os.getpid(),
            runner_pid=runner,
            pid_started=local_server.process_start_ticks(server.pid),
        )
        try:
            local_server.publish(self._published, self.data_dir)
        except OSError as exc:
            self._published = None
            self.say(f"Could not write {local_server.state_path(self.data_dir)} ({exc}); the CLI will not find this Prefect server.")

    def _withdraw(self) -> None:
        if self._published is not None:
            with contextlib.suppress(OSError):
                local_server.withdraw(self._published.pid, self.data_dir)
            self._published = None

    # runner and API --------------------------------------------------------------------------

    def _start_runner(self) -> None:
        assert self._workdir is not None
        ready = self._workdir / "runner.ready"
        config = {
            "ready_file": str(ready),
            "drain_seconds": self.drain_seconds,
            "limit": self.limit,
            "poll_seconds": self.poll_seconds,
            "sync_seconds": self.sync_seconds,
        }
        self.say(f"Starting the runner (every Ferry deployment and job, {self.limit or 'unlimited'} runs at a time)")
        self.runner = Child.start("runner", [sys.executable, "-m", "deployments.draining", json.dumps(config)], self._child_env())
        deadline = time.monotonic() + RUNNER_START_SECONDS
        while not ready.exists():
            if not self.runner.alive():
                raise ConfigurationError(f"The runner exited with code {self.runner.process.returncode} while starting (its log is above).")
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"The runner did not poll Prefect for runs within {RUNNER_START_SECONDS:.0f} s (its log is above)."
                )
            self._sleep(0.5)

    def _start_api(self) -> None:
        import httpx

        self.say(f"Starting the HTTP API on {self.host}:{self.port}")
        argv = [sys.executable, "-m", "cli.main", "api", "--host", self.host, "--port", str(self.port)]
        self.api = Child.start("HTTP API", argv, self._child_env())
        health = f"{display_url(self.host, self.port)}/v1/health"
        deadline = time.monotonic() + API_START_SECONDS
        answer = ""
        while True:
            try:
                response = httpx.get(health, timeout=5)
                if response.status_code == 200:
                    return
                answer = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                answer = f"{type(exc).__name__}"
            if not self.api.alive():
                raise ConfigurationError(f"The HTTP API exited with code {self.api.process.returncode} while starting (its log is above).")
            if time.monotonic() > deadline:
                raise ConfigurationError(f"The HTTP API did not report healthy within {API_START_SECONDS:.0f} s (last answer: {answer}).")
            self._sleep(0.5)

    def _announce(self) -> None:
        assert self.prefect is not None
        api = display_url(self.host, self.port)
        self.say("")
        self.say("Ferry is up.")
        self.say(f"  API         {api}")
        self.say(f"  API docs    {api}/docs")
        self.say(f"  Prefect UI  {self.prefect.ui_url}")
        if self.prefect.server is not None:
            self.say(f"  Prefect     {self.prefect.api_url}, started here (pid {self.prefect.server.pid}; {self.prefect.database})")
            if self._published is not None:
                self.say(f"  CLI         ferry commands on this machine (FERRY_DATA_DIR {self.data_dir}) use this Prefect server")
        else:
            self.say(f"  Prefect     {self.prefect.api_url} (PREFECT_API_URL; left running when ferry up stops)")
        self.say(f"  Data        {self.data_dir}")
        self.say(f"Stop with Ctrl-C: runs in progress get {self.drain_seconds:g} s to finish (press Ctrl-C twice to cancel them).")

    def _watch(self) -> int:
        """Until Ctrl-C / SIGTERM (0) or until a part stops by itself (1)."""
        while not self._stop.wait(1.0):
            for child in self._children():
                if not child.alive():
                    self.say(f"The {child.name} stopped unexpectedly (exit code {child.process.returncode}); stopping Ferry.")
                    if child.log is not None:
                        self.say(child.log_tail())
                    return 1
        return 0

    def _children(self) -> list[Child]:
        server = self.prefect.server if self.prefect is not None else None
        return [c for c in (self.runner, self.api, server) if c is not None]

    # stopping --------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self._withdraw()  # from now on, CLI commands no longer pick this server
        if self.runner is not None:
            self._stop_runner(self.runner)
        if self.api is not None:
            self.say("Stopping the HTTP API")
            self.api.stop(API_STOP_SECONDS)
        server = self.prefect.server if self.prefect is not None else None
        if server is not None:
            self.say("Stopping the Prefect server")
            server.stop(PREFECT_STOP_SECONDS)
        if self.runner is not None or server is not None:
            self.say("Ferry stopped.")

    def _stop_runner(self, runner: Child) -> None:
        if runner.alive():
            self.say(f"Stopping: no new runs are taken; runs in progress get up to {self.drain_seconds:g} s to finish")
            runner.signal(signal.SIGTERM)
            signals = self._signals
            deadline = time.monotonic() + self.drain_seconds + RUNNER_STOP_GRACE_SECONDS
            while not runner.wait(min(0.5, max(deadline - time.monotonic(), 0))):
                if time.monotonic() >= deadline:
                    self.say("The runner did not stop in time; killing it and its runs")
                    runner.process.kill()
                    runner.wait(10)
                    break
                if self._signals > signals:  # another Ctrl-C: cancel the runs in progress now
                    signals = self._signals
                    self.say("Cancelling the runs in progress")
                    runner.signal(signal.SIGTERM)
        runner.kill_group()  # run processes, should any outlive the runner


def up(
    host: str = "127.0.0.1",
    port: int = 8000,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    limit: int | None = 4,
    poll_seconds: float | None = None,
    sync_seconds: float = 10.0,
    say: Callable[[str], None] = print,
) -> int:
    """Run Ferry as a service on this machine until Ctrl-C / SIGTERM; the exit code (0: stopped cleanly)."""
    return FerryUp(host, port, drain_seconds, limit, poll_seconds, sync_seconds, say).run()
