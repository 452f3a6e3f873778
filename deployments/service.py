"""Start Ferry's runs and hand back their records: what the front ends (the CLI, the HTTP API) call.

Each function takes a validated request, runs the flow (an ad-hoc export goes
through the ``export-data/default`` deployment when something serves it, see
:mod:`deployments.adhoc`) and returns the run record, a failed one included:
front ends only print it. Progress is the caller's to show (``ferry.progress``
listeners for a run in this process, ``deployments.adhoc.follow_run`` for one
elsewhere).
"""

from __future__ import annotations

from datetime import UTC, datetime

from deployments.adhoc import export_via_deployment, wake_local_runner
from ferry.errors import (
    ConfigurationError,
    FerryError,
    IdempotencyKeyReusedError,
    ParameterError,
    PermissionDeniedError,
    Problem,
    RunStateError,
)
from ferry.import_params import ImportRequest
from ferry.params import ExportRequest
from ferry.records import ExportRecord, ImportRecord, RollbackRecord
from ferry.runs import run_result
from ferry.sweep import heartbeats


def _flow_run_id(state) -> str:
    return str(state.state_details.flow_run_id)


def run_export(request: ExportRequest) -> ExportRecord:
    """Export ``request``: as a run of export-data/default when served, else in this process."""
    if (record := export_via_deployment(request)) is not None:
        return record
    return run_export_here(request)


def run_export_here(request: ExportRequest) -> ExportRecord:
    """Export ``request`` in this process."""
    from flows.export import export_data

    with heartbeats():  # a kill -9 of this process leaves a run ferry.sweep marks Crashed within minutes
        state = export_data(request, return_state=True)
    result = run_result(state)
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

    with heartbeats():  # a kill -9 of this process leaves a run ferry.sweep marks Crashed within minutes
        state = import_data(sealed_import(request), return_state=True)
    result = run_result(state)
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

    with heartbeats():  # a kill -9 of this process leaves a run ferry.sweep marks Crashed within minutes
        state = rollback_import(run_id, actor, return_state=True)
    result = run_result(state)
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


def preview_file(path, sample_rows: int = 50, encoding: str | None = None, sheet: str | None = None):
    """What a file is: format, encoding, dialect, columns, sample rows and row count (``ferry import preview``).

    ``sheet``: a workbook's worksheet by name or 1-based index; the preview lists every sheet.
    """
    from tasks.imports.parse import preview

    return preview(path, sample_rows=sample_rows, encoding=encoding, sheet=sheet)


def suggest_file_mapping(path, resource: str, workspace: str | None = None, encoding: str | None = None, sheet: str | None = None):
    """The suggested mapping of a file's columns (of its ``sheet``, for a workbook) onto ``resource`` and the fields it can map to."""
    from tasks.imports.map import suggest_for_file, target_fields
    from tasks.imports.parse import sniff

    info = sniff(path, encoding=encoding, sheet=sheet)
    return suggest_for_file(info, resource, workspace=workspace), target_fields(resource)


def check_import_file(source, resource: str, sheet: str | None = None, **options) -> dict:
    """Every check of an import against a throw-away store (``ferry import validate``); ``sheet`` as in :func:`preview_file`."""
    from tasks.imports.check import validate_file

    return validate_file(source, resource, sheet=sheet, **options)


# --- before a run starts: what the store and the blocks can already tell --------------------------

#: Longest file name (in bytes) the destinations Ferry writes to all accept (ext4, SFTP/FTP servers, object keys' last part).
MAX_FILE_NAME_BYTES = 255


def _workspace_problems(workspace: str) -> list[Problem] | None:
    """The workspace's problem, if any; None when this process cannot read the store (the run, elsewhere, may)."""
    from ferry.errors import StoreError, UnknownWorkspaceError
    from ferry.store.engine import get_engine, workspace_id

    with get_engine().connect() as conn:
        try:
            workspace_id(conn, workspace)
        except UnknownWorkspaceError as exc:
            return [Problem("workspace", workspace, f"{exc.message} {exc.hint}")]
        except StoreError:
            return None
    return []


