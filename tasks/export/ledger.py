"""Ledger: make a run's outcome visible where users look for it.

The run record itself is the flow's persisted return value; this stage adds
the audit-log entry and the artifacts the Prefect UI shows for the run.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from ferry.audit import write_audit
from ferry.params import ExportRequest
from ferry.records import ExportRecord
from ferry.spool import read_spool
from ferry.store.engine import get_engine


def audit_details(request: ExportRequest) -> dict:
    """The request's filters as the audit log keeps them (no secrets live in requests)."""
    return request.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"workspace", "resource", "actor"})


def preview_limit() -> int:
    """Rows the first-rows artifact copies into Prefect's database, readable by everyone with UI access (FERRY_PREVIEW_ROWS)."""
    from ferry.settings import get_settings

    return get_settings().preview_rows


def preview_rows(spool: Path | None, limit: int | None = None) -> list[dict]:
    """The export's first ``limit`` rows (default FERRY_PREVIEW_ROWS) as text; none when the setting is 0."""
    limit = preview_limit() if limit is None else limit
    if limit <= 0 or spool is None or not spool.exists():
        return []
    rows: list[dict] = []
    for batch in islice(read_spool(spool), 0, 1):
        rows = pa.Table.from_batches([batch.slice(0, limit)]).to_pylist()
    return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in rows]


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
def ledger(record: ExportRecord, request: ExportRequest | None, preview_spool: Path | None) -> None:
    """Audit-log entry, summary artifact and first-rows table for one export run."""
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
    rows = preview_rows(preview_spool)
    if rows:
        create_table_artifact(rows, key="export-preview", description=f"First {len(rows)} rows of the export")
