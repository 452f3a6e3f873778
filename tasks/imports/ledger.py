"""The import's ledger stage: an audit-log entry, a markdown summary and a table of the first errors per run.

The run record itself is the flow's persisted return value (Prefect's run
history is the ledger); this stage writes what sits beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from ferry.audit import write_audit
from ferry.checks import is_remote_source, shown_url
from ferry.errors import FerryError
from ferry.import_params import ImportRequest
from ferry.records import ImportRecord, RollbackRecord
from ferry.store.engine import get_engine
from tasks.imports.validate import first_errors

ERROR_TABLE_ROWS = 20


def now() -> datetime:
    return datetime.now(UTC)


def _options(request: ImportRequest) -> dict:
    try:
        match = request.match_fields()
    except FerryError:  # an unknown resource: the record still says what was asked
        match = request.match
    return {
        "duplicates": request.duplicates,
        "match": match,
        "merge": request.merge,
        "static_values": request.static_values,
        "create_missing_references": request.create_missing_references,
        "skip_validation": request.skip_validation,
        "auto_map": request.auto_map,
        "dry_run": request.dry_run,
        "max_error_rate": request.max_error_rate,
    }


def new_record(request: ImportRequest, run_id: str) -> ImportRecord:
    """The run's record before anything ran: status failed until the run says otherwise."""
    return ImportRecord(
        run_id=run_id,
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        source=shown_url(request.source) if is_remote_source(request.source) else request.source,  # no URL tokens
        dry_run=request.dry_run,
        started_at=now(),
        options=_options(request),
    )


def completed_record(
    record: ImportRecord,
    request: ImportRequest,
    rows: int,
    validated,
    loaded,
    rejected: Path | None,
    quality: list[dict],
    timings: dict[str, float],
) -> ImportRecord:
    """The record of a run whose stages all ran: counts, the first errors, samples and where the rejected rows are."""
    errors = first_errors(validated.errors, request.max_errors)
    if len(errors) < request.max_errors:
        errors += first_errors(loaded.errors, request.max_errors - len(errors))
    error_summary = dict(validated.by_check)
    for key, n in loaded.by_check.items():
        error_summary[key] = error_summary.get(key, 0) + n
    samples = dict(loaded.samples)
    samples["reject"] = errors[:5]
    error_rows = validated.error_rows + loaded.rejected_rows
    over = loaded.over_error_rate
    return record.model_copy(
        update={
            "status": "failed" if over else "partial" if error_rows else "success",
            "error": too_many_rejected(error_rows, rows, request.max_error_rate) if over else None,
            "total_rows": rows,
            "processed_rows": rows,
            "created_rows": 0 if over else loaded.created_rows,
            "updated_rows": 0 if over else loaded.updated_rows,
            "skipped_rows": loaded.skipped_rows,
            "error_rows": error_rows,
            "errors": errors,
            "error_count": validated.error_count + loaded.error_count,
            "error_summary": dict(sorted(error_summary.items())),
            "rejected_rows_path": str(rejected) if rejected else None,
            "reference_warnings": loaded.reference_warnings,
            "created_references": loaded.created_references,
            "samples": samples,
            "data_quality": quality,
            "completed_at": now(),
            "timings": timings,
        }
    )


def too_many_rejected(error_rows: int, rows: int, max_error_rate: float) -> str:
    """The error of a run that rejected more rows than ``max_error_rate`` allows (and so loaded nothing)."""
    return (
        f"{error_rows:,} of {rows:,} rows were rejected ({error_rows / max(rows, 1):.1%}), more than the "
        f"{max_error_rate:.1%} max_error_rate allows; nothing was loaded. The rejected-rows file lists every rejected row "
        "and why: fix them and import again, or raise --max-error-rate (API: maxErrorRate)."
    )


def outcome_message(record: ImportRecord) -> str:
    """One line for the Prefect run state's message: the outcome and its counts."""
    done = "Would import" if record.dry_run else "Imported"
    counts = (
        f"{record.created_rows:,} created, {record.updated_rows:,} updated, {record.skipped_rows:,} skipped, "
        f"{record.error_rows:,} of {record.total_rows:,} rows rejected"
    )
    if record.status == "partial":
        return f"Partial: {done.lower()} {record.resource} with rows rejected: {counts}"
    return f"{done} {record.resource}: {counts}"


