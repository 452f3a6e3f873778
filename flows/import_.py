"""The import flow: (fetch) -> parse -> map -> validate -> transform -> load -> rejected rows -> ledger.

Parse writes the file's rows to a spool (the rejected-rows file and the
data-quality summary read it again); validate, transform and load then run at
the same time, each a task in its own thread, handing record batches on
through bounded pipes (:mod:`ferry.pipe`): the database stages one batch while
the next is checked, memory stays flat, and Prefect keeps only small results.
The mapping is settled and checked against the file's header before a single
data row is read, so a bad mapping costs nothing. The flow's return value is
the run record (:class:`ImportRecord`); a failed run returns a Failed state
that carries the record with its error, so the run history shows both.

Small files run inline. Files above ``inline_max_bytes`` are handed to the
``import-data/default`` deployment and this run returns at once with the
deployment run's id to poll; both modes report progress the same way (a
progress artifact per stage, updated per batch).
"""

from __future__ import annotations

import shutil
import time
import uuid

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.sealed_urls import forget as forget_sealed
from ferry.arrow_memory import use_lean_memory_pool
from ferry.checks import is_remote_source
from ferry.errors import FerryError
from ferry.import_params import ImportRequest
from ferry.pipe import Pipe, broken_if_interrupted, run_together
from ferry.run_tags import HANDED_OFF, import_tags, retag_flow_run, store_tag
from ferry.settings import get_settings
from flows.outcome import failed, failure_message
from tasks.imports.fetch import check_source, fetch_source
from tasks.imports.handoff import hand_off
from tasks.imports.ledger import completed_record, import_ledger, new_record, now, outcome_message
from tasks.imports.load import LoadResult, load_rows
from tasks.imports.map import map_columns, remember_plan
from tasks.imports.parse import read_rows, sniff_source
from tasks.imports.quality import finish_quality_summary, start_quality_summary, stop_quality_summary
from tasks.imports.rejected import write_rejected_rows
from tasks.imports.transform import transform_rows
from tasks.imports.validate import validate_rows
from tasks.notify import send_notifications


class _Clock:
    """Seconds per stage, for the record (and the benchmark's breakdown)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        current = time.monotonic()
        self.laps[name] = round(current - self._last, 3)
        self._last = current


#: validate, transform and load run at the same time: each needs a thread of its own, whatever
#: PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS says (fewer threads would leave a stage waiting on a pipe forever).
PIPELINED_STAGES = 3


@flow(name="import-data", persist_result=True, validate_parameters=True, task_runner=ThreadPoolTaskRunner(max_workers=PIPELINED_STAGES))
def import_data(request: ImportRequest):
    """Import a file into one resource of one workspace; never half-written (one transaction)."""
    use_lean_memory_pool()
    logger = get_run_logger()
    given = request  # as given: a remote source is fetched again by a deployment run, and a sealed URL forgotten at the end
    run_id = str(flow_run.get_id() or uuid.uuid4())
    spool_dir = get_settings().spool_dir / f"import-{run_id}"
    record = new_record(request, run_id)
    quality = None
    loaded: LoadResult | None = None
    handed_off = False
    in_run = flow_run.get_id() is not None
    try:
        if in_run:  # the import history selects on these (ferry.run_tags)
            retag_flow_run(run_id, add=import_tags(request.workspace, request.resource))
        request = request.validated()
        check_source(request.source)
        record.resource = request.resource_def.slug
        if is_remote_source(request.source):
            request = request.model_copy(update={"source": str(fetch_source(request.source, spool_dir))})
        record.file_size = request.source_path.stat().st_size
        if (submitted := hand_off(request, given, record, logger)) is not None:
            handed_off = True  # the deployment run fetches the source again (and forgets a sealed URL)
            if in_run:  # the deployment run is the one the history shows
                retag_flow_run(run_id, add=[HANDED_OFF], remove=[store_tag()])
            import_ledger(submitted, request.actor)
            send_notifications(submitted, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
            return submitted
        if request.skip_validation:
            logger.warning("skip_validation is on: values that fail checks are loaded as EMPTY instead of rejecting their rows")

        clock = _Clock()
        source = sniff_source(request)
        plan = map_columns(request, source)
        parsed = read_rows(source, spool_dir)
        clock.lap("read")
        record.file_type, record.mapping = parsed.file_type, list(plan.mapping)
        record.warnings += parsed.warnings + list(plan.warnings)
        logger.info("Importing %d rows of %s into %s (%s)", parsed.rows, plan.resource, plan.workspace, run_id)
        wants_quality = request.data_quality if request.data_quality is not None else parsed.rows >= get_settings().quality_min_rows
        quality = start_quality_summary(parsed.spool, plan, spool_dir) if wants_quality else None
        pipes = checked, staged = Pipe(), Pipe()
        with broken_if_interrupted(pipes):
            validated, _, loaded = run_together(
                pipes,
                validate_rows.submit(parsed.spool, plan, spool_dir, checked),
                transform_rows.submit(checked, plan, staged),
                load_rows.submit(staged, plan, run_id, request.actor, spool_dir, request.allowed_rejected_rows(parsed.rows)),
            )
        record.warnings += validated.warnings
        clock.lap("validate_transform_load")  # at the same time: the merge is the part after the last row was staged
        clock.laps["merge"] = loaded.merge_seconds
        rejected = write_rejected_rows(parsed.spool, [validated.errors, loaded.errors], run_id, parsed.columns)
        clock.lap("rejected_rows")
        summary, quality_problem = finish_quality_summary(quality, spool_dir)
        quality = None
        clock.lap("data_quality_wait")
        record.warnings += [quality_problem] if quality_problem else []
        record = completed_record(record, request, parsed.rows, validated, loaded, rejected, summary, clock.laps)
        if request.auto_map and not request.dry_run and record.status != "failed":
            record.warnings += remember_plan(request, plan)
        import_ledger(record, request.actor)
        send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
        if record.status == "failed":
            logger.error("Import failed: %s", record.error)
            return failed(record.error, record)
        message = outcome_message(record)
        (logger.warning if record.status == "partial" else logger.info)("%s", message)
        return Completed(message=message, data=record)
    except Exception as exc:  # noqa: BLE001 - every failure must leave a failed record and an audit entry
        committed = loaded is not None and loaded.committed
        error = failure_message(exc, "import", logger, nothing_written=not committed)
        if committed:  # a step after the load's commit failed: the rows are in the store, a re-run would apply them again
            error += (
                f" The rows were loaded and committed before this failure: do not re-run; `ferry import rollback {run_id}` undoes them."
            )
        record = record.model_copy(update={"status": "failed", "error": error, "completed_at": now()})
        try:
            import_ledger(record, request.actor)
        except FerryError as ledger_error:  # e.g. the store still busy: the run still ends with its own error
            logger.error("The failed import's audit entry could not be written: %s", ledger_error)
        send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
        return failed(error, record)
    finally:
        stop_quality_summary(quality)
        shutil.rmtree(spool_dir, ignore_errors=True)
        if not handed_off:
            forget_sealed(given.source)
