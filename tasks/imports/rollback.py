"""Rollback: undo one import exactly, in one transaction, or refuse saying why.

It deletes the records the import created (and the references it created for
them) and restores the records it updated to their before-images. If any of
those records changed since the import (its current values differ from the
import's after-image, or a created record was written again), it refuses and
changes nothing: undoing would destroy someone's later work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NONE
from sqlalchemy import Engine, select, text

from ferry import catalog
from ferry.errors import RollbackError
from ferry.store import schema as s
from ferry.store.engine import get_engine
from ferry.store.guard import store_writes
from tasks.imports.merge import stamp_param
from tasks.imports.sql_names import q


@dataclass
class RollbackResult:
    run_id: str
    resource: str
    workspace: str
    deleted_rows: int = 0
    restored_rows: int = 0
    deleted_references: dict[str, int] = field(default_factory=dict)


def _committed_run(conn, run_id: str):
    """The store's journal row of committed import ``run_id``, or of the one import whose id starts so (the history's short ids)."""
    runs = s.import_runs
    found = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().all()
    if not found and len(run_id) >= 6 and all(c in "0123456789abcdef-" for c in run_id.lower()):
        found = conn.execute(select(runs).where(runs.c.run_id.startswith(run_id.lower())).limit(2)).mappings().all()
        if len(found) > 1:
            raise RollbackError(
                f"More than one import's run id starts with {run_id!r}.", "Give the full run id (`ferry import history --json`)."
            )
    if not found:
        raise RollbackError(
            f"No committed import with run id {run_id!r}.",
            "Dry runs and failed runs change nothing, so there is nothing to roll back; see `ferry import history`.",
        )
    return found[0]


def undo_import(engine: Engine, run_id: str, actor: str) -> RollbackResult:
    """Undo one committed import exactly, in one transaction, or refuse saying why."""
    with store_writes(engine, run_id, "rollback"), engine.begin() as conn:
        run = _committed_run(conn, run_id)
        run_id = run["run_id"]
        ws_slug = conn.execute(select(s.workspaces.c.slug).where(s.workspaces.c.id == run["workspace_id"])).scalar_one()
        if run["status"] == "rolled_back":
            raise RollbackError(f"Import {run_id} was already rolled back at {run['rolled_back_at']} by {run['rolled_back_by']}.")
        ws = run["workspace_id"]
        stamp = stamp_param(conn, run["stamp"])
        resource = catalog.RESOURCES[run["resource"]]
        table = s.table_for(resource)
        images = s.import_images[resource.slug]
        params = {"run": run_id, "ws": ws, "stamp": stamp}
        pg = conn.dialect.name == "postgresql"

        def ex(sql: str, **extra):
            return conn.execute(text(sql), {**params, **extra})

        changed: list[str] = []
        # Updated records: the current row must still equal the after-image.
        cols = [c.name for c in table.columns]
        differs = " OR ".join((f"(t.{q(c)} IS DISTINCT FROM a.{q(c)})" if pg else f"(t.{q(c)} IS NOT a.{q(c)})") for c in cols)
        rows = (
            ex(
                f"SELECT a.id FROM {q(images.name)} a LEFT JOIN {q(table.name)} t ON t.id = a.id "
                f"WHERE a.run_id = :run AND a.image = 'after' AND (t.id IS NULL OR {differs}) ORDER BY a.id LIMIT 10"
            )
            .scalars()
            .all()
        )
        if rows:
            changed.append(
                f"{len(rows)}{'+' if len(rows) == 10 else ''} updated {resource.slug} record(s) changed or deleted since (ids {', '.join(map(str, rows))})"
            )
        # Created records: not written since (every later write stamps updated_at with its own, later time; the import
        # itself may have set an earlier one, the source's).
        created = ex("SELECT resource, first_id, last_id FROM import_created_ranges WHERE run_id = :run ORDER BY resource, first_id").all()
        created_by_resource: dict[str, list[tuple[int, int]]] = {}
        for slug, first_id, last_id in created:
            created_by_resource.setdefault(slug, []).append((first_id, last_id))
        ranges = "JOIN import_created_ranges c ON c.run_id = :run AND c.resource = :res AND {id} BETWEEN c.first_id AND c.last_id"
        for slug in created_by_resource:
            ctable = s.table_for(catalog.RESOURCES[slug])
            if "updated_at" in ctable.c:
                ids = (
                    ex(
                        f"SELECT t.id FROM {q(ctable.name)} t {ranges.format(id='t.id')} "
                        f"WHERE t.updated_at > :stamp ORDER BY t.id LIMIT 10",
                        res=slug,
                    )
                    .scalars()
                    .all()
                )
                if ids:
                    changed.append(
                        f"{len(ids)}{'+' if len(ids) == 10 else ''} created {slug} record(s) changed since (ids {', '.join(map(str, ids))})"
                    )
        # References this import created must not have gained referrers from elsewhere.
        for slug in created_by_resource:
            if slug == resource.slug:
                continue
            for fdef in resource.fields:
                if fdef.reference != slug:
                    continue
                fk = q(fdef.columns()[0].store_column)
                n = ex(
                    f"SELECT COUNT(*) FROM {q(table.name)} t {ranges.format(id='t.' + fk)} "
                    f"WHERE t.workspace_id = :ws AND NOT EXISTS (SELECT 1 FROM import_created_ranges o WHERE o.run_id = :run "
                    f"AND o.resource = :own AND t.id BETWEEN o.first_id AND o.last_id) "
                    f"AND t.id NOT IN (SELECT id FROM {q(images.name)} WHERE run_id = :run)",
                    res=slug,
                    own=resource.slug,
                ).scalar()
                if n:
                    changed.append(f"{n} {resource.slug} record(s) not created by this import now refer to {slug} it created")
        if changed:
            raise RollbackError(
                f"Import {run_id} cannot be rolled back exactly: " + "; ".join(changed) + ".",
                "Nothing was changed. Undo the later changes first, or fix the records by hand.",
            )
        result = RollbackResult(run_id=run_id, resource=resource.slug, workspace=ws_slug)
        set_cols = [c for c in cols if c != "id"]
        if conn.dialect.name == "postgresql":
            assign = ", ".join(f"{q(c)} = b.{q(c)}" for c in set_cols)
            result.restored_rows = ex(
                f"UPDATE {q(table.name)} SET {assign} FROM {q(images.name)} b WHERE b.run_id = :run AND b.image = 'before' "
                f"AND b.id = {q(table.name)}.id"
            ).rowcount
        else:
            assign = ", ".join(f"{q(c)} = b.{q(c)}" for c in set_cols)
            result.restored_rows = ex(
                f"UPDATE {q(table.name)} SET {assign} FROM (SELECT * FROM {q(images.name)} WHERE run_id = :run AND image = 'before') b "
                f"WHERE b.id = {q(table.name)}.id"
            ).rowcount
        order = [resource.slug] + [r for r in created_by_resource if r != resource.slug]
        for slug in order:
            if slug not in created_by_resource:
                continue
            ctable = s.table_for(catalog.RESOURCES[slug])
            n = sum(
                ex(
                    f"DELETE FROM {q(ctable.name)} WHERE workspace_id = :ws AND id BETWEEN :first AND :last", first=first_id, last=last_id
                ).rowcount
                for first_id, last_id in created_by_resource[slug]
            )
            if slug == resource.slug:
                result.deleted_rows = n
            else:
                result.deleted_references[slug] = n
        conn.execute(
            s.import_runs.update()
            .where(s.import_runs.c.run_id == run_id)
            .values(status="rolled_back", rolled_back_at=datetime.now(UTC).replace(tzinfo=None), rolled_back_by=actor)
        )
        return result


@task(name="import-rollback", cache_policy=NONE, persist_result=False)
def roll_back(run_id: str, actor: str) -> RollbackResult:
    """Undo import ``run_id`` in the store the settings name (see :func:`undo_import`)."""
    return undo_import(get_engine(), run_id, actor)
