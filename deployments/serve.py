"""``ferry serve`` (one process runs every Ferry deployment) and ``ferry worker`` (many machines).

``ferry serve`` is Prefect's serve - a :class:`prefect.runner.Runner` polling
the API for due runs and starting each in a subprocess - with three changes
that make it safe to restart:

* it never re-applies the export jobs' deployments, so their schedules,
  parameters and *paused* flags stay as the job service (or the UI) left them;
  plain ``serve()`` rewrites all of them from code at every start;
* it does not pause its deployments when it stops (``pause_on_shutdown=False``),
  so a restart or a crash does not silently turn every job off;
* it keeps discovering: jobs created while it runs are picked up within
  ``sync_seconds``, without a restart;
* its runs send Prefect's flow-run heartbeats, and it sweeps what a kill -9
  leaves (runs left Running, spool folders: :mod:`ferry.sweep`) at start-up
  and every ``SWEEP_SECONDS``.

The deployments declared in ``prefect.yaml`` are (re)applied at start from the
file, as ``prefect deploy --all`` would, except that a deployment paused in the
UI stays paused. Everything lives in the ``ferry`` process work pool, so the same
deployments are served by ``ferry worker`` processes on other hosts when one
machine is no longer enough: stop ``ferry serve``, start workers, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments import project
from ferry.errors import ConfigurationError
from ferry.sweep import HEARTBEAT_SECONDS, SWEEP_SECONDS, log_sweep, sweep


@dataclass
class ProjectDeployment:
    """One entry of ``prefect.yaml``'s ``deployments:``."""

    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    work_pool: str = project.WORK_POOL
    pull_steps: list[dict[str, Any]] = field(default_factory=lambda: list(project.PULL_STEPS))
    enforce_parameter_schema: bool = True

    @property
    def flow_file(self) -> Path:
        return project.PROJECT_ROOT / self.entrypoint.partition(":")[0]

    def load_flow(self):
        """Import the flow the entrypoint names (from this checkout, whatever the working directory)."""
        from prefect.flows import load_flow_from_entrypoint

        path, _, function = self.entrypoint.partition(":")
        return load_flow_from_entrypoint(f"{project.PROJECT_ROOT / path}:{function}")


def load_project_deployments(path: Path = project.PREFECT_YAML) -> list[ProjectDeployment]:
    """The deployments ``prefect.yaml`` declares (YAML anchors resolved by the parser)."""
    import yaml

    document = yaml.safe_load(path.read_text()) or {}
    pull = document.get("pull") or list(project.PULL_STEPS)
    deployments = []
    for entry in document.get("deployments") or []:
        pool = (entry.get("work_pool") or {}).get("name") or project.WORK_POOL
        deployments.append(
            ProjectDeployment(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                description=entry.get("description") or "",
                tags=list(entry.get("tags") or []),
                parameters=dict(entry.get("parameters") or {}),
                schedules=list(entry.get("schedules") or []),
                work_pool=pool,
                pull_steps=entry.get("pull") or pull,
                enforce_parameter_schema=entry.get("enforce_parameter_schema", True),
            )
        )
    return deployments


def schedule_create(spec: dict[str, Any]):
    """A ``schedules:`` entry of prefect.yaml as a DeploymentScheduleCreate (cron / interval / rrule + timezone)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import construct_schedule

    schedule = construct_schedule(
        cron=spec.get("cron"),
        interval=spec.get("interval"),
        rrule=spec.get("rrule"),
        anchor_date=spec.get("anchor_date"),
        timezone=spec.get("timezone"),
    )
    return DeploymentScheduleCreate(schedule=schedule, active=spec.get("active", True), parameters=spec.get("parameters") or {})


def apply_project_deployments(client, deployments: list[ProjectDeployment] | None = None) -> dict[str, uuid.UUID]:
    """Create or refresh prefect.yaml's deployments (sync client), keeping each one's paused flag."""
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.callables import parameter_schema

    ids: dict[str, uuid.UUID] = {}
    pools_seen: set[str] = set()
    for spec in deployments if deployments is not None else load_project_deployments():
        if spec.work_pool not in pools_seen:
            project.ensure_work_pool(client, spec.work_pool)
            pools_seen.add(spec.work_pool)
        flow = spec.load_flow()
        full_name = f"{flow.name}/{spec.name}"
        try:
            paused = client.read_deployment_by_name(full_name).paused
        except ObjectNotFound:
            paused = False
        ids[full_name] = client.create_deployment(
            flow_id=client.create_flow_from_name(flow.name),
            name=spec.name,
            description=spec.description,
            parameters=spec.parameters,
            parameter_openapi_schema=parameter_schema(flow).model_dump(),
            enforce_parameter_schema=spec.enforce_parameter_schema,
            schedules=[schedule_create(s) for s in spec.schedules],
            paused=paused,
            tags=sorted(set(spec.tags) | {project.FERRY_TAG}),
            work_pool_name=spec.work_pool,
            entrypoint=spec.entrypoint,
            pull_steps=spec.pull_steps,
        )
    return ids


async def ferry_deployments(client) -> list:
    """Every deployment Ferry manages on the server (tag ``ferry``): prefect.yaml's and the jobs."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    return await client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[project.FERRY_TAG])))


