"""cleanup-managed-exports: delete managed-storage files older than the retention period.

Managed storage (blocks/managed.py) keeps each export for
``FERRY_MANAGED_RETENTION_DAYS`` (30) after it was written; this flow removes
the older ones. Run it on a schedule (daily is plenty). It also sweeps what a
kill -9 leaves behind (:mod:`ferry.sweep`): Ferry runs left Running by a dead
process are marked Crashed (with an audit entry) and spool folders of dead runs
older than ``FERRY_SPOOL_ORPHAN_HOURS`` are removed. It lists first and
deletes file by file: one file that cannot be deleted does not stop the
others, but fails the run at the end so someone looks. ``dry_run`` only
reports what would go.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from ferry.errors import DestinationError, FerryError, ParameterError, Problem

SHOWN = 50  # file names listed in the run's artifact


class CleanupReport(BaseModel):
    """What one cleanup run did. Field names are a contract (CLI --json, run results)."""

    storage: str = Field(description="The managed storage cleaned (no secrets).")
    retention_days: int = Field(description="Files older than this many days were expired.")
    cutoff: datetime = Field(description="Files last modified before this instant were expired.")
    dry_run: bool = Field(description="True when nothing was deleted.")
    expired: int = Field(default=0, description="Files past the retention period.")
    deleted: int = Field(default=0, description="Files deleted.")
    bytes_freed: int = Field(default=0, description="Bytes deleted.")
    kept: int = Field(default=0, description="Files still within the retention period.")
    failures: list[str] = Field(default_factory=list, description="Files that could not be deleted, with why.")


def clean(retention_days: int | None = None, dry_run: bool = False, now: datetime | None = None) -> CleanupReport:
    """The work of the flow, callable without one."""
    from blocks.registry import managed_storage
    from ferry.settings import get_settings

    if retention_days is not None and not 1 <= retention_days <= 3650:
        raise ParameterError([Problem("retention_days", retention_days, "must be between 1 and 3650")])
    settings = get_settings()
    storage = managed_storage(settings.exports_dir)
    if retention_days is not None:
        storage = storage.model_copy(update={"retention_days": retention_days})
    now = now or datetime.now(UTC)
    storage.check_own_area()
    cutoff = now - timedelta(days=storage.retention_days)
    report = CleanupReport(storage=storage.inner().describe(), retention_days=storage.retention_days, cutoff=cutoff, dry_run=dry_run)
    for stored in storage.inner().list_files():
        if stored.modified >= cutoff:
            report.kept += 1
            continue
        report.expired += 1
        if dry_run:
            continue
        try:
            storage.inner().delete_file(stored.key)
        except FerryError as exc:
            report.failures.append(f"{stored.key}: {exc.message}")
            continue
        report.deleted += 1
        report.bytes_freed += stored.bytes
    return report


def report_markdown(report: CleanupReport) -> str:
    verb = "Would delete" if report.dry_run else "Deleted"
    lines = [
        "# Managed storage cleanup",
        "",
        f"{verb} **{report.expired if report.dry_run else report.deleted}** file(s) "
        f"({report.bytes_freed:,} bytes) older than {report.retention_days} days from {report.storage}; kept {report.kept}.",
    ]
    if report.failures:
        lines += ["", f"## {len(report.failures)} file(s) could not be deleted", ""]
        lines += [f"- {failure}" for failure in report.failures[:SHOWN]]
    return "\n".join(lines) + "\n"


@flow(name="cleanup-managed-exports", validate_parameters=True)
def cleanup_managed_exports(retention_days: int | None = None, dry_run: bool = False) -> CleanupReport:
    """Delete managed-storage exports older than the retention period (FERRY_MANAGED_RETENTION_DAYS unless given)."""
    from ferry.sweep import log_sweep, sweep

    logger = get_run_logger()
    if not dry_run:
        log_sweep(sweep(), logger.warning)
    report = clean(retention_days, dry_run)
    create_markdown_artifact(report_markdown(report), key="managed-storage-cleanup", description="Managed storage cleanup")
    logger.info(
        "Cleanup of %s: %d expired, %d deleted (%d bytes), %d kept, %d failed",
        report.storage,
        report.expired,
        report.deleted,
        report.bytes_freed,
        report.kept,
        len(report.failures),
    )
    if report.failures:
        raise DestinationError(
            f"{len(report.failures)} expired file(s) in {report.storage} could not be deleted; first: {report.failures[0]}",
            "Check the storage's permissions; the next cleanup run tries again.",
        )
    return report