def preflight_export(request: ExportRequest) -> None:
    """Everything an export run would refuse that can be known now, as one ParameterError: no run, no audit entry.

    The workspace, the segment and lists (the store), the destination block (Prefect) and the file name's length.
    """
    from blocks.registry import resolve_destination
    from ferry.errors import DestinationError
    from ferry.settings import get_settings
    from tasks.export.deliver import render_filename

    problems = _workspace_problems(request.workspace)
    if problems == []:  # the store is readable here and holds the workspace: its segment and lists can be checked
        try:
            check_export_against_store(request)
        except ParameterError as exc:
            problems += exc.problems
    problems = problems or []
    try:
        resolve_destination(request.destination, get_settings().exports_dir)
    except DestinationError as exc:
        problems.append(Problem("destination", request.destination, str(exc)))
    name = render_filename(request, "0" * 36, datetime.now(UTC)).rsplit("/", 1)[-1]
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        problems.append(
            Problem("filename", request.filename, f"makes a file name of {len(name.encode())} bytes; at most {MAX_FILE_NAME_BYTES}")
        )
    if problems:
        raise ParameterError(problems)


def preflight_import(request: ImportRequest) -> None:
    """What an import run would refuse that can be known now (the workspace, a URL with credentials), as one ParameterError."""
    from blocks.sealed_urls import url_problems

    if problems := url_problems(request.source) + (_workspace_problems(request.workspace) or []):
        raise ParameterError(problems)


def sealed_import(request: ImportRequest, idempotency_key: str | None = None) -> ImportRequest:
    """The request as a run may keep it: a URL's token moves into a Secret block (``blocks.sealed_urls``),
    the same block for every retry of an idempotent request."""
    from blocks.sealed_urls import seal, url_problems

    if problems := url_problems(request.source):
        raise ParameterError(problems)
    return request.model_copy(update={"source": seal(request.source, key=idempotency_key)})


# --- runs started for other programs (the HTTP API) ---------------------------------------------


def check_export_against_store(request: ExportRequest) -> None:
    """What only the store can tell (the segment and lists exist, a segment's rule is valid): a ParameterError before any run starts."""
    from ferry.store.engine import get_engine
    from tasks.export.query import build_query

    with get_engine().connect() as conn:
        build_query(request, conn)


