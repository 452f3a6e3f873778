"""Any Ferry run read back from Prefect: the flow run, its run record and its artifacts (``ferry runs show``)."""

from __future__ import annotations

import uuid
from typing import Any

from ferry.errors import FerryError, ParameterError, Problem


def _record_json(state) -> Any:
    """The run's persisted return value as JSON (an ExportRecord, ImportRecord, report ...), or None."""
    from pydantic import BaseModel

    if state is None or not (state.is_completed() or state.is_failed()):
        return None
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - unreadable result storage: the run is still shown
        return None
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, BaseException) or result is None:
        return None
    if isinstance(result, (dict, list, str, int, float, bool)):
        return result
    return repr(result)


def read_run(run_id: str) -> dict[str, Any]:
    """``{"run": ..., "record": ..., "artifacts": [...]}`` for flow run ``run_id``."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = uuid.UUID(run_id)
    except ValueError:
        raise ParameterError([Problem("run_id", run_id, "not a run id (a UUID, as `ferry jobs runs` prints)")]) from None
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise FerryError(f"No run {run_id} in this Prefect server's history.",
                             "Check the id, and that PREFECT_API_URL points at the server that ran it.") from None
        flow = client.read_flow(flow_run.flow_id)
        deployment = None
        if flow_run.deployment_id:
            try:
                deployment = f"{flow.name}/{client.read_deployment(flow_run.deployment_id).name}"
            except ObjectNotFound:
                deployment = None
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        state = flow_run.state
        return {
            "run": {
                "id": str(flow_run.id), "name": flow_run.name, "flow": flow.name, "deployment": deployment,
                "deploymentId": str(flow_run.deployment_id) if flow_run.deployment_id else None,
                "state": state.name if state else None, "message": state.message if state else None,
                "startedAt": flow_run.start_time.isoformat() if flow_run.start_time else None,
                "completedAt": flow_run.end_time.isoformat() if flow_run.end_time else None,
                "parameters": flow_run.parameters, "tags": flow_run.tags,
            },
            "record": _record_json(state),
            "artifacts": [
                {"key": a.key, "type": a.type, "description": a.description, "data": a.data,
                 "createdAt": a.created.isoformat() if a.created else None}
                for a in sorted(artifacts, key=lambda a: a.created or 0)
                if a.type not in (None, "result")  # Prefect's own result-metadata artifact, not Ferry's
            ],
        }
