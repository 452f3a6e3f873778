"""Everything known about one export or import run of a workspace, for front ends that show runs as "jobs" (api/compat).

A :class:`JobFacts` joins what Ferry keeps about a run in four places: the run
as the workspace sees it (:mod:`deployments.run_views`), its persisted run
record (rows skipped and rejected, errors, reference warnings), the details of
the audit entry of the API call that started it (what the front end was asked,
e.g. which saved report, how many rows it counted), and for an import whether
it has been rolled back (the import journal). Another workspace's run is the
same RunNotFoundError as a run that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from deployments.run_views import KINDS, RunView, read_flow_run_view, view_of
from ferry.errors import RunNotFoundError
from ferry.records import ExportRecord, ImportRecord
from ferry.runs import persisted_result
from ferry.store.engine import get_engine
from ferry.store.schema import audit_log, import_created, import_runs, workspaces

#: Audit actions of the API calls that start runs.
START_ACTIONS = ("api.export.start", "api.export.sync", "api.import.start", "api.import.sync")
_PAGE = 200


@dataclass(frozen=True)
class JobFacts:
    view: RunView
    created_at: datetime | None
    record: ExportRecord | ImportRecord | None = None
    action: str | None = None
    """The audit action of the API call that started the run (``api.export.sync``, ...), None when none did."""
    details: dict[str, Any] = field(default_factory=dict)
    rolled_back: bool = False


def _not_found(run_id: str) -> RunNotFoundError:
    return RunNotFoundError(f"No run {run_id} in this workspace.", "List the workspace's runs with GET /v1/runs.")


def start_details(workspace: str, run_ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The audit action and details of the API call that started each run (its first such entry), by run id."""
    if not run_ids:
        return {}
    query = (
        select(audit_log.c.run_id, audit_log.c.action, audit_log.c.details)
        .join(workspaces, workspaces.c.id == audit_log.c.workspace_id)
        .where(workspaces.c.slug == workspace, audit_log.c.run_id.in_(run_ids), audit_log.c.action.in_(START_ACTIONS))
        .order_by(audit_log.c.id)
    )
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    with get_engine().connect() as conn:
        for run_id, action, details in conn.execute(query):
            found.setdefault(run_id, (action, details or {}))
    return found


def _rolled_back(run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    query = select(import_runs.c.run_id).where(import_runs.c.run_id.in_(run_ids), import_runs.c.status == "rolled_back")
    with get_engine().connect() as conn:
        return set(conn.execute(query).scalars())


def created_record_ids(run_id: str, resource: str) -> list[int]:
    """The ids of the records of ``resource`` an import run created, in order (from the import journal)."""
    query = (
        select(import_created.c.first_id, import_created.c.last_id)
        .where(import_created.c.run_id == run_id, import_created.c.resource == resource)
        .order_by(import_created.c.first_id)
    )
    with get_engine().connect() as conn:
        return [i for first, last in conn.execute(query) for i in range(first, last + 1)]


def _facts(pairs: list[tuple[Any, RunView]], workspace: str) -> list[JobFacts]:
    ids = [view.id for _, view in pairs]
    details = start_details(workspace, ids)
    undone = _rolled_back([view.id for _, view in pairs if view.kind == "import"])
    return [
        JobFacts(
            view=view,
            created_at=flow_run.created,
            record=record if isinstance(record := persisted_result(flow_run.state), (ExportRecord, ImportRecord)) else None,
            action=details.get(view.id, (None, {}))[0],
            details=details.get(view.id, (None, {}))[1],
            rolled_back=view.id in undone,
        )
        for flow_run, view in pairs
    ]


def read_job(run_id: str, workspace: str, kind: str) -> JobFacts:
    """Run ``run_id`` of ``workspace``, an export or import (``kind``); RunNotFoundError otherwise."""
    flow_run, view = read_flow_run_view(run_id, workspace)
    if view.kind != kind:
        raise _not_found(run_id)
    return _facts([(flow_run, view)], workspace)[0]


def list_jobs(
    workspace: str, kind: str, limit: int, resource: str | None = None, keep: Callable[[JobFacts], bool] | None = None
) -> list[JobFacts]:
    """The workspace's export or import runs (of ``resource`` only, and those ``keep`` keeps), newest first, at most ``limit``."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    flows = [name for name, k in KINDS.items() if k == kind]
    found: list[JobFacts] = []
    offset = 0
    with get_client(sync_client=True) as client:
        names = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=flows)))}
        while len(found) < limit:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flows)),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=_PAGE,
                offset=offset,
            )
            pairs = []
            for flow_run in runs:
                view = view_of(client, flow_run, names.get(flow_run.flow_id, ""), workspace)
                if view is not None and (resource is None or view.resource == resource):
                    pairs.append((flow_run, view))
            found += [facts for facts in _facts(pairs, workspace) if keep is None or keep(facts)]
            if len(runs) < _PAGE:
                break
            offset += _PAGE
    return found[:limit]