class FerryServe:
    """A Prefect Runner serving every Ferry deployment, discovering new jobs as they appear."""

    def __init__(
        self, limit: int | None = 4, sync_seconds: float = 10.0, poll_seconds: float | None = None, name: str | None = None
    ) -> None:
        from deployments.warm import FerryRunner

        self.runner = FerryRunner(  # Prefect's Runner with warm run processes and a SIGUSR1 wake-up (deployments/warm.py)
            name=name or f"ferry-serve-{socket.gethostname()}",
            pause_on_shutdown=False,
            limit=limit,
            query_seconds=poll_seconds,
            heartbeat_seconds=HEARTBEAT_SECONDS,  # what ferry.sweep tells dead runs by
        )
        # The Runner keeps the deployments it polls for in a registry; ``add_deployment`` would also
        # re-apply (rewrite) each one, which is exactly what must not happen to jobs. Registering the
        # ids is all polling needs: each run then loads its flow through the deployment's pull step.
        self._registry = getattr(self.runner, "_deployment_registry", None)
        if self._registry is None or not hasattr(self._registry, "register_deployment"):
            raise ConfigurationError(
                "This Prefect version's Runner has no deployment registry; ferry serve needs Prefect 3.8.",
                "Install the Prefect version pyproject.toml pins, or use `ferry worker`.",
            )
        self.sync_seconds = sync_seconds
        self.served: dict[uuid.UUID, str] = {}
        self._next_sweep = 0.0

    async def sweep_if_due(self) -> None:
        """Every SWEEP_SECONDS: runs of dead processes marked Crashed, orphaned spool folders removed."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_sweep:
            return
        self._next_sweep = loop.time() + SWEEP_SECONDS
        log_sweep(await asyncio.to_thread(sweep), self.runner._logger.warning)

    async def discover(self) -> list[str]:
        """Register deployments not served yet; returns their names."""
        from prefect import get_client

        async with get_client() as client:
            found = await ferry_deployments(client)
            flows = {f.id: f.name for f in await client.read_flows()} if found else {}
        await self.sweep_if_due()
        tend = getattr(self.runner, "tend", None)
        if tend is not None:
            tend(found)  # warm run processes: how each deployment's flow loads, and a fresh one waiting (deployments/warm.py)
        new = []
        paused_jobs = [d.id for d in found if d.paused and project.JOB_TAG in (d.tags or [])]
        if paused_jobs:
            await asyncio.to_thread(self._drop_stragglers, paused_jobs)
        for deployment in found:
            if deployment.id not in self.served:
                name = f"{flows.get(deployment.flow_id, '?')}/{deployment.name}"
                self._registry.register_deployment(deployment.id, deployment.name)
                self.served[deployment.id] = name
                new.append(name)
        return new

    @staticmethod
    def _drop_stragglers(deployment_ids: list) -> None:
        """Scheduled runs of paused jobs that Prefect's scheduler inserted while the pause happened."""
        from prefect import get_client

        from deployments.jobs import drop_pending_runs

        with get_client(sync_client=True) as client:
            for deployment_id in deployment_ids:
                drop_pending_runs(client, deployment_id, late_only=False)

    async def run(self) -> None:
        logger = self.runner._logger
        for name in await self.discover():
            logger.info("Serving %s", name)
        runner_task = asyncio.ensure_future(self.runner.start())
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        await asyncio.sleep(0)  # let Runner.start install its own SIGTERM handler, then replace it
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            while not stop.is_set() and not runner_task.done():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.sync_seconds)
                except TimeoutError:
                    pass
                if not stop.is_set():
                    try:
                        for name in await self.discover():
                            logger.info("Serving %s", name)
                    except Exception as exc:  # noqa: BLE001 - a blip of the API must not stop the runs in progress
                        logger.warning("Could not list Ferry's deployments (%s); retrying in %ss", exc, self.sync_seconds)
        finally:
            logger.info("Stopping: runs in progress are cancelled (their history says so); schedules stay as they are.")
            if self.runner.started:
                try:  # marks in-flight runs Cancelled, then ends the runner's loops
                    await asyncio.wait_for(self.runner.astop(), timeout=60)
                except Exception as exc:  # noqa: BLE001 - shutting down anyway
                    logger.warning("Runner did not stop cleanly: %s", exc)
            try:
                await asyncio.wait_for(runner_task, timeout=60)
            except (asyncio.CancelledError, TimeoutError, Exception):  # noqa: BLE001 - shutting down
                runner_task.cancel()
        if runner_task.done() and not runner_task.cancelled() and runner_task.exception():
            raise runner_task.exception()


def serve(limit: int | None = 4, sync_seconds: float = 10.0, deploy: bool = True, poll_seconds: float | None = None) -> None:
    """Apply prefect.yaml's deployments (unless ``deploy`` is False), then serve every Ferry deployment."""
    from prefect import get_client

    project.prepare_run_environment()
    if deploy:
        with get_client(sync_client=True) as client:
            apply_project_deployments(client)
    asyncio.run(FerryServe(limit=limit, sync_seconds=sync_seconds, poll_seconds=poll_seconds).run())


def worker_command(pool: str = project.WORK_POOL, limit: int | None = None, name: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    if limit:
        command += ["--limit", str(limit)]
    if name:
        command += ["--name", name]
    return command


def worker(pool: str = project.WORK_POOL, limit: int | None = None, name: str | None = None, deploy: bool = False) -> None:
    """Become ``prefect worker start --pool POOL --type process`` with Ferry's run environment."""
    from prefect import get_client

    project.prepare_run_environment()
    with get_client(sync_client=True) as client:
        project.ensure_work_pool(client, pool)
        if deploy:
            apply_project_deployments(client)
    log_sweep(sweep(), print)
    # Prefect's flow-run heartbeats, inherited by every run process the worker starts (see ferry.sweep)
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    command = worker_command(pool, limit, name)
    os.execv(command[0], command)
