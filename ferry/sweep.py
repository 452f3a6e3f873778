"""What a kill -9 leaves behind, swept: Ferry runs left ``Running``, their spool folders and sealed URLs.

A killed run process runs no ``finally``: its flow run stays RUNNING in
Prefect, it has no audit entry and its spool folder (plain customer data)
stays on disk. Every Ferry run sends Prefect's own flow-run heartbeats every
:data:`HEARTBEAT_SECONDS` (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``; Prefect's
default, 180 s, is longer than :data:`STALE_SECONDS`): the runs of the
processes that serve them (``ferry serve``, the runner of ``ferry up``,
``ferry worker``) and the runs started in the caller's own process, which
:mod:`deployments.service` starts inside :func:`heartbeats` (``ferry export``,
``ferry import run`` and ``ferry import rollback`` when nothing serves them,
the HTTP API's exports answered in the response body). This module's sweep,
run at the serving processes' start-up, every :data:`SWEEP_SECONDS` inside
``ferry serve`` and in the cleanup flow, marks a RUNNING Ferry run CRASHED when

* its last heartbeat is older than ``stale_seconds`` (its process is gone), or
* it never sent one (its process had heartbeats turned off) and has been
  running longer than ``spool_orphan_hours``,

and writes an audit entry ``import.crashed`` / ``export.crashed`` (a rollback's
parameters name no workspace: it is marked without one). So a kill -9 of the
CLI in the middle of a run leaves it Running for about ``stale_seconds`` plus
one sweep interval. Prefect's zombie automation (a proactive trigger) is not
used: it needs the server's proactive-triggers service, which the temporary
server does not run, and it cannot write Ferry's audit log.

The sweep also deletes the Secret blocks of sealed import URLs
(``ferry-url-*``, see ``blocks.sealed_urls``) that no run needs any more: the
importing run deletes its own block when it ends, but a run killed before
that, or one never created (its process died between sealing and starting
it), leaves the block and the URL's token in it. A block is deleted when the
runs whose parameters name it have all ended, or, when no run names it, once
it is older than ``spool_orphan_hours``; a block an active run names is kept.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ferry.runs import EXPORT_FLOW, IMPORT_FLOW, ROLLBACK_FLOW
from ferry.spool import sweep_spools

#: Every Ferry run's heartbeat interval (Prefect's minimum; its default, 180 s, is longer than STALE_SECONDS).
HEARTBEAT_SECONDS = 30
#: No heartbeat for this long: the run's process is gone (Prefect sends one every HEARTBEAT_SECONDS).
STALE_SECONDS = 150.0
SWEEP_SECONDS = 60.0
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
_ACTIONS = {IMPORT_FLOW: "import", EXPORT_FLOW: "export", ROLLBACK_FLOW: "rollback"}
_ACTIVE_STATES = ("PENDING", "RUNNING", "PAUSED", "CANCELLING", "SCHEDULED")
_ENDED_STATES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
#: Names of the Secret blocks holding sealed import URLs, and the query parameter a sealed source names its block by.
SEALED_URL_BLOCK_PREFIX = "ferry-url-"
SEALED_URL_PARAMETER = "ferry-sealed"
_SEALED_REFERENCE = re.compile(re.escape(SEALED_URL_PARAMETER) + "=(" + re.escape(SEALED_URL_BLOCK_PREFIX) + r"[0-9A-Za-z-]+)")
_PAGE = 200

logger = logging.getLogger("ferry.sweep")


@dataclass
class SweepReport:
    """What one sweep did. Field names are a contract (the cleanup flow's report)."""

    crashed: list[str] = field(default_factory=list)
    spools_removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sealed_urls_removed: list[str] = field(default_factory=list)  # names of the Secret blocks deleted


@contextmanager
def heartbeats() -> Iterator[None]:
    """Flow runs started in this process inside the block send Prefect's heartbeats every :data:`HEARTBEAT_SECONDS`.

    Prefect's own default (180 s, ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``) is longer
    than :data:`STALE_SECONDS`: the sweep would take a live run for a dead one.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}):
        yield


def _last_heartbeat(client: Any, run_id: Any, since: datetime) -> datetime | None:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventOrder, EventResourceFilter

    page = client.read_events(
        EventFilter(
            occurred=EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(minutes=5)),
            event=EventNameFilter(name=[HEARTBEAT_EVENT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
            order=EventOrder.DESC,
        ),
        limit=1,
    )
    return page.events[0].occurred if page.events else None


def _running_ferry_runs(client: Any, flow_names: tuple[str, ...]) -> list:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    return client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))),
        limit=200,
    )


def is_dead(run: Any, last_heartbeat: datetime | None, now: datetime, stale_seconds: float, unmonitored_hours: float) -> bool:
    """The rule of the module docstring, on one run."""
    if last_heartbeat is not None:
        return (now - last_heartbeat).total_seconds() > stale_seconds
    since = (run.state.timestamp if run.state else None) or run.start_time or run.created
    return since is not None and (now - since).total_seconds() > unmonitored_hours * 3600


def _audit_crash(run: Any, action: str, message: str) -> None:
    """``<action>.crashed`` in the run's workspace (the flow's ``request`` parameter names it)."""
    from ferry.audit import write_audit
    from ferry.store.engine import get_engine

    request = (run.parameters or {}).get("request") or {}
    if not isinstance(request, dict) or not request.get("workspace"):
        return
    write_audit(
        get_engine(),
        workspace=str(request["workspace"]),
        actor=str(request.get("actor") or "system"),
        action=f"{action}.crashed",
        resource=str(request.get("resource") or "-"),
        run_id=str(run.id),
        details={"reason": message},
        payload_bytes=None,
    )


def crash_dead_runs(
    stale_seconds: float = STALE_SECONDS,
    unmonitored_hours: float | None = None,
    flow_names: tuple[str, ...] = (IMPORT_FLOW, EXPORT_FLOW, ROLLBACK_FLOW),
    now: datetime | None = None,
) -> list[str]:
    """Mark RUNNING Ferry runs whose process died CRASHED, each with an audit entry; their ids."""
    from prefect import get_client
    from prefect.states import Crashed

    from ferry.settings import get_settings

    unmonitored = unmonitored_hours if unmonitored_hours is not None else get_settings().spool_orphan_hours
    crashed: list[str] = []
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        for run in _running_ferry_runs(client, flow_names):
            now_ = now or datetime.now(UTC)
            since = (run.start_time or run.created or now_) - timedelta(minutes=1)
            beat = _last_heartbeat(client, run.id, since)
            if not is_dead(run, beat, now_, stale_seconds, unmonitored):
                continue
            age = f"last heartbeat {beat.isoformat()}" if beat else f"no heartbeat for {unmonitored:g} h"
            message = f"The run's process died (killed or lost; {age}); marked crashed by Ferry's sweep."
            result = client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            if getattr(result, "status", None) is not None and str(result.status.value).upper() != "ACCEPT":
                continue
            crashed.append(str(run.id))
            _audit_crash(run, _ACTIONS.get(flows.get(run.flow_id, ""), "run"), message)
            logger.warning("Run %s (%s) was left running by a dead process: marked Crashed", run.id, flows.get(run.flow_id))
    return crashed


def active_in_prefect() -> Callable[[str], bool]:
    """``run_id -> still active in Prefect``; True on any doubt (the API does not answer, the id is unknown to it)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    def active(run_id: str) -> bool:
        try:
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(run_id)
        except ObjectNotFound:
            return False  # no such run in this Prefect: age alone decides
        except Exception:  # noqa: BLE001 - unreachable Prefect: keep the folder this time
            return True
        return run.state is not None and run.state.type.value in _ACTIVE_STATES

    return active


