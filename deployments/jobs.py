"""Scheduled export jobs: a small service over Prefect deployments (used by the CLI, later the HTTP API).

A job *is* a deployment of the ``export-data`` flow named ``export-data/<job name>``:

* its scope and file options are the deployment's ``request`` parameter (an
  :class:`~ferry.params.ExportRequest`, validated by Prefect on every run);
* its cron schedule and timezone are the deployment's schedule;
* ``active`` is the deployment's paused flag (the UI's toggle);
* its notifications are Prefect automations on the deployment's run states;
* its runs are the deployment's flow runs (see :mod:`ferry.runs`).

Nothing is stored anywhere else, so a job edited in the Prefect UI reads back
here as edited, and a job created here can be run from the UI or the API.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from deployments import project
from deployments.automations import check_notification_blocks, delete_notifications, read_notifications, write_notifications
from deployments.job_model import JOB_OWNED, ExportJob, JobSchedule, JobScope, JobView
from deployments.job_runs import Readiness, list_job_runs, readiness
from ferry.errors import FerryError, InvalidJobError, JobExistsError, JobNotFoundError, ParameterError, Problem
from ferry.params import ExportRequest
from ferry.runs import JobRun, job_run, list_runs, read_record

# --- the service ---------------------------------------------------------------------------


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _export_parameter_schema() -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    from flows.export import export_data

    return parameter_schema(export_data).model_dump()


class JobService:
    """Create, read, change and run export jobs; every call is a few Prefect API requests."""

    # --- reading --------------------------------------------------------------------------

    def _deployment(self, client, ref: str):
        """A job's deployment by job id or name; JobNotFoundError if it is not a job."""
        from prefect.exceptions import ObjectNotFound

        try:
            deployment = (
                client.read_deployment(uuid.UUID(ref)) if _is_uuid(ref) else client.read_deployment_by_name(f"{project.EXPORT_FLOW}/{ref}")
            )
        except ObjectNotFound:
            deployment = None
        if deployment is None or project.JOB_TAG not in (deployment.tags or []):
            raise JobNotFoundError(f"No export job {ref!r} on this Prefect server.", "List the jobs with `ferry jobs list`.")
        return deployment

    def _view(self, client, deployment) -> JobView:
        request = dict((deployment.parameters or {}).get("request") or {})
        try:
            parsed = ExportRequest.model_validate(request)
        except ValidationError as exc:  # edited into something invalid outside Ferry (UI, API)
            raise InvalidJobError(
                f"Job {deployment.name!r} has parameters that no longer validate ({exc.error_count()} problem(s)).",
                f"Fix them with `ferry jobs update {deployment.name} ...` (or in the Prefect UI).",
            ) from None
        data = parsed.model_dump(exclude_defaults=True)
        scope = {k: data.pop(k) for k in list(data) if k in JobScope.model_fields}
        scope.setdefault("workspace", parsed.workspace)
        scope.setdefault("resource", parsed.resource)
        cron = next((s.schedule for s in deployment.schedules or [] if getattr(s.schedule, "cron", None)), None)
        return JobView(
            id=str(deployment.id),
            deployment=f"{project.EXPORT_FLOW}/{deployment.name}",
            name=deployment.name,
            description=deployment.description or None,
            destination=parsed.destination,
            format=parsed.format,
            scope=JobScope(**scope),
            schedule=JobSchedule(cron=cron.cron, timezone=cron.timezone or "UTC") if cron else None,
            compress=parsed.gzip,
            filename_template=parsed.filename,
            incremental=parsed.incremental,
            notifications=read_notifications(client, deployment.id),
            active=not deployment.paused,
            options={k: v for k, v in parsed.model_dump(mode="json", exclude_defaults=True).items() if k not in JOB_OWNED},
            created_at=deployment.created,
            updated_at=deployment.updated,
            next_run_at=None if deployment.paused else _next_run(client, deployment, cron),
        )

    def get(self, ref: str) -> JobView:
        with _client() as client:
            return self._view(client, self._deployment(client, ref))

    def list(self) -> list[JobView]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

        with _client() as client:
            deployments = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[project.JOB_TAG])))
            views = []
            for deployment in sorted(deployments, key=lambda d: d.name):
                try:
                    views.append(self._view(client, deployment))
                except FerryError as exc:  # one job broken outside Ferry must not hide the others
                    logging.getLogger("ferry.jobs").warning("%s", exc)
            return views

    def runs(self, ref: str, limit: int = 50, upcoming: int = 0) -> list[JobRun]:
        """The job's runs, newest first; with ``upcoming``, first that many of those not started yet (scheduled, pending)."""
        problems = [Problem("limit", limit, "must be at least 1")] if limit < 1 else []
        if upcoming < 0:
            problems.append(Problem("upcoming", upcoming, "must be 0 or more"))
        if problems:
            raise ParameterError(problems)
        with _client() as client:
            deployment_id = self._deployment(client, ref).id
            if upcoming:
                return list_job_runs(client, deployment_id, limit, upcoming)
            return list_runs(client, deployment_id, limit)

    def readiness(self, ref: str) -> Readiness:
        """Whether a runner or worker will execute the job's runs now, from Prefect's deployment status, pool and workers."""
        with _client() as client:
            return readiness(client, self._deployment(client, ref))

    # --- writing --------------------------------------------------------------------------

    def create(self, job: ExportJob) -> JobView:
        from prefect.exceptions import ObjectNotFound

        job.validated()
        with _client() as client:
            try:
                client.read_deployment_by_name(f"{project.EXPORT_FLOW}/{job.name}")
            except ObjectNotFound:
                pass
            else:
                raise JobExistsError(
                    f"An export job (or deployment) named {job.name!r} already exists.",
                    "Pick another name, or change it with `ferry jobs update`.",
                )
            deployment_id = self._write(client, job)
            return self._view(client, client.read_deployment(deployment_id))

    def update(self, ref: str, job: ExportJob) -> JobView:
        """Full replace: the job becomes exactly ``job`` (its id and run history stay)."""
        job.validated()
        with _client() as client:
            current = self._deployment(client, ref)
            if current.name != job.name:
                raise ParameterError(
                    [Problem("name", job.name, f"a job cannot be renamed (it is {current.name!r}); create a new job and delete this one")]
                )
            deployment_id = self._write(client, job)
            drop_pending_runs(client, deployment_id, late_only=False)
            return self._view(client, client.read_deployment(deployment_id))

    def _write(self, client, job: ExportJob) -> uuid.UUID:
        """Create or replace (upsert by name) the job's deployment, then its notification automations."""
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule

        project.ensure_work_pool(client)
        check_notification_blocks(client, job)
        schedules = []
        if job.schedule is not None:
            schedules = [
                DeploymentScheduleCreate(schedule=CronSchedule(cron=job.schedule.cron, timezone=job.schedule.timezone), active=True)
            ]
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(project.EXPORT_FLOW),
            name=job.name,
            description=job.description or "",
            parameters=job.parameters(),
            parameter_openapi_schema=_export_parameter_schema(),
            enforce_parameter_schema=True,
            schedules=schedules,
            paused=not job.active,
            tags=[project.FERRY_TAG, project.JOB_TAG],
            work_pool_name=project.WORK_POOL,
            entrypoint=project.EXPORT_ENTRYPOINT,
            pull_steps=project.PULL_STEPS,
        )
        write_notifications(client, deployment_id, job)
        return deployment_id

    def delete(self, ref: str) -> JobView:
        """Delete the job: its deployment, its notification automations and all its flow runs."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            view = self._view(client, deployment)
            client.pause_deployment(deployment.id)  # no new runs while the history goes
            _delete_runs(client, deployment.id)
            delete_notifications(client, deployment.id)
            client.delete_deployment(deployment.id)
            return view

    def pause(self, ref: str) -> JobView:
        """Stop the schedule: no run fires until resume; configuration and history stay."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            client.pause_deployment(deployment.id)
            settle_paused(client, deployment.id)
            return self._view(client, client.read_deployment(deployment.id))

    def resume(self, ref: str) -> JobView:
        """Restart the schedule from its next cron match (runs missed while paused are not made up)."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            drop_pending_runs(client, deployment.id, late_only=True)
            client.resume_deployment(deployment.id)
            return self._view(client, client.read_deployment(deployment.id))

    def run_now(self, ref: str, wait: bool = False, timeout: float | None = None) -> JobRun:
        """Start a run at once (even while paused); with ``wait``, block until it ends and return its record."""
        from prefect.deployments import run_deployment

        job = self.get(ref)
        flow_run = run_deployment(
            job.deployment, timeout=(timeout if wait else 0), poll_interval=1, as_subflow=False, tags=["ferry-run-now"]
        )
        return job_run(flow_run, read_record(flow_run))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def scheduled_runs(client, deployment_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.sorting import FlowRunSort

    from ferry.runs import deployment_filter

    return client.read_flow_runs(
        # PENDING: a runner prefetches runs due within seconds; claimed is not started, so pause drops those too.
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED", "PENDING"]))),
        deployment_filter=deployment_filter(deployment_id),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        limit=200,
    )


def _next_run(client, deployment, cron) -> datetime | None:
    """The schedule's next run: Prefect's earliest scheduled run, or the next cron match before it made one."""
    from zoneinfo import ZoneInfo

    from prefect._vendor.croniter import croniter

    runs = [r for r in scheduled_runs(client, deployment.id) if r.auto_scheduled]
    if runs:
        return runs[0].next_scheduled_start_time or runs[0].expected_start_time
    if cron is None:
        return None
    start = datetime.now(ZoneInfo(cron.timezone or "UTC"))
    return croniter(cron.cron, start).get_next(datetime).astimezone(UTC)


def drop_pending_runs(client, deployment_id, late_only: bool) -> int:
    """Delete the schedule's runs that have not started.

    Prefect's pause leaves runs that are already due ("Late") in place, and a
    runner executes them even for a paused deployment; resuming would also
    replay every run missed meanwhile. Deleting them makes pause stop the
    schedule now and resume restart it from the next cron match. Runs started
    by hand (run-now, the UI's "Quick run") are never touched.
    """
    from prefect.exceptions import ObjectNotFound

    dropped = 0
    now = datetime.now(UTC)
    while True:
        pending = [
            r
            for r in scheduled_runs(client, deployment_id)
            if r.auto_scheduled and (not late_only or (r.next_scheduled_start_time or r.expected_start_time) <= now)
        ]
        if not pending:
            return dropped
        for run in pending:
            try:
                client.delete_flow_run(run.id)
                dropped += 1
            except ObjectNotFound:
                pass
        if late_only or len(pending) < 200:
            return dropped


def settle_paused(client, deployment_id, quiet_checks: int = 2, max_seconds: float = 10.0) -> int:
    """Drop a paused deployment's pending scheduled runs until the scheduler has stopped adding any.

    Prefect's scheduler reads the deployments to schedule, computes their runs,
    then inserts them in a second transaction; an iteration that read the
    deployment just before the pause inserts its runs just after it. So drop,
    look again a second later, and stop after ``quiet_checks`` empty looks.
    ``ferry serve`` also drops stragglers of paused deployments while it runs.
    """
    import time

    dropped, quiet, deadline = 0, 0, time.monotonic() + max_seconds
    while quiet < quiet_checks and time.monotonic() < deadline:
        found = drop_pending_runs(client, deployment_id, late_only=False)
        dropped += found
        quiet = quiet + 1 if found == 0 else 0
        if quiet < quiet_checks:
            time.sleep(1.0)
    return dropped


def _delete_runs(client, deployment_id) -> int:
    from prefect.exceptions import ObjectNotFound

    from ferry.runs import deployment_filter

    deleted = 0
    while True:
        runs = client.read_flow_runs(deployment_filter=deployment_filter(deployment_id), limit=200)
        if not runs:
            return deleted
        for run in runs:
            try:
                client.delete_flow_run(run.id)
                deleted += 1
            except ObjectNotFound:
                pass
