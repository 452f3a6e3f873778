"""Load (import step 5): one transaction, a staging table, set-based merges.

Everything an import writes happens in ONE database transaction:

1. the run's row in the rollback journal (first, so SQLite holds its write lock from here on);
2. the transformed rows go into a temporary staging table in bulk (COPY on
   PostgreSQL, executemany on SQLite) as they arrive from transform, while
   later rows are still being checked - never row by row;
3. set-based SQL does the rest: missing references created (and recorded),
   matches against the store, uniqueness within the file and against the
   store, duplicates inside the file folded by the same rules as duplicates
   against the store, then one ``INSERT ... SELECT`` and one ``UPDATE ... FROM``;
4. before- and after-images of updated records and the ids of created
   records go into the rollback journal in the same transaction.

A crash or a killed worker therefore leaves the store exactly as it was, and
the run can simply be retried. A dry run executes every statement and rolls
back instead of committing, so its counts are exact.

Duplicate strategies (``skip`` | ``update`` | ``create``) and merge modes
(``fill_empty`` | ``overwrite`` | ``prefer_import``) apply to rows that match a
record in the store on the match fields *and* to later rows of the file that
repeat an earlier row's match values: with ``update`` a group of such rows is
folded in file order, as if each row updated the record the previous one
left; with ``skip`` only the first row counts; with ``create`` every row
creates a record, so a unique field that repeats is an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE
from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, Engine, Table, insert, text
from sqlalchemy.exc import IntegrityError

from ferry import catalog
from ferry.catalog import FieldType
from ferry.errors import ParameterError, Problem
from ferry.import_plan import ImportPlan
from ferry.pipe import Pipe
from ferry.progress import Progress
from ferry.settings import get_settings
from ferry.spool import write_spool
from ferry.store import schema as s
from ferry.store.bulk import insert_batches
from ferry.store.engine import workspace_id
from ferry.store.fast_load import rebuilt_indexes
from ferry.store.guard import merge_lock, note_writer, store_writes
from tasks.imports.merge import MergeSql, checkpoint, stamp_param
from tasks.imports.outcomes import samples, stream_rejects
from tasks.imports.repeats import SLOT, RepeatedKeys, supported
from tasks.imports.sql_names import q
from tasks.imports.transform import stage_schema
from tasks.imports.validate import ERROR_SCHEMA, ROW

SQLITE_SLICE_ROWS = 8_192
PG_SLICE_ROWS = 16_384


@dataclass
class LoadResult:
    """What the load did (or, in a dry run, would do). Small: counts, samples, a path."""

    committed: bool
    staged_rows: int = 0
    created_rows: int = 0
    updated_rows: int = 0
    skipped_rows: int = 0
    rejected_rows: int = 0
    errors: Path | None = None  # load-time errors (uniqueness, references, required), ERROR_SCHEMA
    error_count: int = 0
    by_check: dict[str, int] = field(default_factory=dict)
    reference_warnings: list[dict] = field(default_factory=list)
    created_references: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict]] = field(default_factory=dict)
    stamp: datetime | None = None
    over_error_rate: bool = False  # more rows rejected than the run allows: rolled back, nothing loaded
    merge_seconds: float = 0.0  # from the last row staged to the end of the load (the staging overlaps validation)


def check_create_missing(plan: ImportPlan) -> None:
    """create_missing_references can only create records whose required fields the key can fill."""
    problems = []
    for col in plan.columns:
        if not col.reference or not plan.create_missing_references:
            continue
        target = catalog.RESOURCES[col.reference]
        for fdef in target.fields:
            if fdef.required and not fdef.readonly and (fdef.type is FieldType.REFERENCE or fdef.type is FieldType.JSON):
                problems.append(
                    Problem(
                        "create_missing_references", True, f"{target.slug} records need {fdef.slug}, which a {col.key} value cannot supply"
                    )
                )
    if problems:
        raise ParameterError(problems)


def rebuild_pays(conn: Connection, table: Table, rows: int, table_share: float = 1.0) -> bool:
    """Whether writing ``rows`` records is faster with ``table``'s secondary indexes and foreign keys rebuilt afterwards.

    Maintaining an index row by row costs several times more than building it
    once (an UPDATE of a packed table writes a new entry in every index), but a
    rebuild reads the whole table and locks it for the write: so only for a
    large write (``FERRY_IMPORT_BULK_MIN_ROWS``) of at least ``table_share`` of
    the records the table holds (a first load, a migration, a full re-sync). The
    rows were already checked set-based (uniqueness, references), and the
    rebuilt constraints check them again before the transaction commits.
    """
    if rows < get_settings().import_bulk_min_rows:
        return False
    enough = int(rows / table_share)
    held = conn.execute(text(f"SELECT COUNT(*) FROM (SELECT 1 FROM {q(table.name)} LIMIT :n) x"), {"n": enough}).scalar_one()
    return held < enough


def merge(conn: Connection, sql: MergeSql, result: LoadResult, stamp_value, unique_in_file: bool) -> None:
    """Step 3 from the checks on: reject, fold the file's duplicates, then update matched records and insert new ones."""
    plan = sql.plan
    sql.check_unique(in_file=unique_in_file)
    sql.check_required_for_new()
    dropped = sql.drop_rejected()
    dup_rows = sql.fold_duplicates()
    sql.create_source_view()
    matched = int(sql.scalar(f"SELECT COUNT(*) FROM {sql.t('m')}"))
    new_rows = result.staged_rows - dropped - dup_rows - (0 if plan.duplicates == "create" else matched)
    updating = plan.duplicates == "update"
    bulk = (updating and rebuild_pays(conn, sql.table, matched, table_share=0.5)) or rebuild_pays(conn, sql.table, new_rows)
    with rebuilt_indexes(conn, sql.table.name, bulk):  # one rebuild for the update and the insert together
        if updating:
            result.updated_rows = sql.update_matched(stamp_value)
        result.samples = samples(sql)
        result.created_rows = sql.insert_new(stamp_value)
    result.skipped_rows = dup_rows + (0 if plan.duplicates == "create" else matched - result.updated_rows)


