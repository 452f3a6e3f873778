"""Ferry's runs as a workspace sees them: one run's status and outcome, and the workspace's runs, newest first.

A run belongs to the workspace its request names (``parameters.request.workspace``;
a rollback, to the workspace of the import it undoes, which its record names).
A run of another workspace is reported exactly like a run that does not exist,
so an id never confirms that another workspace's run is there.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ferry.errors import ParameterError, Problem, RunNotFoundError
from ferry.runs import EXPORT_FLOW, IMPORT_FLOW, import_record_of, persisted_result

ROLLBACK_FLOW = "rollback-import"
KINDS: dict[str, str] = {EXPORT_FLOW: "export", IMPORT_FLOW: "import", ROLLBACK_FLOW: "rollback"}
RunState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
_STATES: dict[str, RunState] = {
    "SCHEDULED": "queued",
    "PENDING": "queued",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELLING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "cancelled",
}
_PROGRESS_KEYS = {"export": "export-progress", "import": "import-progress"}


class RunView(BaseModel):
    """One run of the workspace. JSON names are camelCase (the HTTP API's contract)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str = Field(description="The Prefect flow run id.")
    kind: Literal["export", "import", "rollback"]
    status: RunState
    progress: int = Field(description="0-100, from the run's progress artifact (100 once it ended).")
    resource: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    record_count: int | None = Field(default=None, description="Rows exported, or rows in the imported file.")
    file_size: int | None = None
    destination_path: str | None = None
    created_rows: int | None = None
    updated_rows: int | None = None
    rejected_rows: int | None = Field(default=None, description="Imports: rows rejected (listed in the rejected-rows file).")
    outcome: str | None = Field(
        default=None,
        description="Imports: success (every row loaded), partial (some rows rejected, the rest loaded), failed "
        "(nothing loaded), submitted (not finished) or rolled_back (loaded, then undone).",
    )
    error: str | None = None
    download_url: str | None = Field(
        default=None, description="A fresh signed URL for a finished export's file, when its storage signs URLs."
    )
    download_url_expires_at: datetime | None = None
    request: dict[str, Any] = Field(
        default_factory=dict, exclude=True, description="The run's `request` parameter (what it was asked to do); not shown natively."
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _workspace_of(flow_run, record: Any) -> str | None:
    request = (flow_run.parameters or {}).get("request")
    if isinstance(request, dict):
        return request.get("workspace")
    return getattr(record, "workspace", None)


def _not_found(run_id: str) -> RunNotFoundError:
    return RunNotFoundError(f"No run {run_id} in this workspace.", "List the workspace's runs with GET /v1/runs.")


def _progress(client, flow_run, kind: str, status: RunState) -> int:
    if status in ("succeeded", "failed", "cancelled"):
        return 100
    key = _PROGRESS_KEYS.get(kind)
    if key is None or status == "queued":
        return 0
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]), key=ArtifactFilterKey(any_=[key]))
    )
    values = [a.data for a in artifacts if isinstance(a.data, (int, float))]
    return int(min(99, max(values))) if values else 0


def view_of(client, flow_run, flow_name: str, workspace: str) -> RunView | None:
    """The run as the workspace sees it; None when it is not a Ferry run of this workspace."""
    kind = KINDS.get(flow_name)
    if kind is None:
        return None
    record = import_record_of(flow_run) if kind == "import" else persisted_result(flow_run.state)
    if _workspace_of(flow_run, record) != workspace:
        return None
    status = _STATES.get(flow_run.state.type.value if flow_run.state else "PENDING", "queued")
    if status == "succeeded" and getattr(record, "status", "success") == "failed":
        status = "failed"
    error = getattr(record, "error", None)
    if status == "failed" and not error:
        error = flow_run.state.message if flow_run.state else None
    return RunView(
        id=str(flow_run.id),
        kind=kind,
        status=status,
        progress=_progress(client, flow_run, kind, status),
        resource=getattr(record, "resource", None) or ((flow_run.parameters or {}).get("request") or {}).get("resource"),
        started_at=getattr(record, "started_at", None) or flow_run.start_time,
        completed_at=getattr(record, "completed_at", None) or flow_run.end_time,
        record_count=getattr(record, "record_count", None) if kind == "export" else getattr(record, "total_rows", None),
        file_size=getattr(record, "file_size", None),
        destination_path=getattr(record, "destination_path", None),
        created_rows=getattr(record, "created_rows", None),
        updated_rows=getattr(record, "updated_rows", None),
        rejected_rows=getattr(record, "error_rows", None),
        outcome=getattr(record, "status", None) if kind == "import" else None,
        error=error,
        request=(flow_run.parameters or {}).get("request") or {},
    )


def read_run_view(run_id: str, workspace: str) -> RunView:
    """Run ``run_id`` of ``workspace``; RunNotFoundError when there is none (or it is another workspace's)."""
    return read_flow_run_view(run_id, workspace)[1]


def read_flow_run_view(run_id: str, workspace: str):
    """Run ``run_id`` of ``workspace`` as (its Prefect flow run, its view); RunNotFoundError as :func:`read_run_view`."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = uuid.UUID(str(run_id))
    except ValueError:
        raise _not_found(run_id) from None
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise _not_found(run_id) from None
        view = view_of(client, flow_run, client.read_flow(flow_run.flow_id).name, workspace)
    if view is None:
        raise _not_found(run_id)
    return flow_run, view


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise ParameterError([Problem("cursor", cursor, "not a cursor this API gave out; start again without one")])


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def list_run_views(workspace: str, kind: str | None = None, limit: int = 50, cursor: str | None = None) -> tuple[list[RunView], str | None]:
    """The workspace's runs, newest first, and the cursor of the next page (None on the last page).

    Prefect cannot filter runs by a parameter, so runs of every workspace are
    read in pages and filtered here; the cursor is an offset into that list.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    problems = []
    flows = [name for name, k in KINDS.items() if kind is None or k == kind]
    if not flows:
        problems.append(Problem("kind", kind, f"use one of {', '.join(sorted(set(KINDS.values())))}"))
    if not 1 <= limit <= 200:
        problems.append(Problem("limit", limit, "must be between 1 and 200"))
    if problems:
        raise ParameterError(problems)
    offset, page, found = _offset(cursor), 200, []
    with get_client(sync_client=True) as client:
        names = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=flows)))}
        while len(found) <= limit:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flows)),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=page,
                offset=offset,
            )
            for index, flow_run in enumerate(runs):
                view = view_of(client, flow_run, names.get(flow_run.flow_id, ""), workspace)
                if view is not None:
                    found.append(view)
                    if len(found) > limit:
                        return found[:limit], _cursor(offset + index)
            if len(runs) < page:
                return found, None
            offset += page
    return found[:limit], None
