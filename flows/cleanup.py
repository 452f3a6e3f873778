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

Deliveries killed mid-way leave things at their destinations too: Ferry's own
``.NAME.<hex>.partial`` files (local folders, SFTP, FTP) and unfinished S3
multipart uploads. At managed storage and at every saved destination block the
flow removes those untouched for ``leftover_hours`` (default
``FERRY_SPOOL_ORPHAN_HOURS``, 24) through each block's ``leftovers`` /
``remove_leftover`` (blocks/destination.py). A destination that cannot be
reached is reported and the others are still swept; such failures are warnings,
not a failed run (a partner's server being down is not Ferry's storage failing).
Azure and GCS leftovers expire by themselves; a bucket lifecycle rule stays the
second line of defence for S3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from ferry.errors import DestinationError, FerryError, ParameterError, Problem

if TYPE_CHECKING:
    from blocks.destination import Destination

SHOWN = 50  # file names listed in the run's artifact
LISTED = 500  # leftovers named in the report (all are counted)
MANAGED = "managed storage"


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
    leftover_cutoff: datetime | None = Field(
        default=None, description="Leftovers of killed deliveries untouched since before this instant were removed."
    )
    destinations_checked: int = Field(default=0, description="Destinations searched for leftovers of killed deliveries.")
    leftovers_found: int = Field(default=0, description="Leftovers of killed deliveries found (partial files, unfinished uploads).")
    leftovers_removed: int = Field(default=0, description="Leftovers removed.")
    leftovers: list[str] = Field(default_factory=list, description=f"The leftovers found, where and since when (the first {LISTED}).")
    leftover_failures: list[str] = Field(
        default_factory=list, description="Destinations that could not be searched and leftovers that could not be removed, with why."
    )
    leftovers_not_swept: list[str] = Field(
        default_factory=list, description="Destinations whose leftovers are not swept here, with why (e.g. they expire by themselves)."
    )


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


def check_leftover_hours(hours: float | None) -> None:
    if hours is not None and not 0 < hours <= 24 * 3650:
        raise ParameterError([Problem("leftover_hours", hours, "must be more than 0 and at most 87600 (ten years)")])


def reachable_destinations() -> list[tuple[str, Callable[[], Destination]]]:
    """Managed storage and every saved destination block, each as (label, loader); loading waits until it is swept."""
    from blocks.registry import managed_storage, resolve_destination, saved_references
    from ferry.settings import get_settings

    exports_dir = get_settings().exports_dir
    found: list[tuple[str, Callable[[], Destination]]] = [(MANAGED, lambda: managed_storage(exports_dir).inner())]
    for reference in saved_references():
        found.append((reference, lambda reference=reference: resolve_destination(reference, exports_dir)))
    return found


def _why(exc: Exception) -> str:
    # A library's own message may quote a URL with credentials or a block's field: only Ferry's messages are shown.
    return exc.message if isinstance(exc, FerryError) else f"{type(exc).__name__} (see the run's log)"


def clean_leftovers(
    report: CleanupReport,
    hours: float | None = None,
    now: datetime | None = None,
    destinations: Sequence[tuple[str, Destination | Callable[[], Destination]]] | None = None,
    warn: Callable[..., None] | None = None,
) -> CleanupReport:
    """Remove what killed deliveries left at ``destinations`` (default: :func:`reachable_destinations`), into ``report``.

    Leftovers untouched for ``hours`` (default ``FERRY_SPOOL_ORPHAN_HOURS``) go;
    ``report.dry_run`` only lists them. A destination that fails is reported and
    the next one is swept; a leftover seen through two blocks (two names for one
    folder) counts once.
    """
    from ferry.settings import get_settings

    check_leftover_hours(hours)
    hours = hours if hours is not None else get_settings().spool_orphan_hours
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=hours)
    report.leftover_cutoff = cutoff
    seen: set[str] = set()
    for label, destination in destinations if destinations is not None else reachable_destinations():
        try:
            dest = destination() if callable(destination) else destination
            note = dest.leftovers_note()
            if note is not None:
                report.leftovers_not_swept.append(f"{label}: {note}")
                continue
            report.destinations_checked += 1
            found = [leftover for leftover in dest.leftovers(cutoff) if leftover.location not in seen]
        except Exception as exc:  # noqa: BLE001 - one destination must not stop the others
            report.leftover_failures.append(f"{label}: {_why(exc)}")
            if warn is not None:
                warn("Cannot search %s for leftovers of killed deliveries: %r", label, exc)
            continue
        for leftover in found:
            seen.add(leftover.location)
            report.leftovers_found += 1
            if len(report.leftovers) < LISTED:
                report.leftovers.append(f"{label}: {leftover.describe()}")
            if report.dry_run:
                continue
            try:
                dest.remove_leftover(leftover)
            except Exception as exc:  # noqa: BLE001 - the next one may still go
                report.leftover_failures.append(f"{label}: {leftover.location}: {_why(exc)}")
                if warn is not None:
                    warn("Cannot remove %s at %s: %r", leftover.location, label, exc)
                continue
            report.leftovers_removed += 1
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
    if report.leftover_cutoff is not None:
        count = report.leftovers_found if report.dry_run else report.leftovers_removed
        lines += [
            "",
            "## Leftovers of killed deliveries",
            "",
            f"{verb} **{count}** partial file(s) and unfinished upload(s) untouched since "
            f"{report.leftover_cutoff:%Y-%m-%d %H:%M} UTC at {report.destinations_checked} destination(s).",
        ]
        if report.leftovers:
            lines += [""] + [f"- {leftover}" for leftover in report.leftovers[:SHOWN]]
            if report.leftovers_found > SHOWN:
                lines.append(f"- ... and {report.leftovers_found - SHOWN} more")
        if report.leftover_failures:
            lines += ["", f"### {len(report.leftover_failures)} problem(s)", ""]
            lines += [f"- {failure}" for failure in report.leftover_failures[:SHOWN]]
        if report.leftovers_not_swept:
            lines += ["", "### Not swept here", ""]
            lines += [f"- {note}" for note in report.leftovers_not_swept[:SHOWN]]
    return "\n".join(lines) + "\n"


@flow(name="cleanup-managed-exports", validate_parameters=True)
def cleanup_managed_exports(retention_days: int | None = None, dry_run: bool = False, leftover_hours: float | None = None) -> CleanupReport:
    """Delete managed-storage exports older than the retention period (FERRY_MANAGED_RETENTION_DAYS unless given).

    Also removes partial files and unfinished uploads of killed deliveries, at
    managed storage and every saved destination block, untouched for
    ``leftover_hours`` (FERRY_SPOOL_ORPHAN_HOURS unless given).
    """
    from ferry.sweep import log_sweep, sweep

    logger = get_run_logger()
    check_leftover_hours(leftover_hours)
    if not dry_run:
        log_sweep(sweep(), logger.warning)
    report = clean(retention_days, dry_run)
    clean_leftovers(report, leftover_hours, warn=logger.warning)
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
    logger.info(
        "Leftovers of killed deliveries at %d destination(s): %d found, %d removed, %d problem(s)",
        report.destinations_checked,
        report.leftovers_found,
        report.leftovers_removed,
        len(report.leftover_failures),
    )
    if report.failures:
        raise DestinationError(
            f"{len(report.failures)} expired file(s) in {report.storage} could not be deleted; first: {report.failures[0]}",
            "Check the storage's permissions; the next cleanup run tries again.",
        )
    return report