def start_export(request: ExportRequest, idempotency_key: str | None = None) -> str:
    """Start a run of export-data/default and return its id at once (the run executes where Ferry is served).

    ``idempotency_key`` reaches Prefect, which starts one run per (flow, key):
    a client that retries after a lost answer gets the same run. Keys are
    namespaced by the caller (workspace and key id), so two callers never share one.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from deployments import project

    check_export_against_store(request)
    parameters = {"request": request.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
    try:
        flow_run = run_deployment(
            project.ADHOC_EXPORT_DEPLOYMENT, parameters=parameters, timeout=0, as_subflow=False, idempotency_key=idempotency_key
        )
    except ObjectNotFound:
        raise ConfigurationError(
            f"The deployment {project.ADHOC_EXPORT_DEPLOYMENT!r} does not exist on this Prefect server.",
            "Start Ferry's runner (`ferry serve`, or `ferry deploy` and `ferry worker`).",
        ) from None
    if idempotency_key and flow_run.parameters != parameters:  # Prefect handed back the run this key started before
        raise IdempotencyKeyReusedError(
            f"The Idempotency-Key already started run {flow_run.id} with other parameters.",
            "Send a new key for a new export, or the same body to get that run again.",
        )
    wake_local_runner()  # ferry up's runner takes the run now, not at its next poll
    return str(flow_run.id)


def fresh_download_link(run_id: str, base_url: str | None = None, expires_minutes: int | None = None):
    """A fresh signed URL for export run ``run_id``'s file, without a flow run (the HTTP API calls this per request).

    With ``base_url`` (the API's own address), a file in a local folder gets a
    signed, expiring URL of the API (``/v1/files/{run_id}``), which serves it.
    """
    from flows.reissue_url import fresh_link

    def serve_local(path, lifetime) -> str:
        from ferry.signing import signed_query

        route = f"/v1/files/{run_id}"
        query, _ = signed_query(route, int(lifetime.total_seconds()))
        return f"{base_url.rstrip('/')}{route}?{query}"

    return fresh_link(run_id, expires_minutes, serve_local=serve_local if base_url else None)


def local_export_file(run_id: str, expires: int, signature: str):
    """The local file a signed ``/v1/files/{run_id}`` URL names, or a PermissionDeniedError when the URL is not valid."""
    from ferry.signing import verify
    from flows.reissue_url import export_file

    if not verify(f"/v1/files/{run_id}", expires, signature):
        raise PermissionDeniedError("This download URL is invalid or has expired.", "Ask for a fresh one: GET /v1/runs/{id}/download.")
    record, destination, key = export_file(run_id)
    path = destination.local_path(key)
    if path is None:
        raise RunStateError(f"The file of run {run_id} is not in a local folder.", "Use the download URL its storage signs.")
    return path


def record_api_call(
    caller, action: str, resource: str | None, run_id: str | None, client_ip: str | None, details: dict, payload_bytes: int | None
) -> None:
    """An audit entry for an API call that reads or writes customer data: who (key id, name, role), what, from where."""
    from ferry.audit import write_audit
    from ferry.store.engine import get_engine

    write_audit(
        get_engine(),
        workspace=caller.workspace,
        actor=f"key:{caller.key_id}:{caller.name}",
        action=action,
        resource=resource or "-",
        run_id=run_id,
        details={**details, "role": caller.role, "client_ip": client_ip},
        payload_bytes=payload_bytes,
    )


def health() -> dict[str, dict]:
    """Whether Prefect (``PREFECT_API_URL``) and the store answer, each with a short reason when not."""
    from prefect import get_client
    from sqlalchemy import text

    from ferry.store.engine import get_engine

    checks: dict[str, dict] = {}
    try:
        with get_client(sync_client=True) as client:
            failure = client.api_healthcheck()
        checks["prefect"] = {"ok": failure is None, "detail": None if failure is None else type(failure).__name__}
    except Exception as exc:  # noqa: BLE001 - unreachable in any way: reported, not raised
        checks["prefect"] = {"ok": False, "detail": type(exc).__name__}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["store"] = {"ok": True, "detail": None}
    except Exception as exc:  # noqa: BLE001 - as above
        checks["store"] = {"ok": False, "detail": type(exc).__name__}
    return checks


def export_in_response(request: ExportRequest, folder) -> tuple[ExportRecord, object] | None:
    """Small exports answered in the response body: the same flow, delivered into ``folder``; None when too large.

    Above ``FERRY_API_SYNC_MAX_ROWS`` rows (counted first, with the export's own
    query) the caller starts a run instead. A failed run raises its error, so
    nothing has been sent when it fails.
    """
    from pathlib import Path

    from ferry.settings import get_settings
    from ferry.store.engine import get_engine
    from flows.export import export_data
    from tasks.export.extract import count_rows

    request = request.validated()
    with get_engine().connect() as conn:
        if count_rows(request, conn) > get_settings().api_sync_max_rows:
            return None
    with heartbeats():  # a kill -9 of this process leaves a run ferry.sweep marks Crashed within minutes
        state = export_data(request.model_copy(update={"destination": str(folder)}), return_state=True)
    record = run_result(state)
    if not isinstance(record, ExportRecord) or record.status != "success":
        raise RunStateError(f"The export failed: {getattr(record, 'error', record)}", "Fix what the error names and ask again.")
    return record, Path(record.destination_path)


def start_import(request: ImportRequest, idempotency_key: str | None = None) -> str:
    """Start a run of import-data/default and return its id at once (the run executes where Ferry is served).

    The source is a file on this machine (an upload of the HTTP API) or an
    http(s) URL, which the run downloads through the SSRF guard: the caller never
    fetches it. The run imports inline (it is the deployment run). As for
    exports, ``idempotency_key`` starts one run per (flow, key).
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from ferry.import_params import IMPORT_DEPLOYMENT
    from ferry.run_tags import import_tags

    inline = sealed_import(request, idempotency_key).model_copy(update={"processing": "inline"})
    parameters = {"request": inline.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
    tags = import_tags(request.workspace, request.resource)
    try:
        flow_run = run_deployment(
            IMPORT_DEPLOYMENT, parameters=parameters, timeout=0, as_subflow=False, idempotency_key=idempotency_key, tags=tags
        )
    except ObjectNotFound:
        raise ConfigurationError(
            f"The deployment {IMPORT_DEPLOYMENT!r} does not exist on this Prefect server.",
            "Start Ferry's runner (`ferry serve`, or `ferry deploy` and `ferry worker`).",
        ) from None
    if idempotency_key and flow_run.parameters != parameters:  # Prefect handed back the run this key started before
        raise IdempotencyKeyReusedError(
            f"The Idempotency-Key already started run {flow_run.id} with other parameters.",
            "Send a new key for a new import, or the same body to get that run again.",
        )
    wake_local_runner()
    return str(flow_run.id)
