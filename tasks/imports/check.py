"""``ferry import validate``: every check of a real import, without Prefect and without touching the store.

The same stage functions as the import flow (validate, transform and load, at
the same time, joined by pipes), run against a throw-away SQLite store in a
temporary folder: what the file itself gets wrong, in seconds, before anyone
runs the import.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from ferry.errors import FerryError, ParameterError
from ferry.import_params import ImportRequest
from ferry.import_plan import build_plan
from ferry.pipe import Pipe, run_in_threads
from ferry.settings import get_settings
from ferry.spool import write_spool
from tasks.imports.map import auto_mapping
from tasks.imports.transform import static_scalars
from tasks.imports.validate import first_errors, value_map_problems


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
    from tasks.imports.load import check_create_missing, load_stream
    from tasks.imports.parse import iter_batches, sniff
    from tasks.imports.transform import transform_stream
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
        info = sniff(request.source_path, sheet=request.sheet)
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
        if problems := value_map_problems(plan):
            raise ParameterError(problems)
        static_scalars(plan)
        engine = make_engine(f"sqlite:///{folder / 'validate.db'}")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                ensure_workspace(conn, "validate")
            pipes = checked, staged = Pipe(), Pipe()
            validated, _, loaded = run_in_threads(
                pipes,
                lambda: validate_spool(spool, plan, folder, checked),
                lambda: transform_stream(checked, plan, staged),
                lambda: load_stream(engine, staged, plan, str(uuid.uuid4()), "validate", folder),
            )
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
            "warnings": list(info.warnings) + list(plan.warnings) + validated.warnings + notes,
            "mapping": list(plan.mapping),
        }
