"""Start Ferry's runs and hand back their records: what the front ends (the CLI, the HTTP API) call.

Each function takes a validated request, runs the flow (an ad-hoc export goes
through the ``export-data/default`` deployment when something serves it, see
:mod:`deployments.adhoc`) and returns the run record, a failed one included:
front ends only print it. Progress is the caller's to show (wrap the call in
``ferry.progress.ConsoleProgress``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from deployments.adhoc import export_via_deployment
from ferry.errors import FerryError, ParameterError, RunStateError
from ferry.import_params import ImportRequest
from ferry.params import ExportRequest
from ferry.records import ExportRecord, ImportRecord, RollbackRecord


def _flow_run_id(state) -> str:
    return str(state.state_details.flow_run_id)


def run_export(request: ExportRequest) -> ExportRecord:
    """Export ``request``: as a run of export-data/default when served, else in this process."""
    from flows.export import export_data

    if (record := export_via_deployment(request)) is not None:
        return record
    state = export_data(request, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, ExportRecord):
        return result
    return ExportRecord(
        run_id=_flow_run_id(state),
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        format=request.format,
        started_at=state.timestamp,
        error=str(result),
    )


def run_import(request: ImportRequest) -> ImportRecord:
    """Import ``request`` in this process (large files hand themselves to the import deployment)."""
    from flows.import_ import import_data

    state = import_data(request, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, ImportRecord):
        return result
    return ImportRecord(
        run_id=_flow_run_id(state),
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        source=request.source,
        dry_run=request.dry_run,
        started_at=state.timestamp,
        error=str(result),
    )


def roll_back_import(run_id: str, actor: str) -> RollbackRecord:
    """Undo import ``run_id`` (the rollback-import flow); a refused rollback is a failed record saying why."""
    from flows.rollback import rollback_import

    state = rollback_import(run_id, actor, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, RollbackRecord):
        return result
    return RollbackRecord(
        run_id=_flow_run_id(state), import_run_id=run_id, status="failed", started_at=datetime.now(UTC), error=str(result)
    )


def download_link(run_id: str, expires_minutes: int | None = None):
    """A fresh signed URL for a finished export's file (the reissue-download-url flow); raises a FerryError when none."""
    from flows.reissue_url import link_problems, reissue_download_url

    if problems := link_problems(run_id, expires_minutes):
        raise ParameterError(problems)
    state = reissue_download_url(run_id, expires_minutes, return_state=True)
    link = state.result(raise_on_failure=False)
    if isinstance(link, FerryError):
        raise link
    if isinstance(link, BaseException):
        raise RunStateError(f"Reissuing the URL failed with an unexpected {type(link).__name__}.", "The flow run's logs hold the details.")
    return link


# --- the import's read-only steps (no run, no store writes) ------------------------------------


def preview_file(path, sample_rows: int = 50, encoding: str | None = None):
    """What a file is: format, encoding, dialect, columns, sample rows and row count (``ferry import preview``)."""
    from tasks.imports.parse import preview

    return preview(path, sample_rows=sample_rows, encoding=encoding)


def suggest_file_mapping(path, resource: str, workspace: str | None = None, encoding: str | None = None):
    """The suggested mapping of a file's columns onto ``resource`` and the fields it can map to."""
    from tasks.imports.map import suggest_for_file, target_fields
    from tasks.imports.parse import sniff

    info = sniff(path, encoding=encoding)
    return suggest_for_file(info, resource, workspace=workspace), target_fields(resource)


def check_import_file(source, resource: str, **options) -> dict:
    """Every check of an import against a throw-away store (``ferry import validate``)."""
    from tasks.imports.check import validate_file

    return validate_file(source, resource, **options)
