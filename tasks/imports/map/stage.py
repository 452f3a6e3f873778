"""The map stage as a Prefect task: settle the plan (mapping, static values, references) against the header.

Runs between sniffing the file and reading its rows, so a bad mapping is
refused before a single data row is read. With ``auto_map`` the mapping is the
suggestion for the header and 200 sample rows (a mapping accepted before in the
workspace for the same columns wins); an auto-mapping that was used is
remembered for next time.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from sqlalchemy import Engine

from ferry.errors import FerryError, ParameterError
from ferry.import_params import ColumnMapping, ImportRequest
from ferry.import_plan import ImportPlan, build_plan
from ferry.store.engine import get_engine
from tasks.imports.load import check_create_missing
from tasks.imports.map.memory import remember_mapping
from tasks.imports.map.suggest import suggest_mapping
from tasks.imports.parse import FileInfo, sample
from tasks.imports.transform import static_scalars
from tasks.imports.validate import value_map_problems

SAMPLE_ROWS = 200


def suggest_for_file(info: FileInfo, resource: str, engine: Engine | None = None, workspace: str | None = None) -> list[ColumnMapping]:
    """The suggested mapping for a sniffed file, from its header and first rows (``ferry import suggest-mapping``)."""
    rows, _, _, _ = sample(info, SAMPLE_ROWS)
    return suggest_mapping(info, rows, resource, engine=engine, workspace=workspace)


def auto_mapping(info: FileInfo, request: ImportRequest, engine: Engine | None, workspace: str | None) -> list[ColumnMapping]:
    """The request's mapping when ``auto_map`` is on: the suggestion."""
    return suggest_for_file(info, request.resource_def.slug, engine=engine if workspace else None, workspace=workspace)


@task(name="import-map", cache_policy=NONE, persist_result=False)
def map_columns(request: ImportRequest, info: FileInfo) -> ImportPlan:
    """The plan for this file, checked against its header: every problem at once, as a ParameterError."""
    mapping = auto_mapping(info, request, get_engine(), request.workspace) if request.auto_map else list(request.mapping or [])
    plan = build_plan(request, list(info.columns), mapping)
    if problems := value_map_problems(plan):
        raise ParameterError(problems)
    static_scalars(plan)
    check_create_missing(plan)
    return plan


def remember_plan(request: ImportRequest, plan: ImportPlan) -> list[str]:
    """Remember the mapping an auto-mapped import used; a warning (never a failure) when it cannot be."""
    try:
        remember_mapping(get_engine(), request.workspace, request.resource_def.slug, [ColumnMapping.from_json(m) for m in plan.mapping])
    except FerryError as exc:
        return [f"The mapping was used but not remembered: {exc}"]
    return []
