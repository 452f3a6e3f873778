"""Validating a mapping, and remembering accepted ones per workspace, resource and set of source columns.

Accepted mappings live in the store's ``import_mappings`` table and are proposed first,
with confidence 1.0, the next time the same columns arrive.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ferry.catalog import Resource
from ferry.errors import ParameterError, Problem
from ferry.import_params import ColumnMapping
from tasks.imports.map.names import resource_slots
from tasks.imports.map.targets import importable_resource


def validate_mapping(resource: Resource | str, mapping: list[ColumnMapping], columns: list[str] | None = None) -> None:
    """Raise :class:`ParameterError` listing every problem: unknown fields, types or parts,
    read-only fields, a target used twice, a source column not in the file."""
    resource = importable_resource(resource)
    problems: list[Problem] = []
    valid_keys = {s.key for s in resource_slots(resource) if not s.generic}
    seen_targets: dict[str, str] = {}
    seen_sources: set[str] = set()
    for m in mapping:
        label = f"mapping[{m.source_column!r}]"
        if columns is not None and m.source_column not in columns:
            problems.append(Problem(label, m.source_column, "is not a column of the file"))
        if m.source_column in seen_sources:
            problems.append(Problem(label, m.source_column, "is mapped twice"))
        seen_sources.add(m.source_column)
        if m.target_field_slug is None:
            continue
        if not resource.has_field(m.target_field_slug):
            problems.append(Problem(label, m.target_field_slug, f"is not a field of {resource.slug}"))
            continue
        f = resource.get_field(m.target_field_slug)
        if not f.importable:
            problems.append(Problem(label, f.slug, "is set by Ferry and cannot be imported"))
            continue
        if f.value_types and m.value_type not in f.value_types:
            problems.append(Problem(label, m.value_type, f"{f.slug} needs a value type: one of {', '.join(f.value_types)}"))
            continue
        if f.parts and m.address_part not in f.parts:
            problems.append(Problem(label, m.address_part, f"{f.slug} needs an address part: one of {', '.join(f.parts)}"))
            continue
        if (m.value_type and not f.value_types) or (m.address_part and not f.parts):
            problems.append(Problem(label, m.value_type or m.address_part, f"{f.slug} has no value types or parts"))
            continue
        key = m.target_key
        if key not in valid_keys:
            problems.append(Problem(label, key, f"is not a column of {resource.slug}"))
        elif key in seen_targets:
            problems.append(Problem(label, key, f"is already the target of {seen_targets[key]!r}"))
        else:
            seen_targets[key] = m.source_column
    if problems:
        raise ParameterError(problems)


def columns_key(columns: list[str]) -> str:
    """The identity of a set of source columns: order does not matter, spelling does."""
    return hashlib.sha256(json.dumps(sorted(columns), ensure_ascii=False).encode("utf-8")).hexdigest()


def remember_mapping(engine: Engine, workspace: str, resource: Resource | str, mapping: list[ColumnMapping]) -> None:
    """Store an accepted mapping for this workspace, resource and set of source columns (replaces an older one)."""
    from ferry.store.engine import workspace_id
    from ferry.store.schema import import_mappings

    resource = importable_resource(resource)
    validate_mapping(resource, mapping)
    columns = [m.source_column for m in mapping]
    key = columns_key(columns)
    stored = [{**m.to_json(), "confidence": 1.0, "reason": "accepted before for these columns"} for m in mapping]
    with engine.begin() as conn:
        ws = workspace_id(conn, workspace)
        row = {"workspace_id": ws, "resource": resource.slug, "columns_key": key, "source_columns": sorted(columns), "mapping": stored}
        # One statement, so two imports that finish together both succeed (a DELETE then INSERT raced on the unique key).
        upsert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(import_mappings).values(**row)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["workspace_id", "resource", "columns_key"],
                set_={"source_columns": upsert.excluded.source_columns, "mapping": upsert.excluded.mapping, "updated_at": func.now()},
            )
        )


def remembered_mapping(engine: Engine, workspace: str, resource: Resource | str, columns: list[str]) -> list[ColumnMapping] | None:
    """The mapping accepted before for exactly these source columns, in the given column order; None if none
    (or if it no longer fits the catalog)."""
    from ferry.errors import UnknownWorkspaceError
    from ferry.store.engine import workspace_id
    from ferry.store.schema import import_mappings

    resource = importable_resource(resource)
    with engine.connect() as conn:
        try:
            ws = workspace_id(conn, workspace)
        except UnknownWorkspaceError:  # no such workspace yet: nothing remembered there
            return None
        row = conn.execute(
            select(import_mappings.c.mapping).where(
                (import_mappings.c.workspace_id == ws)
                & (import_mappings.c.resource == resource.slug)
                & (import_mappings.c.columns_key == columns_key(columns))
            )
        ).first()
    if row is None:
        return None
    stored = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    by_source = {m.source_column: m for m in (ColumnMapping.from_json(d) for d in stored)}
    result = [by_source.get(c, ColumnMapping(c, None, None, None, 0.0, "not in the remembered mapping")) for c in columns]
    try:
        validate_mapping(resource, result, columns)
    except ParameterError:
        return None  # the catalog changed since: suggest afresh
    return result
