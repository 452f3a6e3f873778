"""The rollback flow: undo one import exactly, or refuse saying why (see ``tasks.imports.rollback``)."""

from __future__ import annotations

import uuid

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from ferry.records import RollbackRecord
from ferry.run_tags import ROLLED_BACK, retag_flow_run
from flows.outcome import failed, failure_message
from tasks.imports.ledger import now, rollback_ledger
from tasks.imports.rollback import roll_back


@flow(name="rollback-import", persist_result=True, validate_parameters=True)
def rollback_import(run_id: str, actor: str = "ferry"):
    """Undo the import run ``run_id``: delete what it created, restore what it updated."""
    logger = get_run_logger()
    record = RollbackRecord(run_id=str(flow_run.get_id() or uuid.uuid4()), import_run_id=run_id, status="failed", started_at=now())
    try:
        done = roll_back(run_id, actor)
    except Exception as exc:  # noqa: BLE001 - every failure must leave a failed record and a summary
        error = failure_message(exc, "rollback", logger, nothing_written=True)
        record = record.model_copy(update={"error": error, "completed_at": now()})
        rollback_ledger(record, actor)
        return failed(error, record)
    record = record.model_copy(
        update={
            "status": "success",
            "import_run_id": done.run_id,  # the full id, when a short one was given
            "resource": done.resource,
            "workspace": done.workspace,
            "deleted_rows": done.deleted_rows,
            "restored_rows": done.restored_rows,
            "deleted_references": done.deleted_references,
            "completed_at": now(),
        }
    )
    rollback_ledger(record, actor)
    try:  # the import's history entry and record say rolled_back from now on; a run Prefect no longer holds only loses the mark
        retag_flow_run(done.run_id, add=[ROLLED_BACK])
    except Exception:
        logger.warning("Import run %s could not be marked rolled back in Prefect's run history", run_id, exc_info=True)
    logger.info("Rolled back import %s: %d deleted, %d restored", done.run_id, done.deleted_rows, done.restored_rows)
    return record
