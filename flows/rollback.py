"""The rollback flow: undo one import exactly, or refuse saying why.

It deletes the records the import created (and the references it created for
them) and restores the records it updated to their before-images, all in one
transaction. If any of those records changed since the import (its current
values differ from the import's after-image, or a created record was written
again), it refuses and changes nothing: undoing would destroy someone's later
work. See ``tasks.imports.load.undo_import``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from ferry.audit import write_audit
from ferry.errors import FerryError
from ferry.records import RollbackRecord
from ferry.store.engine import get_engine
from tasks.imports.load import undo_import


def _now() -> datetime:
    return datetime.now(UTC)


@flow(name="rollback-import", persist_result=True, validate_parameters=True)
def rollback_import(run_id: str, actor: str = "ferry"):
    """Undo the import run ``run_id``: delete what it created, restore what it updated."""
    logger = get_run_logger()
    record = RollbackRecord(run_id=str(flow_run.get_id() or uuid.uuid4()), import_run_id=run_id, status="failed", started_at=_now())
    try:
        done = undo_import(get_engine(), run_id, actor)
    except FerryError as exc:
        record = record.model_copy(update={"error": str(exc), "completed_at": _now()})
        logger.error("Rollback refused: %s", exc)
        create_markdown_artifact(f"# Rollback of import {run_id} refused\n\n```\n{exc}\n```\n", key="rollback-summary")
        return Failed(message=str(exc), data=record)
    record = record.model_copy(
        update={
            "status": "success",
            "resource": done.resource,
            "workspace": done.workspace,
            "deleted_rows": done.deleted_rows,
            "restored_rows": done.restored_rows,
            "deleted_references": done.deleted_references,
            "completed_at": _now(),
        }
    )
    write_audit(
        get_engine(),
        workspace=done.workspace,
        actor=actor,
        action="import.rollback",
        resource=done.resource,
        run_id=record.run_id,
        details={
            "import_run_id": run_id,
            "deleted": done.deleted_rows,
            "restored": done.restored_rows,
            "deleted_references": done.deleted_references,
        },
        payload_bytes=None,
    )
    create_markdown_artifact(
        f"# Rollback of import {run_id}\n\n| | |\n|---|---|\n| Resource | {done.resource} |\n| Workspace | {done.workspace} |\n"
        f"| Created records deleted | {done.deleted_rows:,} |\n| Updated records restored | {done.restored_rows:,} |\n"
        f"| References deleted | {done.deleted_references or '-'} |\n",
        key="rollback-summary",
    )
    logger.info("Rolled back import %s: %d deleted, %d restored", run_id, done.deleted_rows, done.restored_rows)
    return record
