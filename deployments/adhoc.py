"""Ad-hoc exports (``ferry export``) as runs of the ``export-data/default`` deployment.

When the CLI talks to a Prefect server and something is serving Ferry's
deployments (``ferry serve`` or a worker), an analyst's pull becomes a run of
``export-data/default``: it lands in the same history as the scheduled jobs,
runs where the jobs run (same store credentials, same destinations) and can be
re-run from the UI. Otherwise - no server configured, the deployment missing,
nobody polling it - the export runs in the CLI's own process as before, and
still appears in the server's flow-run history.
"""

from __future__ import annotations

from datetime import UTC, datetime

from deployments import project
from ferry.records import ExportRecord


def server_configured() -> bool:
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def adhoc_deployment_ready() -> bool:
    """True when export-data/default exists and a runner or worker polled it recently (Prefect's READY)."""
    from prefect import get_client
    from prefect.client.schemas.objects import DeploymentStatus

    if not server_configured():
        return False
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(project.ADHOC_EXPORT_DEPLOYMENT)
    except Exception:  # noqa: BLE001 - missing deployment or unreachable server: run in this process instead
        return False
    return deployment.status == DeploymentStatus.READY


def export_via_deployment(request, timeout: float | None = None) -> ExportRecord | None:
    """Run ``request`` as a run of export-data/default and wait for its record; None when that is not possible."""
    from prefect.deployments import run_deployment

    from ferry.runs import read_record

    if not adhoc_deployment_ready():
        return None
    parameters = {"request": request.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
    flow_run = run_deployment(project.ADHOC_EXPORT_DEPLOYMENT, parameters=parameters, timeout=timeout, poll_interval=1, as_subflow=False)
    record = read_record(flow_run)
    if record is not None:
        return record
    state = flow_run.state
    return ExportRecord(
        run_id=str(flow_run.id),
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        format=request.format,
        started_at=flow_run.start_time or datetime.now(UTC),
        error=(
            f"run {flow_run.id} ended {state.name}: {state.message}"
            if state and state.is_final()
            else f"run {flow_run.id} has not finished ({state.name if state else 'no state'}); follow it with `ferry runs show {flow_run.id}`"
        ),
    )
