"""Ad-hoc runs (``ferry export``, ``ferry import run``) as runs of the ``export-data/default`` and ``import-data/default`` deployments.

When the CLI talks to a Prefect server and something is serving Ferry's
deployments (``ferry serve``, ``ferry up`` or a worker), an analyst's pull or
an import becomes a run of that deployment: it lands in the same history as
the scheduled jobs, runs where the jobs run (same store credentials, same
destinations) and can be re-run from the UI. The CLI prints the run's id and
UI address at once and follows it (:func:`follow_run`), or leaves it running
(``--no-wait``). Otherwise - no server configured, the deployment missing,
nobody polling it - the run executes in the CLI's own process as before, and
still appears in the server's flow-run history.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from deployments import project
from ferry.import_params import IMPORT_DEPLOYMENT
from ferry.records import ExportRecord, ImportRecord

#: Each flow's progress artifacts (``ferry.progress.Progress`` keys): what a follower reads.
PROGRESS_KEYS = {project.ADHOC_EXPORT_DEPLOYMENT: "export-progress", IMPORT_DEPLOYMENT: "import-progress"}


def server_configured() -> bool:
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def deployment_ready(name: str = project.ADHOC_EXPORT_DEPLOYMENT) -> bool:
    """True when deployment ``name`` exists and a runner or worker polled it recently (Prefect's READY)."""
    from prefect import get_client

    if not server_configured():
        return False
    with get_client(sync_client=True) as client:
        return _ready_deployment(client, name) is not None


def _ready_deployment(client, name: str):
    """Deployment ``name`` when a runner or worker polled it recently (Prefect's READY), else None."""
    from prefect.client.schemas.objects import DeploymentStatus

    try:
        deployment = client.read_deployment_by_name(name)
    except Exception:  # noqa: BLE001 - missing deployment or unreachable server: run in this process instead
        return None
    return deployment if deployment.status == DeploymentStatus.READY else None


def ui_url(run_id: str) -> str | None:
    """The Prefect UI page of flow run ``run_id`` (None when no UI address is known)."""
    from prefect.settings import get_current_settings

    base = get_current_settings().ui_url
    return f"{str(base).rstrip('/')}/runs/flow-run/{run_id}" if base else None


def submit(name: str, request) -> str | None:
    """Start ``request`` as a run of deployment ``name`` and return its id at once; None when nothing serves it.

    As ``run_deployment(name, timeout=0)`` does, in two requests (read the
    deployment, create the run); then, when the runner is ``ferry up``'s, it is
    woken to take the run now rather than at its next poll.
    """
    from prefect import get_client
    from prefect.states import Scheduled

    if not server_configured():
        return None
    with get_client(sync_client=True) as client:
        deployment = _ready_deployment(client, name)
        if deployment is None:
            return None
        source = getattr(request, "source", None)  # imports name a file; exports do not
        if source and Path(source).expanduser().is_file():
            request = request.model_copy(update={"source": str(Path(request.source).expanduser().resolve())})  # the runner's cwd differs
        parameters = {"request": request.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
        tags = []
        if name == IMPORT_DEPLOYMENT:
            from ferry.run_tags import import_tags

            tags = import_tags(request.workspace, request.resource)
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, state=Scheduled(scheduled_time=datetime.now(UTC)), tags=tags
        )
    wake_local_runner()
    return str(flow_run.id)


def wake_local_runner() -> None:
    """Ask ``ferry up``'s runner to take new runs now, when this process talks to ``ferry up``'s Prefect server."""
    from prefect.settings import get_current_settings

    from ferry import local_server

    server = local_server.in_use()
    if server is None:  # not discovered: PREFECT_API_URL may still name ferry up's server
        found = local_server.find()
        if found is not None and found.api_url.rstrip("/") == str(get_current_settings().api.url or "").rstrip("/"):
            server = found
    if server is not None:
        local_server.wake_runner(server)


#: Following a run: a look every FIRST_POLL_SECONDS for FAST_POLL_FOR_SECONDS (a small job ends within a few
#: seconds), then each a little later, up to ``poll_seconds``.
FIRST_POLL_SECONDS = 0.1
FAST_POLL_FOR_SECONDS = 5.0
POLL_BACKOFF_SECONDS = 0.05


def follow_run(run_id: str, name: str, on_progress: Callable[[str, float], None] | None = None, poll_seconds: float = 1.0):
    """Wait for run ``run_id`` of deployment ``name`` to end, telling ``on_progress`` each stage's percent; the final flow run.

    Looks often at first (a small job ends within a second or two), then every
    ``poll_seconds``; progress artifacts are read only when someone shows them.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    wanted = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]), key=ArtifactFilterKey(any_=[PROGRESS_KEYS[name]])
    )
    wait = min(FIRST_POLL_SECONDS, poll_seconds)
    slow_down_at = time.monotonic() + FAST_POLL_FOR_SECONDS
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(uuid.UUID(run_id))
            if on_progress is not None:
                for artifact in sorted(client.read_artifacts(artifact_filter=wanted), key=lambda a: a.created or 0):
                    if isinstance(artifact.data, (int, float)):
                        on_progress((artifact.description or "run").split(":")[0], float(artifact.data))
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            time.sleep(wait)
            if time.monotonic() >= slow_down_at:
                wait = min(wait + POLL_BACKOFF_SECONDS, poll_seconds)


def export_record(flow_run, request) -> ExportRecord:
    """The finished run's export record; a failed one saying how it ended when it left none."""
    from ferry.runs import read_record

    return read_record(flow_run) or _failed(ExportRecord, flow_run, request, format=request.format)


def import_record(flow_run, request) -> ImportRecord:
    """The finished run's import record (``rolled_back`` included); a failed one saying how it ended when it left none."""
    from ferry.runs import import_record_of

    record = import_record_of(flow_run)
    if record is not None and record.status != "submitted":
        return record
    return _failed(ImportRecord, flow_run, request, source=request.source)


def _failed(model, flow_run, request, **fields):
    return model(
        run_id=str(flow_run.id),
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        started_at=flow_run.start_time or datetime.now(UTC),
        error=_ended(flow_run),
        **fields,
    )


def _ended(flow_run) -> str:
    state = flow_run.state
    return f"run {flow_run.id} ended {state.name}: {state.message}" if state else f"run {flow_run.id} has no state"


def export_via_deployment(request) -> ExportRecord | None:
    """Run ``request`` as a run of export-data/default and wait for its record; None when nothing serves it."""
    run_id = submit(project.ADHOC_EXPORT_DEPLOYMENT, request)
    if run_id is None:
        return None
    return export_record(follow_run(run_id, project.ADHOC_EXPORT_DEPLOYMENT), request)
