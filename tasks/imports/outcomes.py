"""What a load reports from its temp tables: the first rows of each outcome, and every rejected row as a stream.

Read inside the load's transaction, before the temp tables are dropped (see
``tasks.imports.load``); ``MergeSql`` names the tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa
from sqlalchemy import text

from tasks.imports.merge import MergeSql
from tasks.imports.sql_names import q
from tasks.imports.validate import ERROR_SCHEMA, ROW

SAMPLE_ROWS = 5
REJECT_BATCH_ROWS = 50_000


def match_display(sql: MergeSql) -> list[str]:
    """The columns a sample shows: the match fields, else the first plain column."""
    plan = sql.plan
    shown = [c.store_column for c in plan.columns if c.field_slug in plan.match and not c.reference]
    return shown or [c.store_column for c in plan.columns if not c.reference][:1]


def samples(sql: MergeSql) -> dict[str, list[dict]]:
    """The first rows of each outcome (row number, match values, record id, reason)."""
    shown = match_display(sql)
    cols = "".join(f", src.{q(c)}" for c in shown)
    sel = f"SELECT src.{q(ROW)}{cols}"
    m = sql.t("m")
    duplicates = sql.plan.duplicates

    def rows(statement: str, reason: str | None = None) -> list[dict]:
        found = []
        for r in sql.exec(statement).mappings():
            item = {"row": r[ROW], **{k: jsonable(r[k]) for k in shown}}
            if "record_id" in r:
                item["record_id"] = r["record_id"]
            if reason:
                item["reason"] = reason
            found.append(item)
        return found

    limit = f"ORDER BY src.{q(ROW)} LIMIT {SAMPLE_ROWS}"
    new = "" if duplicates == "create" else f"WHERE NOT EXISTS (SELECT 1 FROM {m} m WHERE m.{q(ROW)} = src.{q(ROW)})"
    out = {"create": rows(f"{sel} FROM {sql.t('src')} src {new} {limit}"), "update": []}
    matched = f"{sel}, m.target AS record_id FROM {sql.t('src')} src JOIN {m} m ON m.{q(ROW)} = src.{q(ROW)}"
    if sql.made("upd"):
        out["update"] = rows(f"{matched} WHERE m.target IN (SELECT target FROM {sql.t('upd')}) {limit}")
    skipped: list[dict] = []
    if duplicates == "skip":
        skipped += rows(f"{matched} {limit}", "matches an existing record")
    elif duplicates == "update":
        unchanged = f"WHERE m.target NOT IN (SELECT target FROM {sql.t('upd')})" if sql.made("upd") else ""
        skipped += rows(f"{matched} {unchanged} {limit}", "matches an existing record; nothing changes")
    if sql.made("dups"):
        how = "merged into row" if duplicates == "update" else "repeats the match values of row"
        skipped += [
            {"row": r[ROW], "reason": f"{how} {r['first']}"}
            for r in sql.exec(f"SELECT {q(ROW)}, first FROM {sql.t('dups')} ORDER BY {q(ROW)} LIMIT {SAMPLE_ROWS}").mappings()
        ]
    out["skip"] = sorted(skipped, key=lambda r: r["row"])[:SAMPLE_ROWS]
    return out


def stream_rejects(sql: MergeSql) -> Iterator[pa.RecordBatch]:
    """Every row the load rejected, in row order, as ERROR_SCHEMA batches (streamed: a large file's rejects never sit in memory)."""
    result = sql.conn.execute(
        text(f'SELECT {q(ROW)}, field, value, error, "check" FROM {sql.t("rej")} ORDER BY {q(ROW)}, field').execution_options(
            stream_results=True
        )
    )
    for part in result.partitions(REJECT_BATCH_ROWS):
        cols = list(zip(*part))
        yield pa.RecordBatch.from_arrays(
            [pa.array(cols[0], pa.int64()), *[pa.array(c, pa.string()) for c in cols[1:]]], schema=ERROR_SCHEMA
        )


def jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
