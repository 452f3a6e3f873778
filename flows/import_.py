"""The import flow: parse -> (map) -> validate -> transform -> load -> ledger.

Stages hand each other spool-file paths (never data), so memory stays flat and
Prefect keeps only small results. The flow's return value is the run record
(:class:`ImportRecord`); a failed run returns a Failed state that carries the
record with its error, so the run history shows both.

Small files run inline. Files above ``inline_max_bytes`` are handed to the
``import-data/default`` deployment with ``run_deployment(..., timeout=0)`` and
this run returns at once with the deployment run's id to poll; both modes
report progress the same way (a progress artifact per stage, updated per batch).
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.states import Failed

from ferry.audit import write_audit
from ferry.checks import is_remote_source, shown_url
from ferry.errors import DeploymentUnavailableError, FerryError
from ferry.import_params import IMPORT_DEPLOYMENT, ImportPlan, ImportRequest, MappingEntry, build_plan
from ferry.progress import Progress
from ferry.records import ImportRecord
from ferry.settings import get_settings
from ferry.spool import read_spool, write_spool
from ferry.store.engine import get_engine
from tasks.imports.fetch import check_source, fetch_source
from tasks.imports.load import check_create_missing, load_rows
from tasks.imports.transform import static_scalars, transform_rows
from tasks.imports.validate import ERROR_SCHEMA, ROW, finish_quality_summary, first_errors, start_quality_summary, validate_rows
from tasks.notify import send_notifications

ERROR_TABLE_ROWS = 20


def _now() -> datetime:
    return datetime.now(UTC)


class _Clock:
    """Seconds per stage, for the record (and the benchmark's breakdown)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _run_id() -> str:
    return str(flow_run.get_id() or uuid.uuid4())


def imports_dir() -> Path:
    return get_settings().data_dir / "imports"


# --- parse (the other helper's reader, wrapped as a stage) ------------------------------


@dataclass
class Parsed:
    spool: Path
    rows: int
    columns: list[str]
    file_type: str
    plan: ImportPlan
    warnings: list[str] = field(default_factory=list)


def auto_mapping(info, request: ImportRequest, engine, workspace: str | None = "") -> list[MappingEntry]:
    """Suggest the mapping from the header and 200 sample rows (a mapping accepted before in the workspace wins)."""
    from tasks.imports.map import suggest_mapping
    from tasks.imports.parse import sample

    rows, _, _, _ = sample(info, 200)
    ws = request.workspace if workspace == "" else workspace
    suggested = suggest_mapping(info, rows, request.resource_def.slug, engine=engine if ws else None, workspace=ws)
    return [MappingEntry.coerce(m) for m in suggested]


@task(name="import-parse", cache_policy=NONE, persist_result=False)
def parse_source(request: ImportRequest, spool_dir: Path) -> Parsed:
    """Steps 1-2: settle the mapping from the header, check it, then read the file into an Arrow spool (all text).

    The plan (mapping, static values, references) is checked against the header
    before a single data row is read, so a bad mapping costs nothing.
    """
    from tasks.imports.parse import iter_batches, sniff

    info = sniff(request.source_path)
    mapping = auto_mapping(info, request, get_engine()) if request.auto_map else list(request.mapping or [])
    plan = build_plan(request, list(info.columns), mapping)
    static_scalars(plan)
    check_create_missing(plan)
    progress = Progress("read", None, key="import-progress")

    def counted():
        for batch in iter_batches(info, get_settings().batch_rows):
            progress.advance(batch.num_rows)
            yield batch

    spool = spool_dir / "source.arrow"
    rows = write_spool(spool, info.schema(), counted())
    progress.finish()
    return Parsed(spool, rows, list(info.columns), info.file_type, plan, list(info.warnings))


# --- rejected rows -------------------------------------------------------------------


def _messages_by_row(rows: pa.ChunkedArray, labels: pa.ChunkedArray) -> pa.Table:
    """One ``"; "``-joined message per row, rows ascending, each row's labels in their given order.

    A stable sort and list offsets, not ``group_by``: Acero's threaded list aggregate does not keep
    the labels' order, and its thread pools cost ~50 MB of RSS for a few MB of errors.
    """
    order = pc.sort_indices(rows)  # stable
    sorted_rows = rows.take(order).to_numpy()
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    lists = pa.ListArray.from_arrays(pa.array(np.r_[starts, len(sorted_rows)], pa.int32()), labels.take(order).combine_chunks())
    return pa.table({ROW: sorted_rows[starts], "ferry_errors": pc.binary_join(lists, "; ")})


def write_rejected(source: Path, error_spools: list[Path], target: Path, columns: list[str]) -> int:
    """Every rejected row as in the file, plus its line number and errors; returns rows written."""
    tables = [pa.Table.from_batches(list(read_spool(p)), schema=ERROR_SCHEMA) for p in error_spools if p and p.exists()]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return 0
    errors = pa.concat_tables(tables)
    label = pc.if_else(pc.equal(errors["field"], ""), errors["error"], pc.binary_join_element_wise(errors["field"], errors["error"], ": "))
    messages = _messages_by_row(errors["row"], label)
    message_rows = messages[ROW].to_numpy()
    names = list(columns)
    schema = pa.schema([(c, pa.string()) for c in names] + [("ferry_row", pa.int64()), ("ferry_errors", pa.string())])
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with pacsv.CSVWriter(str(target), schema) as writer:
        for batch in read_spool(source):
            rows = batch.column(ROW)
            if not len(rows):
                continue
            # The file's rows come in order, so a batch's errors are one slice of the sorted messages.
            start = int(np.searchsorted(message_rows, rows[0].as_py(), side="left"))
            stop = int(np.searchsorted(message_rows, rows[-1].as_py(), side="right"))
            if start == stop:
                continue
            found = messages.slice(start, stop - start)
            part = batch.filter(pc.is_in(rows, value_set=found[ROW]))
            if not part.column(ROW).equals(found[ROW].combine_chunks()):
                raise RuntimeError(
                    "Rejected rows and their errors did not line up (row numbers out of order); the rejected-rows file is incomplete."
                )
            out = pa.table([*(part.column(c) for c in names), found[ROW], found["ferry_errors"]], schema=schema)
            writer.write_table(out)
            written += out.num_rows
    return written


# --- ledger --------------------------------------------------------------------------


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
        f"# {title} of {record.resource}",
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


# --- processing mode ------------------------------------------------------------------


def choose_mode(request: ImportRequest) -> str:
    if request.processing != "auto":
        return request.processing
    return "deployment" if request.source_path.stat().st_size > request.inline_max_bytes else "inline"


def dispatch(request: ImportRequest) -> str:
    """Start the import as a run of the import deployment and return its id at once."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    params = {"request": request.model_copy(update={"processing": "inline"}).model_dump(mode="json", by_alias=True)}
    try:
        run = run_deployment(IMPORT_DEPLOYMENT, parameters=params, timeout=0, as_subflow=False)
    except ObjectNotFound:
        raise DeploymentUnavailableError(
            f"The deployment {IMPORT_DEPLOYMENT!r} does not exist on this Prefect server.",
            "Deploy it (`prefect deploy --all` with prefect.yaml) and start a worker for its pool, or run with processing='inline'.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any API failure means: no deployment run was created
        raise DeploymentUnavailableError(
            f"Could not start a run of {IMPORT_DEPLOYMENT!r}: {type(exc).__name__}: {exc}",
            "Check that a Prefect server is reachable (PREFECT_API_URL), or run with processing='inline'.",
        ) from None
    return str(run.id)


# --- the flow -------------------------------------------------------------------------


def _options(request: ImportRequest) -> dict:
    return {
        "duplicates": request.duplicates,
        "match": request.match_fields() if _resource_ok(request) else request.match,
        "merge": request.merge,
        "static_values": request.static_values,
        "create_missing_references": request.create_missing_references,
        "skip_validation": request.skip_validation,
        "auto_map": request.auto_map,
        "dry_run": request.dry_run,
    }


def _resource_ok(request: ImportRequest) -> bool:
    try:
        return request.resource_def is not None
    except FerryError:
        return False


@flow(name="import-data", persist_result=True, validate_parameters=True)
def import_data(request: ImportRequest):
    """Import a file into one resource of one workspace; never half-written (one transaction)."""
    logger = get_run_logger()
    run_id = _run_id()
    settings = get_settings()
    spool_dir = settings.spool_dir / f"import-{run_id}"
    record = ImportRecord(
        run_id=run_id,
        status="failed",
        resource=request.resource,
        workspace=request.workspace,
        source=shown_url(request.source) if is_remote_source(request.source) else request.source,  # no URL tokens
        dry_run=request.dry_run,
        started_at=_now(),
        options=_options(request),
    )
    quality = None
    try:
        request = request.validated()
        check_source(request.source)
        record.resource = request.resource_def.slug
        remote = request if is_remote_source(request.source) else None  # a deployment run fetches it again itself
        if remote:
            request = request.model_copy(update={"source": str(fetch_source(request.source, spool_dir))})
        record.file_size = request.source_path.stat().st_size
        mode = choose_mode(request)
        if mode == "deployment":
            try:
                deployment_run = dispatch(remote or request)
                record = record.model_copy(
                    update={
                        "status": "submitted",
                        "processing_mode": "deployment",
                        "deployment_run_id": deployment_run,
                        "completed_at": _now(),
                    }
                )
                logger.info(
                    "Import of %s bytes handed to deployment %s: run %s", f"{record.file_size:,}", IMPORT_DEPLOYMENT, deployment_run
                )
                import_ledger(record, request.actor)
                send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
                return record
            except DeploymentUnavailableError as exc:
                if request.processing == "deployment":
                    raise
                record.warnings.append(
                    f"The file is {record.file_size:,} bytes (above {request.inline_max_bytes:,}), but it ran inline: {exc.message}"
                )
                logger.warning("Running a large import inline: %s", exc)
        if request.skip_validation:
            logger.warning("skip_validation is on: values that fail checks are loaded as EMPTY instead of rejecting their rows")

        clock = _Clock()
        parsed = parse_source(request, spool_dir)
        clock.lap("read")
        plan = parsed.plan
        record.file_type = parsed.file_type
        record.mapping = list(plan.mapping)
        record.warnings += parsed.warnings + list(plan.warnings)
        logger.info("Importing %d rows of %s into %s (%s)", parsed.rows, plan.resource, plan.workspace, run_id)
        if request.data_quality:
            quality = start_quality_summary(parsed.spool, plan, spool_dir)
        validated = validate_rows(parsed.spool, plan, spool_dir, parsed.rows)
        clock.lap("validate")
        transformed = transform_rows(validated.checked, plan, spool_dir, parsed.rows)
        clock.lap("transform")
        loaded = load_rows(transformed.spool, plan, run_id, request.actor, spool_dir, transformed.rows)
        clock.lap("load")

        run_dir = imports_dir() / run_id
        rejected_path = run_dir / "rejected.csv"
        rejected = write_rejected(parsed.spool, [validated.errors, loaded.errors], rejected_path, parsed.columns)
        clock.lap("rejected_rows")
        summary, quality_problem = finish_quality_summary(quality, spool_dir)
        clock.lap("data_quality_wait")
        quality = None
        if quality_problem:
            record.warnings.append(quality_problem)
        errors = first_errors(validated.errors, request.max_errors)
        if len(errors) < request.max_errors:
            errors += first_errors(loaded.errors, request.max_errors - len(errors))
        error_summary = dict(validated.by_check)
        for key, n in loaded.by_check.items():
            error_summary[key] = error_summary.get(key, 0) + n
        samples = dict(loaded.samples)
        samples["reject"] = errors[:5]
        record = record.model_copy(
            update={
                "status": "success",
                "total_rows": parsed.rows,
                "processed_rows": parsed.rows,
                "created_rows": loaded.created_rows,
                "updated_rows": loaded.updated_rows,
                "skipped_rows": loaded.skipped_rows,
                "error_rows": validated.error_rows + loaded.rejected_rows,
                "errors": errors,
                "error_count": validated.error_count + loaded.error_count,
                "error_summary": dict(sorted(error_summary.items())),
                "rejected_rows_path": str(rejected_path) if rejected else None,
                "reference_warnings": loaded.reference_warnings,
                "created_references": loaded.created_references,
                "samples": samples,
                "data_quality": summary,
                "completed_at": _now(),
                "timings": clock.laps,
            }
        )
        if request.auto_map and not request.dry_run:
            _remember(request, plan, record)
        import_ledger(record, request.actor)
        what = "Would import" if request.dry_run else "Imported"
        logger.info(
            "%s %s: %d created, %d updated, %d skipped, %d rejected",
            what,
            record.resource,
            record.created_rows,
            record.updated_rows,
            record.skipped_rows,
            record.error_rows,
        )
        send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
        return record
    except FerryError as exc:
        record = record.model_copy(update={"status": "failed", "error": str(exc), "completed_at": _now()})
        logger.error("Import failed: %s", exc)
        import_ledger(record, request.actor)
        send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
        return Failed(message=str(exc), data=record)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:300]
        message = (
            f"Unexpected {type(exc).__name__}: {first_line}. Nothing was written (the load is one transaction); "
            "the run can be retried. Details are in the run's logs."
        )
        logger.exception("Import failed unexpectedly")
        record = record.model_copy(update={"status": "failed", "error": message, "completed_at": _now()})
        import_ledger(record, request.actor)
        send_notifications(record, "import", request.notify_email, request.notify_webhook, request.notify_smtp)
        return Failed(message=message, data=record)
    finally:
        if quality is not None and quality.poll() is None:
            quality.kill()
            quality.wait()
        shutil.rmtree(spool_dir, ignore_errors=True)


def _remember(request: ImportRequest, plan: ImportPlan, record: ImportRecord) -> None:
    try:
        from tasks.imports.map import ColumnMapping, remember_mapping

        remember_mapping(get_engine(), request.workspace, request.resource_def.slug, [ColumnMapping.from_json(m) for m in plan.mapping])
    except FerryError as exc:
        record.warnings.append(f"The mapping was used but not remembered: {exc}")


# --- validation only (``ferry import validate``) ---------------------------------------------


def validate_file(
    source: str | Path, resource: str, mapping: list | None = None, auto_map: bool = False, max_errors: int = 100, **options
) -> dict:
    """Every check of a real import but against an empty, throw-away store, without Prefect.

    Without a workspace nothing can match existing records or resolve references,
    so this reports what the file itself gets wrong: per-row errors, uniqueness and
    duplicates inside the file, unmapped columns and required fields.
    """
    import tempfile

    from ferry.store.engine import ensure_workspace, make_engine
    from ferry.store.migrate import upgrade
    from tasks.imports.load import check_create_missing, load_spool
    from tasks.imports.parse import iter_batches, sniff
    from tasks.imports.transform import transform_spool
    from tasks.imports.validate import validate_spool

    request = ImportRequest(
        source=str(source),
        resource=resource,
        workspace="validate",
        mapping=mapping,
        auto_map=auto_map,
        dry_run=True,
        data_quality=False,
        max_errors=max_errors,
        **options,
    ).validated()
    with tempfile.TemporaryDirectory(prefix="ferry-validate-") as tmp:
        folder = Path(tmp)
        info = sniff(request.source_path)
        entries = auto_mapping(info, request, None, workspace=None) if auto_map else list(request.mapping or [])
        spool = folder / "source.arrow"
        rows = write_spool(spool, info.schema(), iter_batches(info, get_settings().batch_rows))
        plan = build_plan(request.model_copy(update={"create_missing_references": True}), list(info.columns), entries)
        notes = []
        try:
            check_create_missing(plan)
        except FerryError:
            plan = build_plan(request, list(info.columns), entries)
        if any(c.reference for c in plan.columns):
            notes.append("References (e.g. company -> account) are only resolved against a workspace: use `ferry import run --dry-run`.")
        static_scalars(plan)
        validated = validate_spool(spool, plan, folder)
        transformed = transform_spool(validated.checked, plan, folder)
        engine = make_engine(f"sqlite:///{folder / 'validate.db'}")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                ensure_workspace(conn, "validate")
            loaded = load_spool(engine, transformed.spool, plan, str(uuid.uuid4()), "validate", folder)
        finally:
            engine.dispose()
        errors = first_errors(validated.errors, max_errors)
        if len(errors) < max_errors:
            errors += first_errors(loaded.errors, max_errors - len(errors))
        summary = dict(validated.by_check)
        for key, n in loaded.by_check.items():
            summary[key] = summary.get(key, 0) + n
        error_rows = validated.error_rows + loaded.rejected_rows
        return {
            "source": str(source),
            "resource": plan.resource,
            "fileType": info.file_type,
            "totalRows": rows,
            "validRows": rows - error_rows,
            "errorRows": error_rows,
            "errorCount": validated.error_count + loaded.error_count,
            "duplicateRows": loaded.skipped_rows,
            "errorSummary": dict(sorted(summary.items())),
            "errors": errors,
            "warnings": list(info.warnings) + list(plan.warnings) + notes,
            "mapping": list(plan.mapping),
        }
