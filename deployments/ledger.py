"""The run ledger: export runs read back from Prefect's flow runs and their persisted run records.

A run's facts come from two places Prefect already keeps: the flow run (state,
start and end times, the message of a crash) and the export flow's persisted
return value, an :class:`~ferry.records.ExportRecord` (rows, bytes, file, error).
A run whose record cannot be read (crashed, cancelled, result storage not
reachable from here) is still listed, from the flow run alone.

The cursor of an incremental job lives here too: it is the ``started_at`` of
the job's last successful run record, so nothing but Prefect's history has to
be kept in step with the data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ferry.records import ExportRecord

RunStatus = Literal["running", "success", "failed"]

#: Prefect state types shown as runs. SCHEDULED runs have not started: they are
#: upcoming runs (``ferry jobs show`` gives the next one), not history.
_STATUS_BY_STATE: dict[str, RunStatus] = {
    "PENDING": "running",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELLING": "running",
    "COMPLETED": "success",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "failed",
}


class JobRun(BaseModel):
    """One run of a job. JSON names (``--json``, the HTTP API) are the contract: camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str = Field(description="The Prefect flow run id.")
    job_id: str = Field(description="The job (Prefect deployment) id.")
    status: RunStatus
    started_at: datetime | None = None
    completed_at: datetime | None = None
    record_count: int | None = Field(default=None, description="Rows exported; null when the run left no record.")
    file_size: int | None = Field(default=None, description="Bytes delivered; null when the run left no record.")
    destination_path: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def read_record(flow_run) -> ExportRecord | None:
    """The run record persisted by a finished export run, or None (unfinished, crashed, unreadable)."""
    state = flow_run.state
    if state is None or not (state.is_completed() or state.is_failed()):
        return None
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - missing/unreadable result storage: fall back to the flow run's own facts
        return None
    if isinstance(result, ExportRecord):
        return result
    if isinstance(result, dict) and {"run_id", "status", "started_at"} <= result.keys():
        try:
            return ExportRecord.model_validate(result)
        except ValueError:
            return None
    return None


def job_run(flow_run, record: ExportRecord | None = None) -> JobRun:
    """A flow run (and its record, when readable) as a :class:`JobRun`."""
    state_type = flow_run.state.type.value if flow_run.state else "PENDING"
    status = _STATUS_BY_STATE.get(state_type, "running")
    if record is not None and status != "running":
        status = record.status
    error = None
    if status == "failed":
        error = (record.error if record is not None else None) or (flow_run.state.message if flow_run.state else None) \
            or f"run ended {flow_run.state.name if flow_run.state else 'without a state'}"
    return JobRun(
        id=str(flow_run.id),
        job_id=str(flow_run.deployment_id) if flow_run.deployment_id else "",
        status=status,
        started_at=flow_run.start_time or (record.started_at if record else None),
        completed_at=flow_run.end_time or (record.completed_at if record else None),
        record_count=record.record_count if record else None,
        file_size=record.file_size if record else None,
        destination_path=record.destination_path if record else None,
        error=error,
    )


def _history_filter(states: list[str]):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType

    return FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)))


def _deployment_filter(deployment_id: uuid.UUID | str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(str(deployment_id))]))


def list_runs(client, deployment_id: uuid.UUID | str, limit: int = 50) -> list[JobRun]:
    """The job's runs, newest first (by start time; runs not yet started by expected start)."""
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=_history_filter(list(_STATUS_BY_STATE)),
        deployment_filter=_deployment_filter(deployment_id),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    return [job_run(run, read_record(run)) for run in runs]


def last_successful_record(client, deployment_id: uuid.UUID | str, exclude: str | None = None,
                           scan: int = 20) -> ExportRecord | None:
    """The record of the deployment's newest run that exported successfully (the incremental cursor)."""
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=_history_filter(["COMPLETED"]),
        deployment_filter=_deployment_filter(deployment_id),
        sort=FlowRunSort.START_TIME_DESC,
        limit=scan,
    )
    for run in runs:
        if exclude and str(run.id) == exclude:
            continue
        record = read_record(run)
        if record is not None and record.status == "success":
            return record
    return None


def resolve_incremental(request):
    """For an incremental run of a deployment: ``since`` = start of the deployment's last successful run.

    Called by the extract task at run time, so the cursor is whatever the ledger
    says when the run starts (a failed run moves nothing: the next run covers its
    rows too). Windows overlap by the previous run's own duration: a row changed
    while that run was extracting is shipped again - at least once, never lost.
    A first run, or an incremental request outside any deployment, exports
    everything.
    """
    from prefect import get_client
    from prefect.logging import get_run_logger
    from prefect.runtime import deployment, flow_run

    if not request.incremental or request.since is not None:
        return request
    logger = get_run_logger()
    deployment_id = deployment.id
    if not deployment_id:
        logger.info("Incremental export outside a deployment: no run history to continue from, exporting all rows.")
        return request
    with get_client(sync_client=True) as client:
        record = last_successful_record(client, deployment_id, exclude=flow_run.id)
    if record is None:
        logger.info("Incremental export: first successful run of this job, exporting all rows.")
        return request
    logger.info("Incremental export: rows created or changed since %s (start of run %s).",
                record.started_at.isoformat(), record.run_id)
    return request.model_copy(update={"since": record.started_at})