def summary_markdown(record: ImportRecord) -> str:
    title = "Import dry run" if record.dry_run else "Import"
    if record.status == "failed":
        return f"# {title} failed\n\n**{record.resource}** into workspace **{record.workspace}** from `{record.source}`\n\n```\n{record.error}\n```\n"
    if record.status == "submitted":
        return (
            f"# {title} submitted\n\n{record.file_size:,} bytes of {record.resource} go to workspace **{record.workspace}** "
            f"in deployment run `{record.deployment_run_id}`.\n"
        )
    verb = "would be" if record.dry_run else "were"
    lines = [
        f"# {title} of {record.resource}" + (" (partial: rows rejected)" if record.status == "partial" else ""),
        "",
        "| | |",
        "|---|---|",
        f"| Workspace | {record.workspace} |",
        f"| File | `{record.source}` ({record.file_size:,} bytes, {record.file_type}) |",
        f"| Rows in the file | {record.total_rows:,} |",
        f"| Created | {record.created_rows:,} |",
        f"| Updated | {record.updated_rows:,} |",
        f"| Skipped | {record.skipped_rows:,} |",
        f"| Rejected | {record.error_rows:,} |",
        f"| Strategy | duplicates={record.options.get('duplicates')}, match={record.options.get('match')}, merge={record.options.get('merge')} |",
        f"| Rejected rows file | `{record.rejected_rows_path or '-'}` |",
        "",
        f"Rows {verb} written in one transaction{' (rolled back: dry run)' if record.dry_run else ''}.",
    ]
    if record.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in record.warnings]
    if record.reference_warnings:
        lines += ["", "## Unresolved references", "", "| field | resource | rows | values (first) |", "|---|---|---|---|"]
        lines += [
            f"| {w['field']} | {w['resource']} | {w['rows']} | {', '.join(str(v['value']) for v in w['values'][:5])} |"
            for w in record.reference_warnings
        ]
    if record.error_summary:
        lines += ["", "## Errors by field and check", "", "| field:check | errors |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in record.error_summary.items()]
    if record.data_quality:
        lines += ["", "## Data quality (great-expectations, sample)", "", "| expectation | column | ok | unexpected |", "|---|---|---|---|"]
        lines += [
            f"| {d['expectation']} | {d['column']} | {'yes' if d['success'] else 'no'} | {d['unexpected_count']} ({d['unexpected_percent']}%) |"
            for d in record.data_quality
        ]
    return "\n".join(lines) + "\n"


def audit_details(record: ImportRecord) -> dict:
    return {
        "source": Path(record.source).name,
        "dry_run": record.dry_run,
        "processing_mode": record.processing_mode,
        "options": record.options,
        "created": record.created_rows,
        "updated": record.updated_rows,
        "skipped": record.skipped_rows,
        "rejected": record.error_rows,
    }


@task(name="import-ledger", cache_policy=NONE, persist_result=False)
def import_ledger(record: ImportRecord, actor: str) -> None:
    """Audit-log entry, markdown summary and a table of the first errors for one import run."""
    action = f"import.{'dry_run' if record.dry_run and record.status == 'success' else record.status}"
    write_audit(
        get_engine(),
        workspace=record.workspace,
        actor=actor,
        action=action,
        resource=record.resource,
        run_id=record.run_id,
        details=audit_details(record),
        payload_bytes=record.file_size,
    )
    create_markdown_artifact(summary_markdown(record), key="import-summary", description="Import run record")
    if record.errors:
        rows = [{k: ("" if v is None else str(v)) for k, v in e.items()} for e in record.errors[:ERROR_TABLE_ROWS]]
        create_table_artifact(rows, key="import-errors", description=f"First {len(rows)} of {record.error_count} errors")


def rollback_markdown(record: RollbackRecord) -> str:
    if record.status != "success":
        return f"# Rollback of import {record.import_run_id} refused\n\n```\n{record.error}\n```\n"
    return (
        f"# Rollback of import {record.import_run_id}\n\n| | |\n|---|---|\n| Resource | {record.resource} |\n"
        f"| Workspace | {record.workspace} |\n| Created records deleted | {record.deleted_rows:,} |\n"
        f"| Updated records restored | {record.restored_rows:,} |\n| References deleted | {record.deleted_references or '-'} |\n"
    )


@task(name="rollback-ledger", cache_policy=NONE, persist_result=False)
def rollback_ledger(record: RollbackRecord, actor: str) -> None:
    """The rollback's summary artifact, and an audit entry when it changed the store."""
    if record.status == "success":
        details = {
            "import_run_id": record.import_run_id,
            "deleted": record.deleted_rows,
            "restored": record.restored_rows,
            "deleted_references": record.deleted_references,
        }
        write_audit(
            get_engine(),
            workspace=record.workspace,
            actor=actor,
            action="import.rollback",
            resource=record.resource,
            run_id=record.run_id,
            details=details,
            payload_bytes=None,
        )
    create_markdown_artifact(rollback_markdown(record), key="rollback-summary")