def _sealed_url_blocks(client: Any) -> list:
    """Every ``ferry-url-*`` Secret block document (without its value)."""
    from prefect.client.schemas.objects import BlockDocument

    found, offset = [], 0
    while True:
        response = client.request(
            "POST",
            "/block_documents/filter",
            json={
                "block_documents": {"name": {"like_": f"{SEALED_URL_BLOCK_PREFIX}%"}},
                "block_types": {"slug": {"any_": ["secret"]}},
                "include_secrets": False,
                "limit": _PAGE,
                "offset": offset,
            },
        )
        page = BlockDocument.model_validate_list(response.json())
        found += [doc for doc in page if doc.name and doc.name.startswith(SEALED_URL_BLOCK_PREFIX)]
        if len(page) < _PAGE:
            return found
        offset += _PAGE


def _sealed_names(client: Any, flow_run_filter: Any) -> set[str]:
    """The sealed-URL blocks named in the parameters of the import runs ``flow_run_filter`` selects."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    names: set[str] = set()
    offset = 0
    while True:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[IMPORT_FLOW])), flow_run_filter=flow_run_filter, limit=_PAGE, offset=offset
        )
        for run in runs:
            names.update(_SEALED_REFERENCE.findall(json.dumps(run.parameters or {}, default=str)))
        if len(runs) < _PAGE:
            return names
        offset += _PAGE


def sweep_sealed_urls(orphan_hours: float | None = None, now: datetime | None = None) -> list[str]:
    """Delete the sealed-URL Secret blocks no run needs any more (the rule of the module docstring); their names."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterEndTime, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    from ferry.settings import get_settings

    orphan = timedelta(hours=orphan_hours if orphan_hours is not None else get_settings().spool_orphan_hours)
    now = now or datetime.now(UTC)
    removed: list[str] = []
    with get_client(sync_client=True) as client:
        blocks = _sealed_url_blocks(client)
        if not blocks:
            return removed
        active = _sealed_names(
            client, FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in _ACTIVE_STATES])))
        )
        young = [b.created for b in blocks if b.created is not None and now - b.created < orphan]
        ended: set[str] = set()
        if young:  # a run naming a block was created after it, so it ended after it too
            ended = _sealed_names(
                client,
                FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in _ENDED_STATES])),
                    end_time=FlowRunFilterEndTime(after_=min(young) - timedelta(minutes=1)),
                ),
            )
        for block in blocks:
            if block.name in active:
                continue
            if block.name not in ended and block.created is not None and now - block.created < orphan:
                continue  # no run names it yet: its run may be about to start
            try:
                client.delete_block_document(block.id)
            except ObjectNotFound:
                continue  # its run deleted it meanwhile
            removed.append(block.name)
            logger.warning("Deleted sealed URL block %s: no run needs it any more", block.name)
    return removed


