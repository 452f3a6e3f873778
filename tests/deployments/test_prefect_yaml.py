"""prefect.yaml is loadable by Prefect and every deployment in it can actually run.

Each declared deployment must import (a missing or broken flow file FAILS here,
it is never skipped), and its parameters must validate against the flow's own
parameter models - the same pydantic models Prefect enforces at run time - so
a typo in a scheduled job's parameters is caught in CI, not at 02:00.
"""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from deployments import project
from deployments.serve import ProjectDeployment, load_project_deployments, schedule_create

DOCUMENT = yaml.safe_load(project.PREFECT_YAML.read_text())
DECLARED = load_project_deployments()
SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|private[_-]?key|credential|connection[_-]?string", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]+:[^/@\s]+@")

REQUIRED = {
    "export-data/default",
    "import-data/default",
    "rollback-import/default",
    "reissue-download-url/default",
    "cleanup-managed-exports/daily",
}


def _id(spec: ProjectDeployment) -> str:
    return f"{spec.entrypoint}#{spec.name}"


@pytest.fixture(scope="module")
def flows() -> dict[str, Any]:
    """Each declared entrypoint's flow object; an import error fails the test that needs it."""
    loaded: dict[str, Any] = {}
    for spec in DECLARED:
        try:
            loaded[spec.entrypoint] = spec.load_flow()
        except Exception as exc:  # noqa: BLE001 - reported per deployment below
            loaded[spec.entrypoint] = exc
    return loaded


def _flow(flows, spec):
    flow = flows[spec.entrypoint]
    if isinstance(flow, Exception):
        pytest.fail(f"{spec.entrypoint} (deployment {spec.name!r}) does not import: {type(flow).__name__}: {flow}", pytrace=False)
    return flow


def test_the_file_has_the_shape_prefect_deploy_reads():
    assert DOCUMENT["name"] == "ferry" and DOCUMENT["prefect-version"] == "3.8.8"
    assert DOCUMENT["pull"] == project.PULL_STEPS  # code found through FERRY_CODE_DIR on the executing host
    assert [d["name"] for d in DOCUMENT["deployments"]] == [s.name for s in DECLARED]


@pytest.mark.parametrize("spec", DECLARED, ids=_id)
def test_entrypoint_imports_a_flow(flows, spec):
    flow = _flow(flows, spec)
    assert spec.flow_file.is_file() and flow.fn.__name__ == spec.entrypoint.rpartition(":")[2]


@pytest.mark.parametrize("spec", DECLARED, ids=_id)
def test_parameters_validate_against_the_flows_models(flows, spec):
    from prefect.utilities.callables import parameter_schema

    flow = _flow(flows, spec)
    parameter_schema(flow)  # what the deployment stores for the UI's run form; must build
    signature = typing.get_type_hints(flow.fn)
    unknown = set(spec.parameters) - set(flow.parameters.properties)
    assert not unknown, f"{spec.name}: {sorted(unknown)} are not parameters of {flow.name}"
    for name, value in spec.parameters.items():
        model = signature.get(name)
        validated = TypeAdapter(model).validate_python(value) if model is not None else value
        if hasattr(validated, "catalog_problems"):  # ExportRequest: the catalog checks the flow runs first
            assert validated.catalog_problems() == [], f"{spec.name}: {validated.catalog_problems()}"
    required = set(flow.parameters.required or [])
    if required <= set(spec.parameters):  # complete parameters: Prefect's own validation must pass as well
        flow.validate_parameters(dict(spec.parameters))


@pytest.mark.parametrize("spec", DECLARED, ids=_id)
def test_pool_schedules_and_no_secrets(spec):
    assert spec.work_pool == project.WORK_POOL
    assert project.FERRY_TAG in spec.tags
    for schedule in spec.schedules:
        assert schedule.get("timezone"), f"{spec.name}: a schedule without an explicit timezone: {schedule}"
        schedule_create(schedule)  # Prefect's own schedule models validate cron and timezone

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                assert not SECRET_KEY.search(str(key)), f"{spec.name}: parameter {path}.{key} looks like a secret; use a block"
                walk(inner, f"{path}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")
        elif isinstance(value, str):
            assert not URL_WITH_PASSWORD.search(value), f"{spec.name}: {path} holds a URL with a password; use a block"

    walk(spec.parameters, "parameters")


def test_destinations_name_blocks_of_known_kinds():
    from blocks.registry import DESTINATIONS

    for spec in DECLARED:
        destination = (spec.parameters.get("request") or {}).get("destination")
        if destination:
            kind, _, name = destination.partition("/")
            assert kind in DESTINATIONS and name, f"{spec.name}: destination {destination!r} is not KIND/NAME of a block"


def test_every_ferry_flow_has_its_deployment():
    declared = set()
    for spec in DECLARED:
        flow = spec.load_flow()
        declared.add(f"{flow.name}/{spec.name}")
    assert REQUIRED <= declared, f"missing: {sorted(REQUIRED - declared)}"
    assert len(declared) == len(DECLARED), "two deployments share a flow/name"
    cleanup = next(s for s in DECLARED if s.name == "daily")
    assert cleanup.schedules and all(s.get("active", True) for s in cleanup.schedules)  # retention runs by itself
