"""The load's set-based SQL: one statement builder per plan and connection, run inside the load's transaction.

Every step of the merge is one statement over the staging table (never a
statement per row): references, matches against the store, uniqueness within
the file and against the store, folding of in-file duplicates, the insert of
new records and the update of matched ones, each recorded in the import
rollback journal for an exact rollback. See ``tasks.imports.load`` for the order;
the folding of duplicates inside the file is in ``tasks.imports.fold``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, Table, Text, text

from ferry import catalog
from ferry.errors import ImportConflictError
from ferry.import_plan import ImportPlan, PlannedColumn
from ferry.store import schema as s
from tasks.imports.fold import FoldSql
from tasks.imports.repeats import SLOT
from tasks.imports.sql_names import q
from tasks.imports.validate import MAX_VALUE_CHARS, ROW

REFERENCE_VALUES_SHOWN = 20


def checkpoint(name: str) -> None:
    """Test hook for crash tests: pause here (announcing it in a file) so a test can kill the process."""
    if os.environ.get("FERRY_IMPORT_PAUSE_AT") == name:
        marker = os.environ.get("FERRY_IMPORT_PAUSE_FILE")
        if marker:
            Path(marker).write_text(name)
        time.sleep(float(os.environ.get("FERRY_IMPORT_PAUSE_SECONDS", "120")))


#: Record timestamps an import may carry from the source system: they set a created record's, never an updated one's.
SOURCE_DATES = ("created_at", "updated_at")


class MergeSql(FoldSql):
    """Builds the load's statements for one plan on one connection's dialect."""

    def __init__(self, conn: Connection, plan: ImportPlan, ws: int, run_id: str) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.plan = plan
        self.ws = ws
        self.run_id = run_id
        self.resource = plan.resource_def
        self.table = s.table_for(self.resource)
        suffix = run_id.replace("-", "")[:10]
        self.stage = f"ferry_stage_{suffix}"
        self.names = {k: f"ferry_{k}_{suffix}" for k in ("m", "rej", "cand", "g", "grp", "f", "dups", "upd", "src", "slots")}
        self.temps: list[tuple[str, str]] = []
        self.attribute_columns = {c.store_column for c in plan.columns if c.attributes}
        self.stage_types = {c.stage_column: c.type for c in plan.columns}
        self.candidates = ""  # the stage rows the search for repeated match keys groups: all of them
        self.has_updated_at = "updated_at" in self.table.c
        self.has_created_at = "created_at" in self.table.c
        plan_fields = {c.field_slug for c in plan.columns}
        self.match_columns = (
            [self.resource.get_field(m).columns()[0].store_column for m in plan.match]
            if plan.duplicates != "create" and all(m in plan_fields for m in plan.match)
            else []
        )

    # helpers ------------------------------------------------------------
    def exec(self, sql: str, **params):
        return self.conn.execute(text(sql), {"ws": self.ws, "run": self.run_id, **params})

    def scalar(self, sql: str, **params):
        return self.exec(sql, **params).scalar()

    def distinct(self, a: str, b: str) -> str:
        return f"({a} IS DISTINCT FROM {b})" if self.pg else f"({a} IS NOT {b})"

    def temp_as(self, key: str, select_sql: str) -> str:
        name = self.names[key]
        self.exec(f"CREATE TEMP TABLE {q(name)} {'ON COMMIT DROP ' if self.pg else ''}AS {select_sql}")
        self.temps.append(("TABLE", name))
        return q(name)

    def analyze(self, table: str, *columns: str) -> None:
        """Statistics on a temp table (``table`` quoted), for PostgreSQL, which never auto-analyzes one: without them its
        planner guesses a table's size and may hash a 10M-row stage where a 190k-row table would do."""
        if self.pg:
            self.exec(f"ANALYZE {table}" + (f" ({', '.join(q(c) for c in columns)})" if columns else ""))

    def index(self, key: str, column: str) -> None:
        """An index on a temp table's column, for SQLite: its planner has no hash join, so every lookup of one
        (``NOT EXISTS``, ``IN``) would scan it, and an import whose rows all match would take quadratic time."""
        if not self.pg:
            self.exec(f"CREATE INDEX {q(self.names[key] + '_' + column.strip('_'))} ON {self.t(key)} ({q(column)})")

    def drop_temps(self) -> None:
        for kind, name in reversed(self.temps):
            self.exec(f"DROP {kind} IF EXISTS {q(name)}")
        self.temps.clear()

    def t(self, key: str) -> str:
        return q(self.names[key])

    # staging --------------------------------------------------------------
    def create_stage(self, with_slots: bool = False) -> Table:
        """The staging table, without indexes: ``index_stage`` builds its row index once it is full (faster than row by row).

        ``with_slots``: each row also carries its match key's slot (``tasks.imports.repeats``).
        """
        columns = [Column(ROW, BigInteger, nullable=False)]
        for col in self.plan.columns:
            sql_type = Text() if col.reference else self.table.c[col.store_column].type
            columns.append(Column(col.stage_column, sql_type))
        if with_slots:
            columns.append(Column(SLOT, Integer))
        kwargs = {"postgresql_on_commit": "DROP"} if self.pg else {}
        stage = Table(self.stage, MetaData(), *columns, prefixes=["TEMPORARY"], **kwargs)
        stage.create(self.conn)
        self.temps.append(("TABLE", self.stage))
        return stage

    def index_stage(self) -> None:
        self.exec(f"CREATE UNIQUE INDEX {q(self.stage + '_row')} ON {q(self.stage)} ({q(ROW)})")

    def create_rejects(self) -> None:
        self.temp_as(
            "rej",
            f"SELECT CAST(NULL AS BIGINT) AS {q(ROW)}, CAST(NULL AS TEXT) AS field, CAST(NULL AS TEXT) AS value, "
            f'CAST(NULL AS TEXT) AS error, CAST(NULL AS TEXT) AS "check" WHERE 1 = 0',
        )

    def reject(self, select_sql: str, **params) -> int:
        return self.exec(f'INSERT INTO {self.t("rej")} ({q(ROW)}, field, value, error, "check") {select_sql}', **params).rowcount

    def value_text(self, expr: str) -> str:
        return f"SUBSTR(CAST({expr} AS TEXT), 1, {MAX_VALUE_CHARS})"

    # references -----------------------------------------------------------
    def reference_target(self, col: PlannedColumn) -> tuple[Table, str, catalog.Resource]:
        target = catalog.RESOURCES[col.reference]
        key_column = target.get_field(target.key_fields[0]).columns()[0].store_column
        return s.table_for(target), key_column, target

    def create_missing_references(self, col: PlannedColumn, stamp) -> int:
        table, key_column, target = self.reference_target(col)
        values = {"workspace_id": ":ws", key_column: "x.k"}
        for fdef in target.fields:  # other required text fields take the key too (e.g. a list's name)
            for c in fdef.columns():
                if fdef.required and not fdef.readonly and c.store_column not in values:
                    values[c.store_column] = "x.k"
        for stamp_col in ("created_at", "updated_at"):
            if stamp_col in table.c:
                values[stamp_col] = ":stamp"
        select_sql = (
            f"SELECT {', '.join(values.values())} FROM (SELECT DISTINCT s.{q(col.stage_column)} AS k FROM {q(self.stage)} s "
            f"WHERE s.{q(col.stage_column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(table.name)} r "
            f"WHERE r.workspace_id = :ws AND r.{q(key_column)} = s.{q(col.stage_column)})) x ORDER BY x.k"
        )
        insert_sql = f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in values)}) {select_sql}"
        return self.insert_recording(insert_sql, table, target.slug, stamp=stamp)

    def insert_recording(self, insert_sql: str, table: Table, resource_slug: str, **params) -> int:
        """Run an INSERT ... SELECT and record the ids it created in the rollback journal, server-side, as runs of
        consecutive ids (one journal row per run: a million-row insert usually makes one).

        On PostgreSQL the ids are first checked for being one run (lowest, highest and count agree): only when they
        are not does the statement sort them into runs (1M ids: 0.4 s saved; the sort is skipped, not just cheap).
        """
        into = "INSERT INTO import_created_ranges (run_id, resource, first_id, last_id) "
        islands = (
            "SELECT :run, :res, MIN(id), MAX(id) FROM (SELECT id, id - ROW_NUMBER() OVER (ORDER BY id) AS island FROM {ids}) x "
            "{only_if} GROUP BY island"
        )
        if self.pg:
            one_run = "SELECT :run, :res, lo, hi FROM b WHERE n > 0 AND hi - lo + 1 = n"
            several = islands.format(ids="ins", only_if="WHERE (SELECT hi - lo + 1 <> n FROM b)")
            sql = (
                f"WITH ins AS ({insert_sql} RETURNING id), b AS (SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM ins), "
                f"r AS ({into}{one_run} UNION ALL {several} RETURNING first_id, last_id) SELECT COALESCE(SUM(last_id - first_id + 1), 0) FROM r"
            )
            return int(self.scalar(sql, res=resource_slug, **params))
        # SQLite: this transaction holds the database's only write lock (the journal row was written
        # first), so the ids above the current maximum are exactly the ones this INSERT creates.
        before = self.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {q(table.name)}")
        created = self.exec(insert_sql, **params).rowcount
        if created:
            ids = f"(SELECT id FROM {q(table.name)} WHERE id > :before)"
            self.exec(into + islands.format(ids=ids, only_if=""), res=resource_slug, before=before)
        return created

    def unresolved_references(self, col: PlannedColumn) -> dict | None:
        table, key_column, target = self.reference_target(col)
        missing = (
            f"FROM {q(self.stage)} s WHERE s.{q(col.stage_column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(table.name)} r "
            f"WHERE r.workspace_id = :ws AND r.{q(key_column)} = s.{q(col.stage_column)})"
        )
        # One pass over the stage: the unresolved values with their row counts, the first few by value, and the totals.
        values = self.exec(
            f"SELECT v, n, SUM(n) OVER () AS total_rows, COUNT(*) OVER () AS distinct_values FROM "
            f"(SELECT s.{q(col.stage_column)} AS v, COUNT(*) AS n {missing} GROUP BY s.{q(col.stage_column)}) u "
            f"ORDER BY v LIMIT {REFERENCE_VALUES_SHOWN}"
        ).all()
        if not values:
            return None
        if col.required:
            self.reject(
                f"SELECT s.{q(ROW)}, :field, {self.value_text('s.' + q(col.stage_column))}, :msg, 'reference' {missing}",
                field=col.key,
                msg=f"no {target.slug} record with this {target.key_fields[0]}; the field is required",
            )
        return {
            "field": col.key,
            "resource": target.slug,
            "key": target.key_fields[0],
            "rows": int(values[0].total_rows),
            "unresolved_count": int(values[0].distinct_values),
            "values": [{"value": r.v, "rows": int(r.n)} for r in values],
            "action": "rejected (required)" if col.required else "loaded as empty",
        }

    def create_source_view(self) -> None:
        """``src``: staging rows with store column names, references resolved to ids."""
        parts, joins = [f"s.{q(ROW)} AS {q(ROW)}"], []
        for i, col in enumerate(self.plan.columns):
            if col.reference:
                table, key_column, _ = self.reference_target(col)
                alias = f"r{i}"
                joins.append(
                    f"LEFT JOIN {q(table.name)} {alias} ON {alias}.workspace_id = :ws AND {alias}.{q(key_column)} = s.{q(col.stage_column)}"
                )
                parts.append(f"{alias}.id AS {q(col.store_column)}")
            else:
                parts.append(f"s.{q(col.store_column)} AS {q(col.store_column)}")
        # A view cannot take bind parameters: the workspace id is an integer we looked up ourselves.
        body = f"SELECT {', '.join(parts)} FROM {q(self.stage)} s {' '.join(joins)}".replace(":ws", str(int(self.ws)))
        self.exec(f"CREATE TEMP VIEW {self.t('src')} AS {body}")
        self.temps.append(("VIEW", self.names["src"]))

    # matching and uniqueness ------------------------------------------------
    def key_equal(self, a: str, b: str, columns: list[str]) -> str:
        return " AND ".join(f"{a}.{q(c)} = {b}.{q(c)}" for c in columns)

    def create_matches(self) -> None:
        if not self.match_columns:
            self.temp_as("m", f"SELECT {q(ROW)}, {q(ROW)} AS target FROM {q(self.stage)} WHERE 1 = 0")
            return
        self.temp_as(
            "m",
            f"SELECT s.{q(ROW)} AS {q(ROW)}, t.id AS target FROM {q(self.stage)} s JOIN {q(self.table.name)} t "
            f"ON t.workspace_id = {int(self.ws)} AND {self.key_equal('t', 's', self.match_columns)}",
        )
        self.index("m", ROW)
        self.index("m", "target")
        single_unique = len(self.plan.match) == 1 and self.resource.get_field(self.plan.match[0]).unique
        if not single_unique:
            m = self.t("m")
            n = self.reject(
                f"SELECT {q(ROW)}, :field, NULL, 'matches ' || CAST(COUNT(*) AS TEXT) || ' existing records; "
                f"use match fields that identify one record', 'match' FROM {m} GROUP BY {q(ROW)} HAVING COUNT(*) > 1",
                field=",".join(self.plan.match),
            )
            if n:
                self.exec(f"DELETE FROM {m} WHERE {q(ROW)} IN (SELECT {q(ROW)} FROM {self.t('rej')})")

    def unique_columns(self) -> list[PlannedColumn]:
        """The planned unique fields checked here (the match field's repeats are duplicates, handled by the strategy)."""
        return [col for col in self.plan.columns if col.unique and not col.reference and self.match_columns != [col.store_column]]

    def check_unique(self, in_file: bool = True) -> None:
        """Reject rows whose unique field repeats another row of the file (``in_file``) or a record of another in the store.

        ``in_file=False`` leaves the file's own repeats to the table's unique index, for a load that retries
        with the check when the index finds one (see ``tasks.imports.load``): grouping a large file by each
        unique field is one of the load's costliest steps, and most files repeat nothing.
        """
        m = self.t("m")
        for col in self.unique_columns():
            c = q(col.store_column)
            if in_file:
                same_record = f" AND NOT ({self.key_equal('s', 'f', self.match_columns)})" if self.match_columns else ""
                self.reject(
                    f"SELECT s.{q(ROW)}, :field, {self.value_text('s.' + c)}, 'the same value is in row ' || CAST(d.first AS TEXT), 'unique' "
                    f"FROM {q(self.stage)} s JOIN (SELECT {c} AS v, MIN({q(ROW)}) AS first FROM {q(self.stage)} WHERE {c} IS NOT NULL "
                    f"GROUP BY {c} HAVING COUNT(*) > 1) d ON s.{c} = d.v JOIN {q(self.stage)} f ON f.{q(ROW)} = d.first "
                    f"WHERE s.{q(ROW)} <> d.first{same_record}",
                    field=col.key,
                )
            matched_ok = {"skip": "m.target IS NULL", "update": "(m.target IS NULL OR m.target <> t.id)", "create": "1 = 1"}[
                self.plan.duplicates
            ]
            self.reject(
                f"SELECT s.{q(ROW)}, :field, {self.value_text('s.' + c)}, 'already used by another ' || :what || ' record (id ' || CAST(t.id AS TEXT) || ')', 'unique' "
                f"FROM {q(self.stage)} s JOIN {q(self.table.name)} t ON t.workspace_id = :ws AND t.{c} = s.{c} "
                f"LEFT JOIN {m} m ON m.{q(ROW)} = s.{q(ROW)} WHERE {matched_ok}",
                field=col.key,
                what=self.resource.slug,
            )

    def check_required_for_new(self) -> None:
        planned = {c.store_column: c for c in self.plan.columns}
        new_rows = (
            "1 = 1" if self.plan.duplicates == "create" else f"NOT EXISTS (SELECT 1 FROM {self.t('m')} m WHERE m.{q(ROW)} = s.{q(ROW)})"
        )
        not_rejected = f"s.{q(ROW)} NOT IN (SELECT {q(ROW)} FROM {self.t('rej')})"
        for name, col in planned.items():  # mapped but empty (e.g. a static null); references are checked on resolution
            if not self.table.c[name].nullable and not col.reference:
                self.reject(
                    f"SELECT s.{q(ROW)}, :field, NULL, 'required to create a new record; the value is empty', 'required' "
                    f"FROM {q(self.stage)} s WHERE s.{q(name)} IS NULL AND {new_rows} AND {not_rejected}",
                    field=col.key,
                )
        for column in self.table.columns:
            if (
                column.nullable
                or column.primary_key
                or column.name in planned
                or column.name == "workspace_id"
                or column.server_default is not None
            ):
                continue
            self.reject(
                f"SELECT s.{q(ROW)}, :field, NULL, 'required to create a new record, and the field is not mapped', 'required' "
                f"FROM {q(self.stage)} s WHERE {new_rows} AND s.{q(ROW)} NOT IN (SELECT {q(ROW)} FROM {self.t('rej')})",
                field=column.name,
            )

    def drop_rejected(self) -> int:
        """Take the rejected rows out of the stage and the matches; returns how many left the stage."""
        rej = self.t("rej")
        dropped = self.exec(f"DELETE FROM {q(self.stage)} WHERE {q(ROW)} IN (SELECT {q(ROW)} FROM {rej})").rowcount
        self.exec(f"DELETE FROM {self.t('m')} WHERE {q(ROW)} IN (SELECT {q(ROW)} FROM {rej})")
        return dropped

    # writing --------------------------------------------------------------
    def write_columns(self) -> list[str]:
        return [c.store_column for c in self.plan.columns]

    def insert_new(self, stamp) -> int:
        """New records; their timestamps are the source's where the file gives them, else the import's stamp."""
        cols = self.write_columns()
        target = ["workspace_id", *cols]
        values = [":ws", *[f"COALESCE(src.{q(c)}, :stamp)" if c in SOURCE_DATES else f"src.{q(c)}" for c in cols]]
        for stamp_col in SOURCE_DATES:
            if stamp_col in self.table.c and stamp_col not in cols:
                target.append(stamp_col)
                values.append(":stamp")
        where = (
            "" if self.plan.duplicates == "create" else f"WHERE NOT EXISTS (SELECT 1 FROM {self.t('m')} m WHERE m.{q(ROW)} = src.{q(ROW)})"
        )
        sql = (
            f"INSERT INTO {q(self.table.name)} ({', '.join(q(c) for c in target)}) SELECT {', '.join(values)} "
            f"FROM {self.t('src')} src {where} ORDER BY src.{q(ROW)}"
        )
        return self.insert_recording(sql, self.table, self.resource.slug, stamp=stamp)

    def new_value(self, column: str) -> str:
        imported, current = f"u.{q(column)}", f"{q(self.table.name)}.{q(column)}"
        if column in self.attribute_columns:
            return self.merged_attributes(current, imported)
        if self.plan.merge == "overwrite":
            return imported
        if self.plan.merge == "prefer_import":
            return f"COALESCE({imported}, {current})"
        if isinstance(self.table.c[column].type, Text):
            current = f"NULLIF({current}, '')"
        return f"COALESCE({current}, {imported})"

    def merged_attributes(self, current: str, imported: str) -> str:
        """Custom attributes merge key by key: the file's keys win (fill_empty: the record's), other keys stay."""
        empty = "'{}'::jsonb" if self.pg else "'{}'"
        first, second = f"COALESCE({current}, {empty})", f"COALESCE({imported}, {empty})"
        if self.plan.merge == "fill_empty":
            first, second = second, first
        merged = f"({first} || {second})" if self.pg else f"json_patch({first}, {second})"
        return f"NULLIF({merged}, {empty})"

    def update_matched(self, stamp) -> int:
        """Matched records, merged; created_at is kept and updated_at is the import's stamp (it changes them now)."""
        cols = [c for c in self.write_columns() if c not in SOURCE_DATES]
        if not cols:
            return 0
        images = s.import_images[self.resource.slug]
        src_cols = ", ".join(f"src.{q(c)}" for c in cols)
        u = f"(SELECT m.target AS target, {src_cols} FROM {self.t('src')} src JOIN {self.t('m')} m ON m.{q(ROW)} = src.{q(ROW)})"
        changed = " OR ".join(self.distinct(self.new_value(c), f"{q(self.table.name)}.{q(c)}") for c in cols)
        upd = self.temp_as(
            "upd",
            f"SELECT u.target AS target, {', '.join('u.' + q(c) for c in cols)} FROM {u} u "
            f"JOIN {q(self.table.name)} ON {q(self.table.name)}.id = u.target WHERE {changed}",
        )
        count = int(self.scalar(f"SELECT COUNT(*) FROM {upd}"))
        if not count:
            return 0
        self.index("upd", "target")
        all_cols = ", ".join(q(c.name) for c in self.table.columns)
        self.exec(
            f"INSERT INTO {q(images.name)} (run_id, image, {all_cols}) SELECT :run, 'before', {', '.join('t.' + q(c.name) for c in self.table.columns)} "
            f"FROM {q(self.table.name)} t JOIN {upd} x ON x.target = t.id"
        )
        sets = [f"{q(c)} = {self.new_value(c)}" for c in cols]
        if self.has_updated_at and "updated_at" not in cols:
            sets.append("updated_at = :stamp")
        done = self.exec(
            f"UPDATE {q(self.table.name)} SET {', '.join(sets)} FROM {upd} u WHERE {q(self.table.name)}.id = u.target "
            f"AND {q(self.table.name)}.workspace_id = :ws",
            stamp=stamp,
        ).rowcount
        self.exec(
            f"INSERT INTO {q(images.name)} (run_id, image, {all_cols}) SELECT :run, 'after', {', '.join('t.' + q(c.name) for c in self.table.columns)} "
            f"FROM {q(self.table.name)} t JOIN {upd} x ON x.target = t.id"
        )
        if done != count:
            raise ImportConflictError(
                f"Expected to update {count} {self.resource.slug} records but updated {done}.",
                "Another import may have run at the same time; nothing was written. Retry the import.",
            )
        return count

    def made(self, key: str) -> bool:
        """Whether the temp table ``key`` was created by this load (some steps create theirs only when needed)."""
        return ("TABLE", self.names[key]) in self.temps


def stamp_param(conn: Connection, stamp: datetime):
    """The created_at/updated_at value as the dialect stores it (SQLite: the text form bulk writes use)."""
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f") if conn.dialect.name == "sqlite" else stamp