def sweep(stale_seconds: float = STALE_SECONDS, spools: bool = True) -> SweepReport:
    """Crash dead runs, remove spool folders of runs that are not active and older than ``spool_orphan_hours``,
    and delete the sealed-URL blocks no run needs any more.

    Never raises: a sweep that cannot reach Prefect or the store says so in ``problems``.
    """
    from ferry.settings import get_settings

    settings = get_settings()
    report = SweepReport()
    try:
        report.crashed = crash_dead_runs(stale_seconds)
    except Exception as exc:  # noqa: BLE001 - a sweep must never stop what it runs in
        report.problems.append(f"dead runs: {type(exc).__name__}: {exc}")
    if spools:
        try:
            removed = sweep_spools(settings.spool_dir, settings.spool_orphan_hours, active_in_prefect())
            report.spools_removed = [folder.name for folder in removed]
        except Exception as exc:  # noqa: BLE001
            report.problems.append(f"spool folders: {type(exc).__name__}: {exc}")
    try:
        report.sealed_urls_removed = sweep_sealed_urls(settings.spool_orphan_hours)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"sealed URLs: {type(exc).__name__}: {exc}")
    return report


def log_sweep(report: SweepReport, log: Callable[[str], None]) -> None:
    if report.crashed:
        log(f"Marked {len(report.crashed)} run(s) left running by a dead process as Crashed: {', '.join(report.crashed)}")
    if report.spools_removed:
        log(f"Removed {len(report.spools_removed)} spool folder(s) of dead runs")
    if report.sealed_urls_removed:
        log(f"Deleted {len(report.sealed_urls_removed)} sealed import URL block(s) no run needs any more")
    for problem in report.problems:
        log(f"Sweep incomplete ({problem})")
