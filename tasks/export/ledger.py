"""Ledger: make a run's outcome visible where users look for it.

The run record itself is the flow's persisted return value; this stage adds
the audit-log entry and the artifacts the Prefect UI shows for the run.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from ferry.audit import write_audit
from ferry.params import ExportRequest
from ferry.records import ExportRecord
from ferry.store.engine import get_engine


def audit_details(request: ExportRequest) -> dict:
    """The request's filters as the audit log keeps them (no secrets live in requests)."""
    return request.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"workspace", "resource", "actor"})


def summary_markdown(record: ExportRecord) -> str:
    if record.status == "failed":
        return f"# Export failed\n\n**{record.resource}** from workspace **{record.workspace}**\n\n```\n{record.error}\n```\n"
    lines = [
        f"# Export of {record.resource}",
        "",
        "| | |",
        "|---|---|",
        f"| Workspace | {record.workspace} |",
        f"| Format | {record.format} |",
        f"| Rows | {record.record_count:,} |",
        f"| Size | {record.file_size:,} bytes |",
        f"| File | `{record.destination_path}` |",
        f"| SHA-256 | `{record.sha256}` |",
        f"| Started | {record.started_at.isoformat()} |",
        f"| Completed | {record.completed_at.isoformat() if record.completed_at else ''} |",
    ]
    if record.validation_failures:
        lines += ["", "## Catalog check failures (shipped with on_invalid=warn)", "", "| column | check | rows |", "|---|---|---|"]
        lines += [f"| {f['column']} | {f['check']} | {f['rows']} |" for f in record.validation_failures]
    return "\n".join(lines) + "\n"


@task(name="ledger", cache_policy=NONE, persist_result=False)
def ledger(record: ExportRecord, request: ExportRequest | None, preview: list[dict[str, str]]) -> None:
    """Audit-log entry, summary artifact and first-rows table (``preview``, from the transform stage) for one export run."""
    if request is not None:
        write_audit(
            get_engine(),
            workspace=record.workspace,
            actor=request.actor,
            action=f"export.{record.status}",
            resource=record.resource,
            run_id=record.run_id,
            details=audit_details(request),
            payload_bytes=record.file_size,
        )
    create_markdown_artifact(summary_markdown(record), key="export-summary", description="Export run record")
    if preview:
        create_table_artifact(preview, key="export-preview", description=f"First {len(preview)} rows of the export")
