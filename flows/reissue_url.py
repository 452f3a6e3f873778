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

from ferry.errors import DestinationError, FerryError, ParameterError, Problem, RunStateError
from ferry.runs import read_export_run


class DownloadLink(BaseModel):
    """A fresh URL for the file of an export run. Field names are a contract (CLI --json)."""

    run_id: str = Field(description="The export run whose file the URL downloads.")
    location: str = Field(description="Where the file is stored.")
    url: str = Field(description="The signed download URL.")
    expires_at: datetime = Field(description="When the URL stops working (UTC).")


def link_problems(run_id: str, expires_minutes: int | None) -> list[Problem]:
    problems = []
    try:
        uuid.UUID(run_id)
    except (ValueError, AttributeError, TypeError):
        problems.append(Problem("run_id", run_id, "not a run id (a UUID such as the `run` the export printed)"))
    if expires_minutes is not None and not 1 <= expires_minutes <= 7 * 24 * 60:
        problems.append(Problem("expires_minutes", expires_minutes, "must be between 1 and 10080 (7 days)"))
    return problems


def export_file(run_id: str):
    """The destination and key of a finished export's file, while it exists: ``(record, destination, key)``."""
    from blocks.registry import resolve_destination
    from ferry.settings import get_settings

    settings = get_settings()
    record, parameters = read_export_run(run_id)
    if record.status != "success" or not record.destination_path:
        raise RunStateError(f"Export run {run_id} failed, so it has no file to download.", "Run the export again.")
    request = parameters.get("request") or {}
    destination = resolve_destination(request.get("destination") if isinstance(request, dict) else None, settings.exports_dir)
    key = destination.key_for(record.destination_path)
    if not destination.can("delete"):  # "delete" bundles exists(); without it we cannot tell whether the file is still there
        raise DestinationError(
            f"{destination.describe()} cannot tell whether {record.destination_path} still exists.",
            "Download URLs can be reissued only for object storage and managed storage.",
        )
    if not destination.exists(key):
        raise DestinationError(
            f"The file of export run {run_id} is gone: {record.destination_path} no longer exists "
            f"(managed exports are kept {settings.managed_retention_days} days).",
            "Run the export again to get a new file.",
        )
    return record, destination, key


def fresh_link(run_id: str, expires_minutes: int | None = None, serve_local=None) -> DownloadLink:
    """The work of the flow, callable without one (tests, other flows, the HTTP API).

    ``serve_local(path, lifetime) -> url``: how to give a URL for a file in a
    local folder, which cannot sign one itself (the HTTP API serves such files).
    """
    from ferry.settings import get_settings

    problems = link_problems(run_id, expires_minutes)
    if problems:
        raise ParameterError(problems)
    lifetime = timedelta(minutes=expires_minutes or get_settings().download_url_minutes)
    record, destination, key = export_file(run_id)
    url = destination.download_url(key, lifetime)
    if not url and serve_local is not None and (path := destination.local_path(key)) is not None:
        url = serve_local(path, lifetime)
    if not url:
        raise DestinationError(
            f"{destination.describe()} cannot give download URLs; the file is at {record.destination_path}.",
            "Use an S3, Azure Blob or GCS destination (or managed storage on one) for download links.",
        )
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