def merge_trusting_unique_indexes(conn: Connection, sql: MergeSql, result: LoadResult, stamp_value) -> None:
    """``merge`` without grouping the file by each unique field first: the table's unique indexes find a repeat anyway.

    Most files repeat no unique value, and on a large file that grouping costs more than any other check
    (10M rows: about 13 s per field). So the merge runs inside a savepoint without it; should an index
    refuse a row (PostgreSQL's ``unique_violation``), the savepoint is rolled back and the merge runs again
    with the check, which rejects the repeats row by row as always. The outcome is the same either way.
    """
    try:
        with conn.begin_nested():
            merge(conn, sql, result, stamp_value, unique_in_file=False)
    except IntegrityError as exc:
        if not isinstance(exc.orig, UniqueViolation):
            raise
        merge(conn, sql, result, stamp_value, unique_in_file=True)


def load_stream(
    engine: Engine,
    source: Pipe,
    plan: ImportPlan,
    run_id: str,
    actor: str,
    out_dir: Path,
    max_rejected: int | None = None,
    key: str | None = None,
) -> LoadResult:
    """Steps 1-4 of the module docstring in one transaction, staging the rows as they arrive; commits unless the plan is a dry run.

    ``max_rejected``: how many rows the run may reject in all. The rows validation kept back (the stream's total
    less the rows that reached the load) count, and so do the rows the load itself rejects (uniqueness, references,
    required fields); past it the transaction is rolled back and the result says ``over_error_rate``. The first
    count is known once the rows are staged, so a file with too many bad rows is rolled back before the merge.
    ``key``: the run's progress artifact (None outside a run's task).
    """
    with source.reading("load") as batches:
        check_create_missing(plan)
        header = source.header()  # validation has begun: only now take the store (SQLite: its one write lock)
        stamp = datetime.now(UTC).replace(tzinfo=None)
        result = LoadResult(committed=False, stamp=stamp, errors=out_dir / "load-errors.arrow")
        out_dir.mkdir(parents=True, exist_ok=True)
        progress = Progress("load", header.total, key=key)
        with store_writes(engine, run_id, "import"), engine.connect() as conn:
            trans = conn.begin()
            try:
                _load(conn, plan, run_id, actor, stamp, batches, progress, header.total, max_rejected, result)
                if plan.dry_run or result.over_error_rate:
                    trans.rollback()
                else:
                    trans.commit()
                    result.committed = True
            except BaseException:
                if trans.is_active:
                    trans.rollback()
                raise
        progress.advance(header.total - result.staged_rows)  # the rows validation kept back are done with too
        progress.finish()
    return result


def _staged(
    batches: Iterator[pa.RecordBatch], conn: Connection, progress: Progress, repeats: RepeatedKeys | None
) -> Iterator[pa.RecordBatch]:
    """The rows on their way to the stage: in small slices, each row with its key's slot when ``repeats`` looks for them.

    Small slices keep the per-write buffers small: SQLite's executemany turns a batch into Python tuples,
    and on PostgreSQL each COPY gets its CSV text in one buffer (big buffers raise glibc's mmap threshold,
    after which freed memory stays in the process)."""
    step = PG_SLICE_ROWS if conn.dialect.name == "postgresql" else SQLITE_SLICE_ROWS
    for batch in batches:
        for offset in range(0, batch.num_rows, step):
            piece = batch.slice(offset, step)
            yield piece if repeats is None else piece.append_column(SLOT, repeats.slots(piece))
        progress.advance(batch.num_rows)


