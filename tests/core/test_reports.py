"""Saved reports on a SQLite store: CRUD, every problem of a definition at once, workspace isolation, the export they become."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ferry.errors import ParameterError, ReportNotFoundError, UnknownWorkspaceError
from ferry.reports import (
    Report,
    create_report,
    delete_report,
    find_report,
    get_report,
    list_reports,
    parse_report,
    replace_report,
)
from ferry.store import schema
from ferry.workspaces import create_workspace, delete_workspace

DEFINITION = {
    "name": "Customers by e-mail",
    "resource": "contacts",
    "fields": ["email", "first_name", "lifecycle_stage"],
    "labels": {"email": "E-mail address"},
    "filters": [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}],
    "sort": "email:desc",
    "title": "Customers",
    "description": "Every customer, newest e-mail first.",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('reports') / 'ferry.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def workspace(engine) -> str:
    return create_workspace(engine, f"rpt-{uuid.uuid4().hex[:8]}").slug


def problems_of(excinfo) -> dict[str, str]:
    return {p.field: p.reason for p in excinfo.value.problems}


def test_create_get_list_replace_delete(engine, workspace):
    before = datetime.now(UTC).replace(microsecond=0)

    created = create_report(engine, workspace, DEFINITION)

    assert created.id.startswith("rpt_") and len(created.id) == 28
    assert created.workspace == workspace and created.name == DEFINITION["name"]
    assert created.sort.field == "email" and created.sort.direction == "desc"
    assert before <= created.created_at <= datetime.now(UTC) + timedelta(seconds=1) and created.updated_at == created.created_at
    assert get_report(engine, workspace, created.id) == created
    assert find_report(engine, workspace, DEFINITION["name"]) == created
    assert list_reports(engine, workspace) == [created]
    shown = created.to_json()
    assert set(shown) == {
        "id",
        "workspace",
        "name",
        "resource",
        "fields",
        "labels",
        "filters",
        "sort",
        "title",
        "description",
        "createdAt",
        "updatedAt",
    }
    assert shown["sort"] == {"field": "email", "direction": "desc"} and shown["filters"][0]["op"] == "eq"

    replaced = replace_report(engine, workspace, created.id, {**shown, "name": "Renamed", "fields": ["email"], "labels": {}})

    assert replaced.id == created.id and replaced.created_at == created.created_at and replaced.fields == ["email"]
    assert get_report(engine, workspace, created.id).name == "Renamed"
    other = create_report(engine, workspace, {"name": "A first", "resource": "events"})
    assert [r.name for r in list_reports(engine, workspace)] == ["A first", "Renamed"]  # by name

    deleted = delete_report(engine, workspace, created.id)

    assert deleted.id == created.id
    with pytest.raises(ReportNotFoundError):
        get_report(engine, workspace, created.id)
    with pytest.raises(ReportNotFoundError):
        delete_report(engine, workspace, created.id)
    assert list_reports(engine, workspace) == [other]


def test_snake_case_is_accepted_and_the_stored_definition_is_snake_case(engine, workspace):
    report = parse_report({"name": "x", "resource": "profiles", "fields": "email, first_name", "sort": {"field": "email"}})
    created = create_report(engine, workspace, report)

    with engine.connect() as conn:
        stored = conn.execute(sa.select(schema.reports.c.definition).where(schema.reports.c.id == created.id)).scalar_one()
    assert stored == {
        "resource": "profiles",
        "fields": ["email", "first_name"],
        "labels": {},
        "filters": [],
        "sort": {"field": "email", "direction": "asc"},
    }
    assert Report.model_validate({"name": "y", "resource": "contacts", "created_at": created.created_at}).created_at == created.created_at


def test_every_problem_of_a_definition_at_once(engine, workspace):
    create_report(engine, workspace, {"name": "Taken", "resource": "contacts"})
    body = {
        "name": "Taken",
        "resource": "contacts",
        "fields": ["email", "nope"],
        "filters": [{"field": "zz", "op": "eq", "value": 1}, {"field": "orders_count", "op": "gt", "value": "many"}],
        "sort": "qq:desc",
        "bogus": True,
    }

    with pytest.raises(ParameterError) as excinfo:
        create_report(engine, workspace, body)

    assert set(problems_of(excinfo)) == {"name", "fields[1]", "filters[0].field", "filters[1].value", "sort.field", "bogus"}
    assert "exists already" in problems_of(excinfo)["name"]
    with pytest.raises(ParameterError) as excinfo:
        create_report(engine, workspace, {"name": " ", "resource": "nope", "labels": {"email": ""}, "sort": {"direction": "up"}})
    assert {"name", "sort.field", "sort.direction"} <= set(problems_of(excinfo))
    with pytest.raises(ParameterError) as excinfo:
        create_report(engine, workspace, {"name": "ok", "resource": "nope"})
    assert set(problems_of(excinfo)) == {"resource"}
    with pytest.raises(ParameterError) as excinfo:
        create_report(engine, workspace, {"name": "ok", "resource": "contacts", "fields": ["email"], "labels": {"first_name": "F"}})
    assert set(problems_of(excinfo)) == {"labels.first_name"}
    assert [r.name for r in list_reports(engine, workspace)] == ["Taken"]  # nothing else was written


def test_a_replacement_may_keep_its_own_name_but_not_take_anothers(engine, workspace):
    first = create_report(engine, workspace, {"name": "First", "resource": "contacts"})
    second = create_report(engine, workspace, {"name": "Second", "resource": "contacts"})

    assert replace_report(engine, workspace, first.id, {"name": "First", "resource": "accounts"}).resource == "accounts"
    with pytest.raises(ParameterError) as excinfo:
        replace_report(engine, workspace, second.id, {"name": "First", "resource": "contacts"})
    assert set(problems_of(excinfo)) == {"name"}
    with pytest.raises(ReportNotFoundError):
        replace_report(engine, workspace, "rpt_000000000000000000000000", {"name": "Z", "resource": "contacts"})


def test_another_workspaces_report_is_not_found_like_a_missing_one(engine, workspace):
    other = create_workspace(engine, f"rpt-{uuid.uuid4().hex[:8]}").slug
    mine = create_report(engine, workspace, {"name": "Shared name", "resource": "contacts"})
    theirs = create_report(engine, other, {"name": "Shared name", "resource": "contacts"})  # names are per workspace

    assert mine.id != theirs.id
    for call in (
        lambda: get_report(engine, other, mine.id),
        lambda: find_report(engine, other, mine.id),
        lambda: delete_report(engine, other, mine.id),
        lambda: replace_report(engine, other, mine.id, {"name": "x", "resource": "contacts"}),
    ):
        with pytest.raises(ReportNotFoundError) as excinfo:
            call()
        assert other not in str(excinfo.value) and workspace not in str(excinfo.value)
    assert list_reports(engine, other) == [theirs] and get_report(engine, workspace, mine.id).name == "Shared name"
    with pytest.raises(UnknownWorkspaceError):
        list_reports(engine, "no-such-workspace")


def test_deleting_a_workspace_deletes_its_reports(engine, workspace):
    create_report(engine, workspace, {"name": "Gone", "resource": "contacts"})

    counts = delete_workspace(engine, workspace, in_flight=None)

    assert counts["reports"] == 1


def test_a_report_becomes_an_export_request_in_the_format_chosen_then(engine, workspace):
    report = create_report(engine, workspace, DEFINITION)

    pdf = report.export_request(workspace, {"format": "pdf", "dateFormat": "L"}, actor="api:k")
    untitled = create_report(engine, workspace, {"name": "Plain", "resource": "contacts"}).export_request(workspace)
    overridden = report.export_request(workspace, {"format": "pdf", "title": "Q4 Sales Report", "description": "Quarterly"})

    assert (pdf.workspace, pdf.resource, pdf.format, pdf.date_format, pdf.actor) == (workspace, "contacts", "pdf", "L", "api:k")
    assert pdf.fields == DEFINITION["fields"] and pdf.labels == DEFINITION["labels"]
    assert [f.model_dump() for f in pdf.filters] == DEFINITION["filters"] and pdf.sort.direction == "desc"
    assert (pdf.title, pdf.description) == ("Customers", "Every customer, newest e-mail first.")
    assert (untitled.format, untitled.title) == ("csv", "Plain")  # a PDF's title defaults to the name
    assert (overridden.title, overridden.description) == ("Q4 Sales Report", "Quarterly")
    with pytest.raises(ParameterError) as excinfo:
        report.export_request(workspace, {"format": "docx", "resource": "events", "limit": 0})
    assert set(problems_of(excinfo)) == {"format", "resource", "limit"}
