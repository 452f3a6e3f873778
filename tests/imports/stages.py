"""Stage runners for the import tests: a file's rows through validate -> transform -> load without Prefect.

The stores they write to are the ``import_store`` / ``istore`` fixtures of
this folder's conftest.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from ferry.import_params import ColumnMapping, ImportRequest
from ferry.import_plan import build_plan
from ferry.pipe import Pipe, run_in_threads
from ferry.spool import write_spool
from ferry.store import schema as s
from ferry.store.engine import ensure_workspace
from tasks.imports.load import LoadResult, load_stream
from tasks.imports.transform import transform_stream
from tasks.imports.validate import ValidationResult, validate_spool


@dataclass
class ImportStore:
    kind: str
    url: str
    engine: sa.Engine

    def activate(self) -> None:
        from ferry.settings import reload_settings

        os.environ["FERRY_DATABASE_URL"] = self.url
        reload_settings()

    def workspace(self, accounts: tuple[str, ...] = ()) -> str:
        """A new, empty workspace (optionally with accounts by name)."""
        slug = f"w{uuid.uuid4().hex[:10]}"
        with self.engine.begin() as conn:
            ws = ensure_workspace(conn, slug)
            for name in accounts:
                conn.execute(sa.insert(s.accounts).values(workspace_id=ws, name=name))
        return slug

    def rows(self, workspace: str, table: str = "contacts", order: str = "id") -> list[dict]:
        t = s.tables[table]
        with self.engine.connect() as conn:
            ws = conn.execute(sa.select(s.workspaces.c.id).where(s.workspaces.c.slug == workspace)).scalar_one()
            return [dict(r) for r in conn.execute(sa.select(t).where(t.c.workspace_id == ws).order_by(t.c[order])).mappings()]

    def count(self, table: str, workspace: str | None = None) -> int:
        t = s.tables.get(table) if table in s.tables else sa.table(table)
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(t)
            if workspace is not None:
                ws = conn.execute(sa.select(s.workspaces.c.id).where(s.workspaces.c.slug == workspace)).scalar_one()
                query = query.where(t.c.workspace_id == ws)
            return conn.execute(query).scalar_one()


def source_spool(path: Path, rows: list[dict], first_row: int = 2, header: list[str] = ()) -> tuple[Path, list[str]]:
    """A source spool like the parser writes: every column text, ``__row__`` = the line in the file."""
    columns = list(dict.fromkeys([*header, *(k for r in rows for k in r if not k.startswith("__"))]))
    data = {c: pa.array([None if r.get(c) is None else str(r.get(c)) for r in rows], pa.string()) for c in columns}
    data["__row__"] = pa.array([r.get("__row__", first_row + i) for i, r in enumerate(rows)], pa.int64())
    data["__error__"] = pa.array([r.get("__error__") for r in rows], pa.string())
    batch = pa.record_batch(data)
    write_spool(path, batch.schema, [batch])
    return path, columns


def mapping_for(routes: dict[str, str]) -> list[ColumnMapping]:
    """{source column: column key} -> mapping entries (keys like phone.mobile split into field + part)."""
    entries = []
    for source, key in routes.items():
        slug, _, part = key.partition(".")
        extra = {}
        if part and slug == "phone":
            extra["valueType"] = part
        elif part:
            extra["addressPart"] = part
        entries.append(ColumnMapping.from_json({"sourceColumn": source, "targetFieldSlug": slug, **extra}))
    return entries


def run_stages(
    store: ImportStore,
    tmp_path: Path,
    workspace: str,
    rows: list[dict],
    routes: dict[str, str],
    resource: str = "contacts",
    run_id: str | None = None,
    max_rejected: int | None = None,
    **options,
) -> tuple[LoadResult, object, str]:
    """Validate, transform and load ``rows`` (as the flow does, at the same time, without Prefect). Returns (load, validation, run id)."""
    out = tmp_path / uuid.uuid4().hex[:8]
    out.mkdir(parents=True)
    spool, columns = source_spool(out / "source.arrow", rows, header=list(routes))
    dummy = out / "file.csv"
    dummy.write_text("placeholder: stages read the spool\n")
    request = ImportRequest(source=str(dummy), resource=resource, workspace=workspace, mapping=mapping_for(routes), **options).validated()
    plan = build_plan(request, columns, request.mapping)
    run_id = run_id or str(uuid.uuid4())
    pipes = checked, staged = Pipe(), Pipe()
    validated, _, loaded = run_in_threads(
        pipes,
        lambda: validate_spool(spool, plan, out, checked),
        lambda: transform_stream(checked, plan, staged),
        lambda: load_stream(store.engine, staged, plan, run_id, "tester", out, max_rejected=max_rejected),
    )
    return loaded, validated, run_id


def validated_rows(spool: Path, plan, out: Path) -> tuple[ValidationResult, list[dict]]:
    """Validate a source spool alone (an unbounded pipe holds its output); returns the result and the checked rows."""
    checked = Pipe(capacity=None)
    result = validate_spool(spool, plan, out, checked)
    with checked.reading("test") as batches:
        rows = [row for batch in batches for row in batch.to_pylist()]
    return result, rows


def load_errors(result: LoadResult) -> list[dict]:
    if result.errors is None or not result.errors.exists():
        return []
    return pa.ipc.open_file(pa.memory_map(str(result.errors), "r")).read_all().to_pylist()