def _repeated_keys(sql: MergeSql, rows: int) -> RepeatedKeys | None:
    """What finds the file's repeated match keys while it is staged, if they can be hashed as the database compares them."""
    types = stage_schema(sql.plan)
    keys = sql.match_columns
    if not keys or not supported([types.field(k).type for k in keys]):
        return None
    return RepeatedKeys(keys, rows)


def _load(
    conn: Connection,
    plan: ImportPlan,
    run_id: str,
    actor: str,
    stamp: datetime,
    batches: Iterator[pa.RecordBatch],
    progress: Progress,
    total_rows: int,
    max_rejected: int | None,
    result: LoadResult,
) -> None:
    """The transaction's body: ``result`` says what it did; the caller commits or rolls back."""
    ws = workspace_id(conn, plan.workspace)
    work_mem = get_settings().import_work_mem
    if conn.dialect.name == "postgresql" and work_mem:  # the merge's sorts and hashes span the whole file
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{work_mem}'")  # checked against a pattern by the settings
    stamp_value = stamp_param(conn, stamp)
    conn.execute(
        insert(s.import_runs).values(run_id=run_id, workspace_id=ws, resource=plan.resource, status="committed", stamp=stamp, actor=actor)
    )
    note_writer(conn.engine, run_id, "import")  # SQLite: this write took the store's lock; a waiting writer can say whose
    sql = MergeSql(conn, plan, ws, run_id)
    repeats = _repeated_keys(sql, total_rows)
    stage = sql.create_stage(with_slots=repeats is not None)
    result.staged_rows = insert_batches(conn, stage, _staged(batches, conn, progress, repeats))
    staged_at = time.monotonic()
    held_back = total_rows - result.staged_rows  # the rows validation rejected
    if max_rejected is not None and held_back > max_rejected:
        result.over_error_rate, result.errors = True, None
        return
    sql.index_stage()
    sql.analyze(q(sql.stage), ROW, *sql.match_columns)  # the join keys' statistics
    if repeats is not None:
        sql.fold_only_slots(repeats.repeated())
    checkpoint("staged")
    merge_lock(conn, ws, plan.resource)  # concurrent imports of this workspace and resource merge one after another
    sql.create_rejects()
    for col in plan.columns:
        if col.reference and plan.create_missing_references:
            n = sql.create_missing_references(col, stamp_value)
            if n:
                result.created_references[col.reference] = result.created_references.get(col.reference, 0) + n
    for col in plan.columns:
        if col.reference:
            found = sql.unresolved_references(col)
            if found:
                result.reference_warnings.append(found)
    sql.create_matches()
    if sql.pg and sql.unique_columns():
        merge_trusting_unique_indexes(conn, sql, result, stamp_value)
    else:
        merge(conn, sql, result, stamp_value, unique_in_file=True)
    checkpoint("merged")
    result.rejected_rows = int(sql.scalar(f"SELECT COUNT(DISTINCT {q(ROW)}) FROM {sql.t('rej')}"))
    counts = sql.exec(f'SELECT field, "check", COUNT(*) FROM {sql.t("rej")} GROUP BY field, "check"').all()
    result.by_check = {f"{f}:{c}": int(n) for f, c, n in counts}
    result.error_count = sum(result.by_check.values())
    write_spool(result.errors, ERROR_SCHEMA, stream_rejects(sql))
    conn.execute(
        s.import_runs.update()
        .where(s.import_runs.c.run_id == run_id)
        .values(created_rows=result.created_rows, updated_rows=result.updated_rows)
    )
    sql.drop_temps()
    result.over_error_rate = max_rejected is not None and held_back + result.rejected_rows > max_rejected
    result.merge_seconds = round(time.monotonic() - staged_at, 3)


@task(name="import-load", cache_policy=NONE, persist_result=False)
def load_rows(source: Pipe, plan: ImportPlan, run_id: str, actor: str, out_dir: Path, max_rejected: int | None = None) -> LoadResult:
    """Step 5: staging table + one set-based merge, all in one transaction (a dry run, or too many rejects, rolls back)."""
    from ferry.store.engine import get_engine

    return load_stream(get_engine(), source, plan, run_id, actor, out_dir, max_rejected, key="import-progress")
