"""The run ledger: Ferry's runs read back from Prefect's flow runs and their persisted run records.

Prefect's run history is Ferry's only job and run ledger; this module is the
one place that reads it. A run's facts come from two places Prefect already
keeps: the flow run (state, start and end times, the message of a crash) and
the flow's persisted return value, a run record of :mod:`ferry.records`
(rows, bytes, file, error). A run whose record cannot be read (crashed,
cancelled, result storage not reachable from here) is still listed, from the
flow run alone.

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

from ferry.errors import ParameterError, Problem, RunFailedError, RunNotFoundError, RunStateError
from ferry.records import ExportRecord, ImportRecord

EXPORT_FLOW = "export-data"
IMPORT_FLOW = "import-data"

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


def persisted_result(state) -> Any:
    """A finished run's persisted return value (a failed run's record too), or None (unfinished, crashed, unreadable)."""
    if state is None or not (state.is_completed() or state.is_failed()):
        return None
    try:
        return run_result(state)
    except Exception:  # noqa: BLE001 - missing/unreadable result storage: fall back to the flow run's own facts
        return None


def run_result(state) -> Any:
    """What a final state holds: the flow's return value, a failed run's record (out of its RunFailedError), or the error."""
    result = state.result(raise_on_failure=False)
    return result.record if isinstance(result, RunFailedError) and result.record is not None else result


def read_record(flow_run, model: type[BaseModel] = ExportRecord):
    """The run record (an ``ExportRecord`` by default) persisted by a finished run, or None."""
    result = persisted_result(flow_run.state)
    if isinstance(result, model):
        return result
    if isinstance(result, dict) and {"run_id", "status", "started_at"} <= result.keys():
        try:
            return model.model_validate(result)
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
        error = (
            (record.error if record is not None else None)
            or (flow_run.state.message if flow_run.state else None)
            or f"run ended {flow_run.state.name if flow_run.state else 'without a state'}"
        )
    return JobRun(
        id=str(flow_run.id),
        job_id=str(flow_run.deployment_id) if flow_run.deployment_id else "",
        status=status,
        # The record's own times first: a run recorded from elsewhere (POST /v1/export-jobs/{id}/runs) carries
        # when it really ran, while Prefect stamps the moment it was recorded.
        started_at=(record.started_at if record else None) or flow_run.start_time,
        completed_at=(record.completed_at if record else None) or flow_run.end_time,
        record_count=record.record_count if record else None,
        file_size=record.file_size if record else None,
        destination_path=record.destination_path if record else None,
        error=error,
    )


def history_filter(states: list[str]):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType

    return FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)))


def deployment_filter(deployment_id: uuid.UUID | str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(str(deployment_id))]))


def list_runs(client, deployment_id: uuid.UUID | str, limit: int = 50) -> list[JobRun]:
    """The job's runs, newest first (by start time; runs not yet started by expected start)."""
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=history_filter(list(_STATUS_BY_STATE)),
        deployment_filter=deployment_filter(deployment_id),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    return [job_run(run, read_record(run)) for run in runs]


def last_successful_record(client, deployment_id: uuid.UUID | str, exclude: str | None = None, scan: int = 20) -> ExportRecord | None:
    """The record of the deployment's newest run that exported successfully (the incremental cursor)."""
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=history_filter(["COMPLETED"]),
        deployment_filter=deployment_filter(deployment_id),
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


def incremental_cursor(deployment_id: str | None, run_id: str | None) -> ExportRecord | None:
    """The last successful run record of the deployment, other than ``run_id``: an incremental run's cursor.

    Read when the run starts, so the cursor is whatever the ledger says then (a
    failed run moves nothing: the next run covers its rows too). None for a
    first run, or outside any deployment.
    """
    from prefect import get_client

    if not deployment_id:
        return None
    with get_client(sync_client=True) as client:
        return last_successful_record(client, deployment_id, exclude=run_id)


# --- any run by id ------------------------------------------------------------------------


