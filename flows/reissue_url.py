"""reissue-download-url: a fresh download URL for the file of a finished export run.

Signed URLs expire (15 minutes by default) but the file stays until its
destination deletes it (managed storage: the retention period). This flow
reads the run's record - the export flow's persisted return value, which
needs result storage this process can read (see the README's operator notes) -
resolves the same destination the run used from the run's own parameters,
checks the file is still there, and signs a new URL.

The URL is returned, never logged or put in an artifact: whoever holds it can
download the file until it expires.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from ferry.errors import DestinationError, FerryError, ParameterError, Problem
from ferry.records import ExportRecord

EXPORT_FLOW = "export-data"


class DownloadLink(BaseModel):
    """A fresh URL for the file of an export run. Field names are a contract (CLI --json)."""

    run_id: str = Field(description="The export run whose file the URL downloads.")
    location: str = Field(description="Where the file is stored.")
    url: str = Field(description="The signed download URL.")
    expires_at: datetime = Field(description="When the URL stops working (UTC).")


def _problems(run_id: str, expires_minutes: int | None) -> list[Problem]:
    problems = []
    try:
        uuid.UUID(run_id)
    except (ValueError, AttributeError, TypeError):
        problems.append(Problem("run_id", run_id, "not a run id (a UUID such as the `run` the export printed)"))
    if expires_minutes is not None and not 1 <= expires_minutes <= 7 * 24 * 60:
        problems.append(Problem("expires_minutes", expires_minutes, "must be between 1 and 10080 (7 days)"))
    return problems


def read_export_run(run_id: str) -> tuple[ExportRecord, dict]:
    """The record and parameters of export run ``run_id``, or a FerryError saying why not."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uuid.UUID(run_id))
        except ObjectNotFound:
            raise FerryError(f"No run {run_id} in this Prefect server's history.",
                             "Check the run id (ferry export prints it; the Prefect UI lists runs).") from None
        flow_name = client.read_flow(run.flow_id).name
    if flow_name != EXPORT_FLOW:
        raise FerryError(f"Run {run_id} is a {flow_name!r} run, not an export.", "Give the id of an export-data run.")
    if run.state is None or not run.state.is_final():
        raise FerryError(f"Export run {run_id} has not finished ({run.state.name if run.state else 'no state'}).",
                         "Wait for it to finish, then ask again.")
    try:
        record = run.state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - missing or unreadable result storage: say what to check
        raise FerryError(f"The record of export run {run_id} cannot be read back ({type(exc).__name__}).",
                         "Results must live in storage this process can read: run on the machine that ran the export, "
                         "or configure shared result storage (PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK).") from None
    if not isinstance(record, ExportRecord):
        raise FerryError(f"Export run {run_id} left no run record (it ended {run.state.name}).", "Run the export again.")
    return record, dict(run.parameters or {})


def fresh_link(run_id: str, expires_minutes: int | None = None) -> DownloadLink:
    """The work of the flow, callable without one (tests, other flows)."""
    from blocks.registry import resolve_destination
    from ferry.settings import get_settings

    problems = _problems(run_id, expires_minutes)
    if problems:
        raise ParameterError(problems)
    settings = get_settings()
    lifetime = timedelta(minutes=expires_minutes or settings.download_url_minutes)
    record, parameters = read_export_run(run_id)
    if record.status != "success" or not record.destination_path:
        raise FerryError(f"Export run {run_id} failed, so it has no file to download.", "Run the export again.")
    request = parameters.get("request") or {}
    destination = resolve_destination(request.get("destination") if isinstance(request, dict) else None, settings.exports_dir)
    key = destination.key_for(record.destination_path)
    if not destination.can("delete"):  # "delete" bundles exists(); without it we cannot tell whether the file is still there
        raise DestinationError(f"{destination.describe()} cannot tell whether {record.destination_path} still exists.",
                               "Download URLs can be reissued only for object storage and managed storage.")
    if not destination.exists(key):
        raise DestinationError(f"The file of export run {run_id} is gone: {record.destination_path} no longer exists "
                               f"(managed exports are kept {settings.managed_retention_days} days).",
                               "Run the export again to get a new file.")
    url = destination.download_url(key, lifetime)
    if not url:
        raise DestinationError(f"{destination.describe()} cannot give download URLs; the file is at {record.destination_path}.",
                               "Use an S3, Azure Blob or GCS destination (or managed storage on one) for download links.")
    return DownloadLink(run_id=run_id, location=record.destination_path, url=url, expires_at=datetime.now(UTC) + lifetime)


@flow(name="reissue-download-url", validate_parameters=True)
def reissue_download_url(run_id: str, expires_minutes: int | None = None) -> DownloadLink:
    """A fresh signed download URL for the file of finished export run ``run_id`` (while the file exists)."""
    logger = get_run_logger()
    try:
        link = fresh_link(run_id, expires_minutes)
    except FerryError as exc:
        logger.error("No download URL for run %s: %s", run_id, exc)
        raise
    logger.info("Issued a download URL for run %s (%s), valid until %s", run_id, link.location, link.expires_at.isoformat())
    return link
