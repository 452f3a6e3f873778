"""The export flow: extract -> validate -> transform -> serialize -> deliver -> ledger.

The first four stages run at the same time, each a task in its own thread,
handing record batches on through bounded pipes (:mod:`ferry.pipe`): the store
is read while earlier rows are shaped and compressed, memory stays flat, and
Prefect keeps only small results. Delivery starts once the file is complete.
The flow's return value is the run record; a failed run returns a Failed state
that carries the record with its error, so the run history shows both.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.registry import resolve_destination
from ferry.arrow_memory import use_lean_memory_pool
from ferry.params import ExportRequest
from ferry.pipe import Pipe, broken_if_interrupted, run_together
from ferry.records import ExportRecord
from ferry.runs import incremental_cursor
from ferry.settings import get_settings
from flows.outcome import failed, failure_message
from tasks.export.deliver import deliver, render_filename
from tasks.export.extract import extract
from tasks.export.ledger import ledger
from tasks.export.serialize import serialize
from tasks.export.transform import transform
from tasks.export.validate import validate
from tasks.notify import send_notifications


def _now() -> datetime:
    return datetime.now(UTC)


def _run_id() -> str:
    return str(flow_run.get_id() or uuid.uuid4())


def with_incremental_cursor(request: ExportRequest, run_id: str, logger) -> ExportRequest:
    """An incremental run of a deployment exports rows created or changed since its last successful run started.

    Windows overlap by the previous run's own duration: a row changed while that
    run was extracting is shipped again - at least once, never lost. A first
    run, or an incremental request outside any deployment, exports everything.
    """
    if not request.incremental or request.since is not None:
        return request
    if not deployment.id:
        logger.info("Incremental export outside a deployment: no run history to continue from, exporting all rows.")
        return request
    cursor = incremental_cursor(deployment.id, run_id)
    if cursor is None:
        logger.info("Incremental export: first successful run of this job, exporting all rows.")
        return request
    logger.info("Incremental export: rows created or changed since %s (start of run %s).", cursor.started_at.isoformat(), cursor.run_id)
    return request.model_copy(update={"since": cursor.started_at})


#: extract, validate, transform and serialize run at the same time: each needs a thread of its own, whatever
#: PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS says (fewer threads would leave a stage waiting on a pipe forever).
PIPELINED_STAGES = 4


@flow(name="export-data", persist_result=True, validate_parameters=True, task_runner=ThreadPoolTaskRunner(max_workers=PIPELINED_STAGES))
def export_data(request: ExportRequest):
    """Export one resource of one workspace as a file at a destination."""
    use_lean_memory_pool()
    logger = get_run_logger()
    started = _now()
    run_id = _run_id()
    settings = get_settings()
    spool_dir = settings.spool_dir / run_id
    record = ExportRecord(
        run_id=run_id, status="failed", resource=request.resource, workspace=request.workspace, format=request.format, started_at=started
    )
    try:
        request = request.validated()
        record.resource = request.resource_def.slug
        destination = resolve_destination(request.destination, settings.exports_dir)
        key = render_filename(request, run_id, started)  # bad templates fail before any data moves
        logger.info("Exporting %s of workspace %s as %s to %s", record.resource, request.workspace, key, destination.describe())

        request = with_incremental_cursor(request, run_id, logger)
        pipes = rows, checked, shaped = Pipe(), Pipe(), Pipe()
        with broken_if_interrupted(pipes):
            extracted, report, preview, file = run_together(
                pipes,
                extract.submit(request, rows),
                validate.submit(rows, request.resource_def, checked, request.on_invalid),
                transform.submit(checked, request, shaped),
                serialize.submit(shaped, request, spool_dir),
            )
        for warning in extracted.warnings:
            logger.warning(warning)
        delivery = deliver(file.path, destination, key, overwrite=request.overwrite)

        record = record.model_copy(
            update={
                "status": "success",
                "record_count": file.rows,
                "file_size": delivery.bytes,
                "destination_path": delivery.location,
                "url": delivery.url,
                "sha256": delivery.sha256,
                "completed_at": _now(),
                "validation_failures": report.summary(),
                "warnings": list(extracted.warnings),
            }
        )
        ledger(record, request, preview)
        logger.info("Exported %d rows (%d bytes) to %s", record.record_count, record.file_size, record.destination_path)
        send_notifications(record, "export", request.notify_email, request.notify_webhook, request.notify_smtp)
        return record
    except Exception as exc:  # noqa: BLE001 - every failure must leave a failed record and an audit entry
        error = failure_message(exc, "export", logger)
        record = record.model_copy(update={"status": "failed", "error": error, "completed_at": _now()})
        ledger(record, request, [])
        send_notifications(record, "export", request.notify_email, request.notify_webhook, request.notify_smtp)
        return failed(error, record)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
