"""``ferry reports`` through typer's CliRunner on a SQLite store: create, list, show, delete, export (a real flow run).

The JSON printed is the HTTP API's shape (camelCase); bad definitions exit 2
with every problem on stderr; delete wants ``--yes``.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest
from conftest import Store
from ferry_cli import ferry, ferry_json
from pypdf import PdfReader

FIELDS = {"id", "workspace", "name", "resource", "fields", "labels", "filters", "sort", "title", "description", "createdAt", "updatedAt"}


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory) -> Store:
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    url = f"sqlite:///{tmp_path_factory.mktemp('cli-reports') / 'ferry.db'}"
    engine = get_engine(url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=40, events=20, products=2), seed=3)
    seed_workspace(engine, "globex", SeedCounts(contacts=10, events=5, products=1), seed=4)
    return Store("sqlite", url, engine)


@pytest.fixture
def active(cli_store) -> Store:
    cli_store.activate()
    return cli_store


def fresh(prefix: str = "report") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(name: str, *extra: str) -> dict:
    return ferry_json("reports", "create", name, "--workspace", "acme", "--resource", "contacts", *extra)


def test_create_list_show_delete(active):
    name = fresh()

    created = create(
        name,
        "--fields",
        "email,first_name,lifecycle_stage",
        "--label",
        "email=E-mail address",
        "--label",
        "first_name=Given name",
        "--filter",
        "lifecycle_stage:in:customer|lead",
        "--sort",
        "email:desc",
        "--title",
        "Customers and leads",
        "--description",
        "For the weekly call.",
    )

    assert set(created) == FIELDS and created["id"].startswith("rpt_") and created["workspace"] == "acme"
    assert created["fields"] == ["email", "first_name", "lifecycle_stage"]
    assert created["labels"] == {"email": "E-mail address", "first_name": "Given name"}
    assert created["filters"] == [{"field": "lifecycle_stage", "op": "in", "value": ["customer", "lead"]}]
    assert created["sort"] == {"field": "email", "direction": "desc"} and created["title"] == "Customers and leads"
    assert created in ferry_json("reports", "list", "--workspace", "acme")
    assert created["id"] not in json.dumps(ferry_json("reports", "list", "--workspace", "globex"))
    assert ferry_json("reports", "show", created["id"], "--workspace", "acme") == created
    assert ferry_json("reports", "show", name, "--workspace", "acme") == created  # by name too
    plain = ferry("reports", "show", name, "--workspace", "acme")
    assert plain.exit_code == 0 and name in plain.stdout and "For the weekly call." in plain.stdout
    table = ferry("reports", "list", "--workspace", "acme")
    assert table.exit_code == 0 and created["id"] in table.stdout

    refused = ferry("reports", "delete", name, "--workspace", "acme")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    other = ferry("reports", "delete", created["id"], "--workspace", "globex", "--yes")  # another workspace's: not found
    assert other.exit_code == 2 and "No report" in other.stderr

    deleted = ferry("reports", "delete", name, "--workspace", "acme", "--yes")
    assert deleted.exit_code == 0 and f"Deleted report {name}" in deleted.stdout
    gone = ferry("reports", "show", created["id"], "--workspace", "acme")
    assert gone.exit_code == 2 and "No report" in gone.stderr


def test_a_bad_definition_exits_2_listing_every_problem(active):
    name = fresh()
    create(name)

    result = ferry(
        "reports", "create", name, "--workspace", "acme", "--resource", "contacts", "--fields", "email,nope", "--sort", "qq", "--json"
    )

    assert result.exit_code == 2 and result.stdout == ""
    assert "3 invalid parameter(s)" in result.stderr
    assert "fields[1]='nope'" in result.stderr and "sort.field='qq'" in result.stderr and "exists already" in result.stderr
    unknown = ferry("reports", "list", "--workspace", fresh("nope"))
    assert unknown.exit_code == 2 and "ferry workspaces create NAME" in unknown.stderr
    bad_label = ferry("reports", "create", fresh(), "--workspace", "acme", "--resource", "contacts", "--label", "email")
    assert bad_label.exit_code == 2 and "KEY=VALUE" in bad_label.output


def test_export_to_csv_and_pdf(active, tmp_path):
    name = fresh()
    create(name, "--fields", "email,first_name", "--label", "email=E-mail address", "--sort", "email", "--description", "All of them.")

    record = ferry_json("reports", "export", name, "--workspace", "acme", "--dest", str(tmp_path / "csv"))

    assert record["status"] == "success" and record["record_count"] == 40
    rows = list(csv.reader(io.StringIO(Path(record["destination_path"]).read_text())))
    assert rows[0] == ["E-mail address", "first_name"] and len(rows) == 41
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])

    pdf = ferry_json("reports", "export", name, "--workspace", "acme", "--format", "pdf", "--dest", str(tmp_path / "pdf"))

    assert pdf["status"] == "success" and pdf["destination_path"].endswith(".pdf")
    text = PdfReader(pdf["destination_path"]).pages[0].extract_text()
    assert name in text and "All of them." in text  # the title defaults to the name
    bad = ferry("reports", "export", name, "--workspace", "acme", "--format", "docx")
    assert bad.exit_code == 2 and "format='docx'" in bad.stderr
