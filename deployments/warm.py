"""Warm run processes for ``ferry serve`` / ``ferry up``: a small job starts in a fraction of a second, not in seconds.

Prefect's runner starts every flow run in a fresh ``python -m prefect.engine``
process, which first imports Prefect and the flow's modules: 2-6 s before the
first line of a 2,000-row import runs, longer than the import itself. Here the
runner keeps one *standby* process that has already done those imports
(``python -m deployments.warm``) and waits for a flow run id on its stdin. A
run taken by the runner is handed to the standby, which then does exactly what
``python -m prefect.engine`` does for it (same environment, same process
handling: the runner tracks, cancels and kills it like any run process), and a
new standby is started for the next run. Each process still runs one flow run
and exits, as before.

:class:`FerryRunner` is Prefect's :class:`~prefect.runner.Runner` with that
starter, and with a wake-up: SIGUSR1 makes it look for runs at once instead of
at its next poll (``ferry export`` / ``ferry import run`` send it to ``ferry
up``'s runner after creating a run: :func:`ferry.local_server.wake_runner`).

The standby is used only when the run's environment is the one it was started
with (Prefect reads its settings at import); otherwise, when it died, or with
``FERRY_WARM_RUNS=0``, a run starts the usual way. A standby older than
``STANDBY_MAX_AGE_SECONDS`` is replaced, so code changed on disk reaches runs
within that time (as it does the runner's other processes after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deployments import project

#: What the standby imports before it waits: Prefect's engine, every flow module a Ferry deployment names, and what
#: their runs import on first use (the modules a 2,000-row export and import added to ``sys.modules``, by package).
PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.concurrency.sync",
    "flows.export",
    "flows.import_",
    "flows.rollback",
    "flows.reissue_url",
    "flows.cleanup",
    "deployments.service",
    "blocks.managed",
    "blocks.local_directory",
    "ferry.sweep",
    "adbc_driver_manager",  # the export's extract (ADBC's statement API)
    "adbc_driver_sqlite",
    "adbc_driver_postgresql",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "pyarrow.json",
    "fastapi.encoders",  # Prefect's parameter serialisation
    "graphviz",
    "opentelemetry.metrics",
)

STANDBY_MAX_AGE_SECONDS = 15 * 60.0
#: ``python -P``: the runner's working directory does not come first on the standby's sys.path (a ``flows``
#: or ``deployments`` folder there is not Ferry's).
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()
#: Variables the runner sets per run (not Prefect settings: read by the engine when it starts).
_PER_RUN = ("PREFECT__",)


def warm_runs_enabled() -> bool:
    return os.environ.get("FERRY_WARM_RUNS", "1").strip().lower() not in ("0", "false", "no", "off")


def _settings_view(env: dict[str, str]) -> dict[str, str]:
    """What a process reads once, at import: Prefect's settings and Ferry's (everything but the per-run variables)."""
    return {k: v for k, v in env.items() if k.startswith(("PREFECT_", "FERRY_")) and not k.startswith(_PER_RUN)}


class Standby:
    """One ``python -m deployments.warm`` process, importing or waiting for its run."""

    def __init__(self, process: Any, env: dict[str, str], cwd: str | None) -> None:
        self.process = process
        self.env = env
        self.cwd = cwd
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.process.returncode is None

    def fits(self, env: dict[str, str], cwd: str | None) -> bool:
        return self.alive() and self.cwd == cwd and _settings_view(self.env) == _settings_view(env)

    async def hand(self, flow_run_id: str, env: dict[str, str], chdir: str | None = None) -> bool:
        """Give it its run (and the folder to work in); False when it can no longer take one."""
        if not self.alive() or self.process.stdin is None:
            return False
        line = json.dumps({"flow_run_id": flow_run_id, "env": env, "chdir": chdir}) + "\n"
        try:
            await self.process.stdin.send(line.encode())
            await self.process.stdin.aclose()
        except Exception:  # noqa: BLE001 - broken pipe: it died meanwhile
            return False
        return True

    async def retire(self) -> None:
        """End it unused: EOF on its stdin (it exits after its imports), then a kill if it lingers."""
        with contextlib.suppress(Exception):
            if self.process.stdin is not None:
                await self.process.stdin.aclose()
        with contextlib.suppress(Exception):
            with _timeout(5):
                await self.process.wait()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await self.process.wait()


@contextlib.contextmanager
def _timeout(seconds: float):
    import anyio

    with anyio.fail_after(seconds):
        yield


class WarmStarter:
    """A Prefect ``ProcessStarter``: hands the run to the runner's standby when it fits, else starts it as Prefect does.

    Wraps the ``EngineCommandStarter`` Prefect's runner chose for the run and
    takes its settings (temporary folder, deployment name, heartbeats, control
    channel), so the run's environment is the one that starter would have given.
    """

    def __init__(self, runner: FerryRunner, fallback: Any) -> None:
        self.runner = runner
        self.fallback = fallback

    def _run_env(self, flow_run, control_env: dict[str, str]) -> dict[str, str]:
        """The environment ``EngineCommandStarter.start`` gives a run process (Prefect 3.8), as a plain dict."""
        from prefect.settings import get_current_settings
        from prefect.utilities.processutils import sanitize_subprocess_env

        starter = self.fallback
        env: dict[str, str | None] = dict(os.environ)
        env.update(starter._env)
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        deployment_name = starter._deployment_name if starter._deployment_name is not None else starter._env.get("PREFECT__DEPLOYMENT_NAME")
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                **({"PREFECT__STORAGE_BASE_PATH": str(starter._tmp_dir)} if starter._tmp_dir is not None else {}),
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                **control_env,
                "PREFECT__DEPLOYMENT_NAME": deployment_name,
                **({"PREFECT__FLOW_ENTRYPOINT": starter._entrypoint} if starter._entrypoint else {}),
                **(
                    {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(int(starter._heartbeat_seconds))}
                    if starter._heartbeat_seconds is not None
                    else {}
                ),
            }
        )
        return sanitize_subprocess_env(env)

    def _cwd(self) -> str | None:
        starter = self.fallback
        cwd = starter._storage.destination if starter._storage is not None else starter._cwd
        return str(cwd) if cwd is not None else None

    async def start(self, flow_run, task_status=None) -> None:
        import anyio
        from prefect.runner._process_manager import ProcessHandle

        task_status = task_status or anyio.TASK_STATUS_IGNORED
        starter = self.fallback
        if starter._command is not None or starter._isolate_process_group or sys.platform == "win32" or not _this_checkout():
            return await starter.start(flow_run, task_status=task_status)
        control_env: dict[str, str] = {}
        registered = False
        channel = starter._control_channel
        if channel is not None:
            try:
                port, token = channel.register(flow_run.id)
                control_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:
                pass  # no control channel: Prefect's kill-only cancellation, as in its own starter
        env, cwd = self._run_env(flow_run, control_env), self._cwd()
        chdir = None
        entrypoint = self.runner.direct_entrypoint(flow_run.deployment_id, env)
        if entrypoint is not None:  # Prefect loads the flow from it, without the deployment's pull step (done here)
            env["PREFECT__FLOW_ENTRYPOINT"], chdir = entrypoint, env[project.CODE_DIR_VARIABLE]
        standby = await self.runner.take_standby(env, cwd)
        if standby is None or not await standby.hand(str(flow_run.id), env, chdir):
            if standby is not None:
                await standby.retire()
            if registered:
                channel.unregister(flow_run.id)  # the fallback registers the run again
            return await starter.start(flow_run, task_status=task_status)
        handed_off = False
        try:
            task_status.started(ProcessHandle(standby.process))
            handed_off = True
            self.runner.replenish_soon()
            await standby.process.wait()
        except BaseException:
            if registered and not handed_off:
                channel.unregister(flow_run.id)
            raise


def _runner_class():
    from prefect.runner import Runner

    class _FerryRunner(Runner):
        """Prefect's Runner, starting runs in a warm standby process, and polling at once on SIGUSR1."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._warm = warm_runs_enabled()
            self._standby: Standby | None = None
            self._standby_lock: asyncio.Lock | None = None
            self._wake_pending = False
            self._waking = False
            self._tasks: set[asyncio.Task] = set()
            self._entrypoints: dict[Any, str] = {}
            _ignore_wakeups()  # until the event loop handles them: a wake-up must never end the process

        # what ferry serve tells it -----------------------------------------------------------

        def tend(self, deployments: list) -> None:
            """Called with Ferry's deployments at each sync: note their direct entrypoints; keep a fresh standby waiting."""
            self._entrypoints = {d.id: e for d in deployments if (e := direct_entrypoint(d)) is not None}
            if self.started:
                self.replenish_soon()

        def direct_entrypoint(self, deployment_id, env: dict[str, str]) -> str | None:
            """``flows.export:export_data`` for a run of a Ferry deployment whose code is the code the standby imported."""
            entrypoint = self._entrypoints.get(deployment_id)
            code_dir = env.get(project.CODE_DIR_VARIABLE)
            if entrypoint is None or not code_dir or Path(code_dir).resolve() != project.PROJECT_ROOT.resolve():
                return None
            return entrypoint

        # starting runs ----------------------------------------------------------------------

        async def __aenter__(self):
            await super().__aenter__()
            poller = getattr(self, "_scheduled_run_poller", None)
            resolve = getattr(poller, "_resolve_starter", None)
            if poller is not None and resolve is not None:
                poller._resolve_starter = self._wrap_resolver(resolve)
                loop = asyncio.get_running_loop()
                with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                    loop.add_signal_handler(signal.SIGUSR1, self.wake)
                if self._warm:
                    self.replenish_soon()
            return self

        async def __aexit__(self, *exc_info: Any) -> None:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            _ignore_wakeups()
            self._warm = False
            try:
                await super().__aexit__(*exc_info)
            finally:
                standby, self._standby = self._standby, None
                if standby is not None:
                    await standby.retire()
                for task in list(self._tasks):
                    task.cancel()

        def _wrap_resolver(self, resolve):
            from prefect.runner._starter_engine import EngineCommandStarter

            def resolve_starter(flow_run):
                starter = resolve(flow_run)
                if self._warm and isinstance(starter, EngineCommandStarter) and _has_engine_fields(starter):
                    return WarmStarter(self, starter)
                return starter

            return resolve_starter

        def _spawn_env(self) -> tuple[dict[str, str], str | None]:
            """A standby's environment: the runner's, as a run would get it, without the per-run variables."""
            from prefect.runner._starter_engine import EngineCommandStarter

            probe = EngineCommandStarter(tmp_dir=self._tmp_dir, heartbeat_seconds=self._heartbeat_seconds)
            env = WarmStarter(self, probe)._run_env(_NoRun, {})
            return {k: v for k, v in env.items() if not k.startswith(_PER_RUN)}, None

        async def _spawn(self) -> Standby | None:
            import anyio

            env, cwd = self._spawn_env()
            try:
                process = await anyio.open_process(
                    [sys.executable, *_SAFE_PATH, "-m", "deployments.warm"],
                    stdin=subprocess.PIPE,
                    stdout=None,
                    stderr=None,
                    env=env,
                    cwd=cwd,
                )
            except OSError as exc:
                self._logger.warning("Could not start a warm run process (%s); runs start the usual way.", exc)
                return None
            return Standby(process, env, cwd)

        async def take_standby(self, env: dict[str, str], cwd: str | None) -> Standby | None:
            """The standby, for a run with ``env`` (it is no longer this runner's), or None: start the run the usual way."""
            async with self._lock():
                standby, self._standby = self._standby, None
            if standby is None:
                return None
            if not standby.fits(env, cwd):
                if standby.alive():
                    changed = sorted(k for k in set(_settings_view(env)) ^ set(_settings_view(standby.env)))
                    changed += sorted(k for k, v in _settings_view(env).items() if standby.env.get(k, v) != v)
                    self._logger.info(
                        "The warm run process was started with other settings (%s); this run starts the usual way.",
                        ", ".join(changed) or f"working directory {cwd}",
                    )
                await standby.retire()
                self.replenish_soon()
                return None
            return standby

        def replenish_soon(self) -> None:
            """Start a new standby in the background (when there is none, or it is too old)."""
            if self._warm:
                self._background(self.replenish())

        async def replenish(self) -> None:
            async with self._lock():
                current = self._standby
                if current is not None and current.alive() and time.monotonic() - current.started < STANDBY_MAX_AGE_SECONDS:
                    return
                self._standby = await self._spawn() if self._warm else None
            if current is not None:
                await current.retire()

        def _lock(self) -> asyncio.Lock:
            if self._standby_lock is None:
                self._standby_lock = asyncio.Lock()
            return self._standby_lock

        def _background(self, coroutine) -> None:
            try:
                task = asyncio.get_running_loop().create_task(coroutine)
            except RuntimeError:
                coroutine.close()
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        # waking up --------------------------------------------------------------------------

        def wake(self) -> None:
            """Look for due runs now (SIGUSR1), besides the regular poll."""
            self._wake_pending = True
            if not self._waking:
                self._background(self._poll_now())

        async def _poll_now(self) -> None:
            poller = getattr(self, "_scheduled_run_poller", None)
            if poller is None or not self.started:
                return
            self._waking = True
            try:
                while self._wake_pending:
                    self._wake_pending = False
                    try:
                        await poller._get_and_submit_flow_runs()
                    except Exception as exc:  # noqa: BLE001 - the regular poll still runs
                        self._logger.debug("Wake-up poll failed: %s", exc)
            finally:
                self._waking = False
            if self._warm:
                self.replenish_soon()

    return _FerryRunner