def _record_json(state) -> Any:
    """The run's persisted return value as JSON (an ExportRecord, ImportRecord, report ...), or None."""
    result = persisted_result(state)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, BaseException) or result is None:
        return None
    if isinstance(result, (dict, list, str, int, float, bool)):
        return result
    return repr(result)


def _import_record_json(flow_run) -> dict | None:
    record = import_record_of(flow_run)
    return record.model_dump(mode="json") if record is not None else None


def _flow_run_id(run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        raise ParameterError([Problem("run_id", run_id, "not a run id (a UUID, as `ferry jobs runs` prints)")]) from None


def _read_flow_run(client, run_id: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_flow_run(_flow_run_id(run_id))
    except ObjectNotFound:
        raise RunNotFoundError(
            f"No run {run_id} in this Prefect server's history.", "Check the id, and that PREFECT_API_URL points at the server that ran it."
        ) from None


def read_run(run_id: str) -> dict[str, Any]:
    """``{"run": ..., "record": ..., "artifacts": [...]}`` for flow run ``run_id`` (``ferry runs show``)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        flow_run = _read_flow_run(client, run_id)
        flow = client.read_flow(flow_run.flow_id)
        deployment = None
        if flow_run.deployment_id:
            try:
                deployment = f"{flow.name}/{client.read_deployment(flow_run.deployment_id).name}"
            except ObjectNotFound:
                deployment = None
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
        state = flow_run.state
        return {
            "run": {
                "id": str(flow_run.id),
                "name": flow_run.name,
                "flow": flow.name,
                "deployment": deployment,
                "deploymentId": str(flow_run.deployment_id) if flow_run.deployment_id else None,
                "state": state.name if state else None,
                "message": state.message if state else None,
                "startedAt": flow_run.start_time.isoformat() if flow_run.start_time else None,
                "completedAt": flow_run.end_time.isoformat() if flow_run.end_time else None,
                "parameters": flow_run.parameters,
                "tags": flow_run.tags,
            },
            "record": _record_json(state) if flow.name != IMPORT_FLOW else _import_record_json(flow_run),
            "artifacts": [
                {
                    "key": a.key,
                    "type": a.type,
                    "description": a.description,
                    "data": a.data,
                    "createdAt": a.created.isoformat() if a.created else None,
                }
                for a in sorted(artifacts, key=lambda a: a.created or 0)
                if a.type not in (None, "result")  # Prefect's own result-metadata artifact, not Ferry's
            ],
        }


def read_export_run(run_id: str) -> tuple[ExportRecord, dict]:
    """The record and parameters of finished export run ``run_id``, or an error saying why not."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = _read_flow_run(client, run_id)
        flow_name = client.read_flow(run.flow_id).name
    if flow_name != EXPORT_FLOW:
        raise RunNotFoundError(f"Run {run_id} is a {flow_name!r} run, not an export.", "Give the id of an export-data run.")
    if run.state is None or not run.state.is_final():
        raise RunStateError(
            f"Export run {run_id} has not finished ({run.state.name if run.state else 'no state'}).",
            "Wait for it to finish, then ask again.",
        )
    try:
        record = run_result(run.state)
    except Exception as exc:  # noqa: BLE001 - missing or unreadable result storage: say what to check
        raise RunStateError(
            f"The record of export run {run_id} cannot be read back ({type(exc).__name__}).",
            "Results must live in storage this process can read: run on the machine that ran the export, "
            "or configure shared result storage (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK).",
        ) from None
    if not isinstance(record, ExportRecord):
        raise RunStateError(f"Export run {run_id} left no run record (it ended {run.state.name}).", "Run the export again.")
    return record, dict(run.parameters or {})


# --- import history -----------------------------------------------------------------------


def import_history(resource: str, workspace: str | None = None, limit: int = 20) -> list[ImportRecord]:
    """The import runs of ``resource`` in this store, newest first, each once, with their result records.

    Prefect selects them by tag (``ferry.run_tags``): runs of this store, this
    resource and (when given) this workspace, ``limit`` of them, so the history
    reads no more runs than it shows. A run handed off to a deployment run is
    shown as that run.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    from ferry.catalog import get_resource
    from ferry.run_tags import import_tags

    store, resource_tag, workspace_tag = import_tags(workspace or "", get_resource(resource).slug)
    tags = [store, resource_tag] + ([workspace_tag] if workspace is not None else [])
    runs: list = []
    with get_client(sync_client=True) as client:
        while len(runs) < limit:  # Prefect answers at most PAGE runs a request
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[IMPORT_FLOW])),
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=tags)),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=min(PAGE, limit - len(runs)),
                offset=len(runs),
            )
            runs += page
            if len(page) < PAGE:
                break
    return [record for record in map(import_record_of, runs) if record is not None]


#: The most flow runs Prefect's API returns for one filter request.
PAGE = 200


def import_record_of(run) -> ImportRecord | None:
    """The import run's record as it stands now: ``rolled_back`` once a rollback undid it; from the run alone when unreadable."""
    from ferry.run_tags import ROLLED_BACK

    record = read_record(run, ImportRecord) or _unrecorded_import(run)
    if record is not None and ROLLED_BACK in (run.tags or []):
        record = record.model_copy(update={"status": "rolled_back"})
    return record


def _unrecorded_import(run) -> ImportRecord | None:
    """A record made from the flow run itself: not finished yet (``submitted``), or ended with no readable record."""
    params = (run.parameters or {}).get("request") or {}
    if not params:
        return None
    from ferry.run_tags import resource_slug

    state = run.state.type.value.lower() if run.state else "unknown"
    ended_badly = state in ("failed", "crashed", "cancelled")
    return ImportRecord(
        run_id=str(run.id),
        status="failed" if ended_badly else "submitted",
        resource=resource_slug(params.get("resource", "")),
        workspace=params.get("workspace", ""),
        source=params.get("source", ""),
        dry_run=bool(params.get("dry_run")),
        started_at=run.start_time or run.expected_start_time or run.created,
        error=f"run {state}; its result record could not be read" if ended_badly else None,
        warnings=[f"Run state: {run.state.name if run.state else 'unknown'}"],
    )


# --- runs in flight -----------------------------------------------------------------------

ROLLBACK_FLOW = "rollback-import"
IN_FLIGHT_STATES = ["PENDING", "RUNNING", "CANCELLING"]


def runs_in_flight(workspace: str, page: int = 200) -> int:
    """How many Ferry runs of ``workspace`` are pending, running or cancelling (before deleting the workspace).

    Export and import runs name their workspace in ``parameters.request``; a
    rollback names only the import it undoes, so its workspace is that import
    run's. A rollback whose import run Prefect no longer holds is counted too:
    when in doubt, the workspace is busy. Parameters are checked here, not by
    the server (Prefect cannot filter on them), a page of runs at a time.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    def in_flight(client, flows: list[str]) -> list:
        found, offset = [], 0
        while True:
            batch = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flows)),
                flow_run_filter=history_filter(IN_FLIGHT_STATES),
                limit=page,
                offset=offset,
            )
            found += batch
            if len(batch) < page:
                return found
            offset += page

    def workspace_of(run) -> str | None:
        request = (run.parameters or {}).get("request")
        return request.get("workspace") if isinstance(request, dict) else None

    with get_client(sync_client=True) as client:
        busy = sum(1 for run in in_flight(client, [EXPORT_FLOW, IMPORT_FLOW]) if workspace_of(run) == workspace)
        undone = [_as_uuid((run.parameters or {}).get("run_id")) for run in in_flight(client, [ROLLBACK_FLOW])]
        ids = sorted({i for i in undone if i is not None}, key=str)
        owners: dict[uuid.UUID, str | None] = {}
        for start in range(0, len(ids), page):
            chunk = ids[start : start + page]
            owners.update(
                {r.id: workspace_of(r) for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)))}
            )
    return busy + sum(1 for i in undone if owners.get(i) in (None, workspace))


def _as_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
