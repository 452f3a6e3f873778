"""A job's runs to come as well as its history, and whether anything will execute them, from what Prefect knows.

* :func:`list_job_runs`: the runs Prefect holds for the job's deployment that
  have not started (``SCHEDULED``, ``PENDING``: a run started with run-now sits
  there, "Late", while nothing executes runs) as well as its history, newest
  first, each with the time Prefect expects to start it.
* :func:`readiness`: whether a runner (``ferry serve``) or a worker (``ferry
  worker``) is there to execute a run of the job. Read from Prefect's own
  bookkeeping: the deployment's status (``READY`` once a runner or worker polled
  for its runs within the server's timeout, ``NOT_READY`` otherwise), the work
  pool's online workers and whether the pool is paused, and - for a job just
  created, which a running ``ferry serve`` has not polled yet - whether that
  ``ferry serve`` polls ``export-data/default``, which it always serves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from deployments import project
from ferry.runs import JobRun, deployment_filter, history_filter, job_run, read_record

#: Prefect states of a run that has not started, and of one that has.
UPCOMING_STATES = ["SCHEDULED", "PENDING"]
STARTED_STATES = ["RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED", "CRASHED", "CANCELLED"]


class JobRunView(JobRun):
    """A run of a job, also one that has not started: ``scheduled`` (waiting for its time, or for something to run it) or ``pending``."""

    status: Literal["scheduled", "pending", "running", "success", "failed"]
    scheduled_at: datetime | None = Field(default=None, description="When Prefect expects (or expected) the run to start.")
    late: bool = Field(default=False, description="Not started although its time has passed (what Prefect names Late).")


def _view(flow_run, now: datetime) -> JobRunView:
    scheduled_at = flow_run.next_scheduled_start_time or flow_run.expected_start_time
    state = flow_run.state.type.value if flow_run.state else "PENDING"
    if state in UPCOMING_STATES:
        base = job_run(flow_run)
        status = "scheduled" if state == "SCHEDULED" else "pending"
        late = status == "scheduled" and (
            (flow_run.state is not None and flow_run.state.name == "Late")  # marked by the server's late-runs service
            or (scheduled_at is not None and now - scheduled_at > _late_after())  # as that service will, when it runs
        )
        return JobRunView(**{**base.model_dump(), "status": status, "scheduled_at": scheduled_at, "late": late})
    base = job_run(flow_run, read_record(flow_run))
    return JobRunView(**{**base.model_dump(), "scheduled_at": scheduled_at})


def _late_after() -> timedelta:
    """How long past its scheduled time Prefect's server calls a run that has not started Late."""
    from prefect.settings import get_current_settings

    return get_current_settings().server.services.late_runs.after_seconds


def list_job_runs(client, deployment_id: uuid.UUID | str, limit: int = 50, upcoming: int = 5) -> list[JobRunView]:
    """The job's runs newest first: the ``upcoming`` soonest that have not started, then its history; at most ``limit``."""
    from prefect.client.schemas.sorting import FlowRunSort

    now = datetime.now(UTC)
    waiting = []
    if upcoming > 0:
        waiting = client.read_flow_runs(
            flow_run_filter=history_filter(UPCOMING_STATES),
            deployment_filter=deployment_filter(deployment_id),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=min(upcoming, limit),
        )
    history = client.read_flow_runs(
        flow_run_filter=history_filter(STARTED_STATES),
        deployment_filter=deployment_filter(deployment_id),
        sort=FlowRunSort.START_TIME_DESC,
        limit=max(limit - len(waiting), 0),
    )
    return [_view(run, now) for run in reversed(waiting)] + [_view(run, now) for run in history]


# --- is anything there to execute the runs? ----------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """Whether a runner or worker will execute the job's runs, and if not, what Prefect shows and what to do."""

    ready: bool
    reason: str = ""
    hint: str = ""
    last_polled: datetime | None = None

    def message(self) -> str:
        return f"{self.reason} {self.hint}".strip()


def _poll_timeout() -> timedelta:
    """How long after its last poll Prefect's server still counts a deployment READY (its foreman's timeout)."""
    from prefect.settings import get_current_settings

    return timedelta(seconds=get_current_settings().server.services.foreman.deployment_last_polled_timeout_seconds)


def _polled_recently(deployment, now: datetime) -> bool:
    from prefect.client.schemas.objects import DeploymentStatus

    if deployment.status != DeploymentStatus.READY:
        return False
    # READY stays until the server's foreman service marks it otherwise; without that service, judge by last_polled.
    return deployment.last_polled is not None and now - deployment.last_polled <= _poll_timeout() * 2


def readiness(client, deployment) -> Readiness:
    """Will anything execute a run of ``deployment`` (a job's)? From Prefect's deployment status, work pool and workers."""
    from prefect.client.schemas.objects import WorkerStatus
    from prefect.exceptions import ObjectNotFound

    now = datetime.now(UTC)
    name = f"{project.EXPORT_FLOW}/{deployment.name}"
    pool_name = deployment.work_pool_name or project.WORK_POOL
    if _polled_recently(deployment, now):
        return Readiness(True, last_polled=deployment.last_polled)
    try:
        pool = client.read_work_pool(pool_name)
    except ObjectNotFound:
        pool = None
    online = []
    if pool is not None and not pool.is_paused:
        online = [w for w in client.read_workers_for_work_pool(pool_name) if w.status == WorkerStatus.ONLINE]
    if online:  # a worker polls the pool: it takes the run at its next poll (the deployment's status follows)
        return Readiness(True, last_polled=deployment.last_polled)
    try:
        default = client.read_deployment_by_name(project.ADHOC_EXPORT_DEPLOYMENT)
    except ObjectNotFound:
        default = None
    if default is not None and default.id != deployment.id and _polled_recently(default, now):
        # `ferry serve` polls export-data/default (prefect.yaml's) and serves a job created meanwhile within its sync interval.
        return Readiness(True, last_polled=deployment.last_polled)
    since = f"since {deployment.last_polled.astimezone(UTC).isoformat(timespec='seconds')}" if deployment.last_polled else "yet"
    paused = f" (work pool {pool_name!r} is paused)" if pool is not None and pool.is_paused else ""
    return Readiness(
        False,
        reason=f"Nothing is executing runs of {name}: no `ferry serve` or worker has polled for them {since}{paused}, "
        "so Prefect shows the deployment NOT_READY and the run waits, Scheduled (then Late).",
        hint=f"Start `ferry serve` (or `ferry worker` / `prefect worker start --pool {pool_name}`) against this Prefect server"
        + (f" and resume the pool (`prefect work-pool resume {pool_name}`)" if paused else "")
        + "; the run starts once one polls.",
        last_polled=deployment.last_polled,
    )