def _this_checkout() -> bool:
    """Whether runs use the code the standby imports (``FERRY_CODE_DIR`` unset or this checkout)."""
    code_dir = os.environ.get(project.CODE_DIR_VARIABLE)
    return not code_dir or Path(code_dir).resolve() == project.PROJECT_ROOT.resolve()


def _ignore_wakeups() -> None:
    """SIGUSR1 does nothing (its default ends the process), where this thread may set signal handlers.

    A handler, not SIG_IGN: run processes started from here must not inherit an ignored signal.
    """
    with contextlib.suppress(ValueError, AttributeError, OSError):
        signal.signal(signal.SIGUSR1, _no_wakeup)


def _no_wakeup(signum, frame) -> None:
    pass


class _NoRun:
    id = ""


def direct_entrypoint(deployment) -> str | None:
    """The module form of a Ferry deployment's entrypoint (``flows/export.py:export_data`` -> ``flows.export:export_data``).

    Only for a deployment whose one pull step is Ferry's own (``set_working_directory``
    to ``$FERRY_CODE_DIR``): the standby then changes to that folder itself and
    Prefect loads the flow from the entrypoint (``PREFECT__FLOW_ENTRYPOINT``, as
    its runner does for flows it serves from memory), so the run skips reading the
    deployment and running the step, and uses the flow module already imported.
    Anything else (other pull steps, an entrypoint outside this checkout) runs the usual way.
    """
    if list(deployment.pull_steps or []) != project.PULL_STEPS or not deployment.entrypoint:
        return None
    path, _, function = str(deployment.entrypoint).rpartition(":")
    parts = Path(path).parts
    if not function.isidentifier() or not path.endswith(".py") or Path(path).is_absolute() or ".." in parts:
        return None
    if not (project.PROJECT_ROOT / path).is_file() or not all(p.isidentifier() for p in [*parts[:-1], Path(path).stem]):
        return None
    return ".".join([*parts[:-1], Path(path).stem]) + ":" + function


def _has_engine_fields(starter: Any) -> bool:
    names = ("_tmp_dir", "_storage", "_entrypoint", "_command", "_cwd", "_env", "_deployment_name", "_heartbeat_seconds")
    return all(hasattr(starter, name) for name in names + ("_control_channel", "_isolate_process_group"))


def FerryRunner(*args: Any, **kwargs: Any):  # a class, built on first use: the standby process needs no prefect.runner
    """A :class:`prefect.runner.Runner` with warm run processes and a SIGUSR1 wake-up (see the module's docstring)."""
    global _FERRY_RUNNER
    if _FERRY_RUNNER is None:
        _FERRY_RUNNER = _runner_class()
    return _FERRY_RUNNER(*args, **kwargs)


_FERRY_RUNNER = None


# --- the standby process: ``python -m deployments.warm`` ----------------------------------------


def standby_main() -> int:
    """Import what a run needs, wait for the run's id and environment on stdin, then be ``python -m prefect.engine``."""
    import importlib
    import runpy

    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the engine imports (and reports) it again when the run needs it
            pass
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # retired unused, or the runner is gone
    job = json.loads(line)
    environ = job.get("env") or {}
    for key in [k for k in os.environ if k.startswith(_PER_RUN) and k not in environ]:
        del os.environ[key]
    os.environ.update({str(k): str(v) for k, v in environ.items()})
    if job.get("chdir"):
        os.chdir(job["chdir"])  # what the deployment's pull step does (set_working_directory)
    sys.argv = ["prefect.engine", str(job["flow_run_id"])]
    sys.modules.pop("prefect.engine", None)  # run as __main__, as `python -m prefect.engine` does (its imports stay loaded)
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    from ferry.lifelines import exit_without_teardown

    try:
        _code: object = standby_main()
    except SystemExit as _exit:  # the engine's own exit codes
        _code = _exit.code
    exit_without_teardown(_code)  # its runner slot is free as soon as the run is over
    sys.exit(_code)
