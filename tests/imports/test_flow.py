"""The import flow end to end through a real Prefect server, on SQLite and PostgreSQL:
record, rejected-rows file, artifacts, audit log, dry run, history, rollback flow,
processing modes, and an export -> import -> export round trip that is byte-identical."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from imports.stages import ImportStore

from ferry.import_params import ImportRequest
from ferry.records import ImportRecord, RollbackRecord
from ferry.runs import import_history, run_result
from ferry.store import schema as s
from flows.import_ import import_data
from flows.rollback import rollback_import

HEADER = [
    "Email",
    "First Name",
    "Last Name",
    "Mobile Phone Number",
    "Work Phone",
    "Company Name",
    "Street",
    "City",
    "Country",
    "Lifecycle Stage",
    "Opted In",
    "Total Revenue",
    "Orders",
    "Notes From Sales",
]
MAPPING = [
    {"sourceColumn": "Email", "targetFieldSlug": "email"},
    {"sourceColumn": "First Name", "targetFieldSlug": "first_name"},
    {"sourceColumn": "Last Name", "targetFieldSlug": "last_name"},
    {"sourceColumn": "Mobile Phone Number", "targetFieldSlug": "phone", "valueType": "mobile"},
    {"sourceColumn": "Work Phone", "targetFieldSlug": "phone", "valueType": "work"},
    {"sourceColumn": "Company Name", "targetFieldSlug": "company"},
    {"sourceColumn": "Street", "targetFieldSlug": "address", "addressPart": "street"},
    {"sourceColumn": "City", "targetFieldSlug": "address", "addressPart": "city"},
    {"sourceColumn": "Country", "targetFieldSlug": "address", "addressPart": "country"},
    {"sourceColumn": "Lifecycle Stage", "targetFieldSlug": "lifecycle_stage"},
    {"sourceColumn": "Opted In", "targetFieldSlug": "email_consent"},
    {"sourceColumn": "Total Revenue", "targetFieldSlug": "lifetime_value"},
    {"sourceColumn": "Orders", "targetFieldSlug": "orders_count"},
    {"sourceColumn": "Notes From Sales", "targetFieldSlug": None},
]
ROWS = [
    [
        "ada@example.com",
        "Ada",
        "Lovelace",
        "+44 20 7946 0018",
        "",
        "Acme",
        "1 Main St",
        "London",
        "GB",
        "Customer",
        "yes",
        "1,250.50",
        "3",
        "vip",
    ],
    ["not-an-email", "Bad", "Row", "", "", "", "", "", "", "lead", "maybe", "12", "x", ""],  # line 3: three errors
    ["alan@example.com", "Alan", "Turing", "", "(555) 010-0200", "Newco", "", "Manchester", "GB", "lead", "no", "", "", ""],
    ["ADA@example.com", "", "", "", "+1 555 0100 999", "", "", "", "", "", "", "", "", "dup of line 2"],  # in-file duplicate
    ["grace@example.com", "Grace", "Hopper", "", "", "", "", "", "", "admiral", "", "", "", ""],  # line 6: enum error
]


def write_csv(path: Path, header=HEADER, rows=ROWS) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(**params):
    """Run the flow; ROWS rejects 2 of 5 rows, so the error-rate limit is off unless a test sets it."""
    params.setdefault("max_error_rate", 1)
    state = import_data(ImportRequest(**params), return_state=True)
    return state, run_result(state)


def test_csv_import_end_to_end(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    source = write_csv(tmp_path / "hubspot-export.csv")
    state, record = run(
        source=str(source),
        resource="contacts",
        workspace=ws,
        mapping=MAPPING,
        duplicates="update",
        static_values={"source": "fair-2026"},
        actor="alice",
        data_quality=istore.kind == "postgresql",
        max_error_rate="50%",
    )

    assert state.is_completed(), state.message
    assert state.message == "Partial: imported contacts with rows rejected: 2 created, 0 updated, 1 skipped, 2 of 5 rows rejected"
    assert isinstance(record, ImportRecord) and record.status == "partial" and record.processing_mode == "inline"
    assert (record.total_rows, record.processed_rows, record.created_rows, record.updated_rows, record.skipped_rows, record.error_rows) == (
        5,
        5,
        2,
        0,
        1,
        2,
    )
    assert [(e["row"], e["field"], e["value"]) for e in record.errors] == [
        (3, "email", "not-an-email"),
        (3, "email_consent", "maybe"),
        (3, "orders_count", "x"),
        (6, "lifecycle_stage", "admiral"),
    ]
    assert record.error_summary == {"email:email": 1, "email_consent:boolean": 1, "lifecycle_stage:enum": 1, "orders_count:integer": 1}
    assert record.reference_warnings[0]["values"] == [{"value": "Newco", "rows": 1}]
    assert "Column 'Notes From Sales' is not mapped and is ignored." in record.warnings
    assert record.samples["skip"] == [{"row": 5, "reason": "merged into row 2"}]

    contacts = {c["email"]: c for c in istore.rows(ws)}
    ada, alan = contacts["ada@example.com"], contacts["alan@example.com"]
    assert (ada["first_name"], ada["phone_mobile"], ada["phone_work"], ada["address_city"], ada["lifecycle_stage"]) == (
        "Ada",
        "+442079460018",
        "+15550100999",
        "London",
        "customer",
    )
    assert (ada["email_consent"], ada["lifetime_value"], ada["orders_count"], ada["source"]) == (True, 1250.5, 3, "fair-2026")
    assert ada["company_id"] == istore.rows(ws, "accounts")[0]["id"] and alan["company_id"] is None
    assert (alan["phone_work"], alan["email_consent"]) == ("5550100200", False)

    with open(record.rejected_rows_path, newline="") as f:
        rejected = list(csv.DictReader(f))
    assert [r["ferry_row"] for r in rejected] == ["3", "6"]
    assert rejected[0]["Email"] == "not-an-email" and rejected[0]["Orders"] == "x"
    assert rejected[0]["ferry_errors"] == (
        "email: not a valid e-mail address; email_consent: not a boolean (true/false, yes/no, 1/0, subscribed/unsubscribed); orders_count: not a whole number"
    )
    if istore.kind == "postgresql":
        assert {d["expectation"] for d in record.data_quality} >= {
            "expect_column_values_to_match_regex",
            "expect_column_values_to_be_in_set",
        }
        email_check = next(
            d for d in record.data_quality if d["column"] == "email" and d["expectation"] == "expect_column_values_to_match_regex"
        )
        assert email_check["unexpected_count"] == 1 and not email_check["success"]

    with istore.engine.connect() as conn:
        audit = conn.execute(sa.select(s.audit_log).where(s.audit_log.c.run_id == record.run_id)).mappings().one()
    assert (audit["actor"], audit["action"], audit["resource"], audit["payload_bytes"]) == (
        "alice",
        "import.partial",
        "contacts",
        source.stat().st_size,
    )
    assert audit["details"]["options"]["duplicates"] == "update" and audit["details"]["source"] == "hubspot-export.csv"

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:  # this run's artifacts (the server holds every test's)
        mine = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[record.run_id])))
    assert {a.key for a in mine} >= {"import-summary", "import-errors", "import-progress"}
    summary = next(a for a in mine if a.key == "import-summary")
    assert "| Rejected | 2 |" in summary.data


def test_dry_run_reports_what_would_happen_and_changes_nothing(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    source = write_csv(tmp_path / "contacts.csv")
    _, real_first = run(source=str(source), resource="contacts", workspace=ws, mapping=MAPPING, data_quality=False)
    before = istore.rows(ws)
    changed = write_csv(
        tmp_path / "changed.csv", rows=[["ada@example.com", "Augusta", *ROWS[0][2:]], ["new@example.com", "New", *[""] * 12]]
    )

    _, dry = run(
        source=str(changed), resource="contacts", workspace=ws, mapping=MAPPING, duplicates="update", dry_run=True, data_quality=False
    )

    assert dry.status == "success" and dry.dry_run
    assert (dry.created_rows, dry.updated_rows, dry.skipped_rows, dry.error_rows) == (1, 1, 0, 0)
    assert dry.samples["create"] == [{"row": 3, "email": "new@example.com"}]
    assert dry.samples["update"][0]["row"] == 2 and dry.samples["update"][0]["email"] == "ada@example.com"
    assert istore.rows(ws) == before
    with istore.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(s.import_runs).where(s.import_runs.c.run_id == dry.run_id)).scalar_one()
            == 0
        )
    assert real_first.created_rows == 2


def test_history_and_rollback_flow(istore, tmp_path, monkeypatch):
    ws = istore.workspace(accounts=("Acme",))
    _, first = run(source=str(write_csv(tmp_path / "a.csv")), resource="contacts", workspace=ws, mapping=MAPPING, data_quality=False)
    snapshot = istore.rows(ws)
    _, second = run(
        source=str(write_csv(tmp_path / "b.csv", rows=[["ada@example.com", "Countess", *ROWS[0][2:]]])),
        resource="profiles",
        workspace=ws,
        mapping=MAPPING,
        duplicates="update",
        merge="overwrite",
        data_quality=False,
    )
    assert second.updated_rows == 1

    history = import_history("contacts", workspace=ws)
    assert [r.run_id for r in history] == [second.run_id, first.run_id]
    assert history[0].updated_rows == 1 and history[1].created_rows == 2
    monkeypatch.setattr("ferry.runs.PAGE", 1)  # Prefect answers at most 200 runs a request: longer histories come in pages
    assert [r.run_id for r in import_history("contacts", workspace=ws, limit=5)] == [second.run_id, first.run_id]
    assert [r.run_id for r in import_history("contacts", workspace=ws, limit=1)] == [second.run_id]
    other_store = ImportStore("sqlite", f"sqlite:///{tmp_path / 'other.db'}", None)
    try:  # the same Prefect server, another Ferry store: none of these runs are its history
        other_store.activate()
        assert import_history("contacts", workspace=ws) == [] and import_history("contacts") == []
    finally:
        istore.activate()

    refused = rollback_import(first.run_id, "bob", return_state=True)
    assert refused.is_failed() and "1 created contacts record(s) changed since" in run_result(refused).error
    state = rollback_import(second.run_id, "bob", return_state=True)
    record = state.result()
    assert isinstance(record, RollbackRecord) and (record.status, record.restored_rows, record.deleted_rows) == ("success", 1, 0)
    assert istore.rows(ws) == snapshot


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_a_small_import_is_not_held_back_by_the_data_quality_summary(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    params = {"source": str(write_csv(tmp_path / "small.csv")), "resource": "contacts", "mapping": MAPPING}
    _, record = run(**params, workspace=ws)  # data_quality left to the default: 5 rows are under FERRY_QUALITY_MIN_ROWS
    assert record.status == "partial" and record.data_quality == []


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_invalid_parameters_fail_listing_every_problem(istore, tmp_path):
    ws = istore.workspace()
    source = write_csv(tmp_path / "c.csv")
    state, record = run(
        source=str(source),
        resource="contacts",
        workspace=ws,
        mapping=[
            {"sourceColumn": "Email", "targetFieldSlug": "email"},
            {"sourceColumn": "Nope", "targetFieldSlug": "first_name"},
            {"sourceColumn": "City", "targetFieldSlug": "shoe_size"},
        ],
        static_values={"orders_count": "many"},
        data_quality=False,
    )

    assert state.is_failed() and record.status == "failed"
    assert "mapping[2].targetFieldSlug='shoe_size': not a field of contacts" in record.error
    state, record = run(
        source=str(source),
        resource="contacts",
        workspace=ws,
        mapping=[{"sourceColumn": "Email", "targetFieldSlug": "email"}, {"sourceColumn": "Nope", "targetFieldSlug": "first_name"}],
        static_values={"orders_count": "many"},
        data_quality=False,
    )
    assert "mapping[1].sourceColumn='Nope': no such column in the file" in record.error
    state, record = run(
        source=str(source),
        resource="contacts",
        workspace=ws,
        mapping=[{"sourceColumn": "Email", "targetFieldSlug": "email"}],
        static_values={"orders_count": "many"},
        data_quality=False,
    )
    assert "static_values.orders_count='many': not a whole number" in record.error
    assert istore.rows(ws) == []


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_large_files_go_to_a_deployment_and_say_so_when_there_is_none(istore, tmp_path):
    ws = istore.workspace()
    source = write_csv(tmp_path / "big.csv")
    state, record = run(source=str(source), resource="contacts", workspace=ws, mapping=MAPPING, processing="deployment", data_quality=False)
    assert state.is_failed() and "'import-data/default' does not exist" in record.error and istore.rows(ws) == []

    state, record = run(source=str(source), resource="contacts", workspace=ws, mapping=MAPPING, inline_max_bytes=10, data_quality=False)
    assert record.status == "partial" and record.processing_mode == "inline" and record.created_rows == 2
    assert any("ran inline" in w and "does not exist" in w for w in record.warnings)


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_skip_validation_is_loud_and_loads_bad_values_as_empty(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    state, record = run(
        source=str(write_csv(tmp_path / "c.csv")),
        resource="contacts",
        workspace=ws,
        mapping=MAPPING,
        skip_validation=True,
        data_quality=False,
    )
    assert any("skip_validation is on" in w for w in record.warnings)
    assert record.error_rows == 1 and record.errors[0]["row"] == 3  # an invalid e-mail is still required: that row cannot load
    grace = next(r for r in istore.rows(ws) if r["email"] == "grace@example.com")
    assert grace["lifecycle_stage"] is None


# --- the round trip -----------------------------------------------------------------------------


def _export(workspace: str, resource: str, folder: Path) -> bytes:
    from ferry.catalog import get_resource
    from ferry.params import ExportRequest
    from flows.export import export_data

    res = get_resource(resource)
    keys = [c.key for c in res.columns() if not res.get_field(c.field_slug).readonly]
    state = export_data(
        ExportRequest(workspace=workspace, resource=resource, fields=keys, destination=str(folder), filename=f"{resource}.csv"),
        return_state=True,
    )
    record = state.result()
    assert record.status == "success", record.error
    return Path(record.destination_path).read_bytes()


def test_export_import_export_round_trip_is_byte_identical(istore, tmp_path):
    from ferry.store.seed import SeedCounts, seed_workspace

    origin = istore.workspace()
    seed_workspace(istore.engine, origin, SeedCounts(contacts=300, events=0, products=0), seed=5)
    target = istore.workspace()
    first = {r: _export(origin, r, tmp_path / "first") for r in ("accounts", "contacts")}

    for resource in ("accounts", "contacts"):
        path = tmp_path / "first" / f"{resource}.csv"
        header = next(csv.reader(path.open(newline="")))
        mapping = [{"sourceColumn": k, "targetFieldSlug": k} for k in header]
        _, record = run(source=str(path), resource=resource, workspace=target, mapping=mapping, data_quality=False)
        assert record.status == "success" and record.error_rows == 0 and record.created_rows == len(istore.rows(origin, resource)), record

    again = {r: _export(target, r, tmp_path / "again") for r in ("accounts", "contacts")}
    assert again["accounts"] == first["accounts"]
    assert again["contacts"] == first["contacts"]
    assert len(first["contacts"].splitlines()) == 301


def test_workflows_export_and_import_like_the_other_resources(istore, tmp_path):
    """The catalog's workflows (automation definitions): seeded, exported, imported into another workspace, exported the same."""
    from ferry.store.seed import SeedCounts, seed_workspace

    origin, target = istore.workspace(), istore.workspace()
    seed_workspace(istore.engine, origin, SeedCounts(contacts=20, events=0, products=0), seed=3)
    first = _export(origin, "workflows", tmp_path / "first")
    path = tmp_path / "first" / "workflows.csv"
    header = next(csv.reader(path.open(newline="")))
    assert header == ["key", "name", "status", "trigger", "steps", "attributes"]
    mapping = [{"sourceColumn": k, "targetFieldSlug": k} for k in header]
    _, record = run(source=str(path), resource="workflows", workspace=target, mapping=mapping, data_quality=False)
    assert record.status == "success" and record.created_rows == 3 and record.error_rows == 0, record
    assert _export(target, "workflows", tmp_path / "again") == first
    steps = {row["key"]: json.loads(row["steps"]) for row in csv.DictReader(io.StringIO(first.decode()))}
    assert steps["welcome"] == [{"type": "email", "template": "welcome"}, {"type": "wait", "days": 2}]


# --- CLI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_cli_validate_run_history_rollback(istore, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    ws = istore.workspace(accounts=("Acme",))
    source = write_csv(tmp_path / "c.csv")
    mapping_file = tmp_path / "m.json"
    mapping_file.write_text(json.dumps(MAPPING))

    result = runner.invoke(app, ["import", "validate", str(source), "--resource", "contacts", "--mapping", str(mapping_file), "--json"])
    assert result.exit_code == 1, result.output  # rows with errors: non-zero, for scripts
    report = json.loads(result.stdout)
    assert (report["totalRows"], report["errorRows"], report["duplicateRows"]) == (5, 2, 1)
    assert report["errors"][0] == {"row": 3, "field": "email", "value": "not-an-email", "error": "not a valid e-mail address"}
    assert any("References" in w for w in report["warnings"])

    result = runner.invoke(
        app,
        [
            "import",
            "run",
            str(source),
            "--resource",
            "contacts",
            "--workspace",
            ws,
            "--mapping",
            str(mapping_file),
            "--duplicates",
            "update",
            "--merge",
            "fill_empty",
            "--static",
            "source=cli",
            "--create-missing-references",
            "--dry-run",
            "--max-error-rate",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output  # a dry run with rejected rows would be partial
    dry = json.loads(result.stdout)
    assert dry["dry_run"] and dry["created_rows"] == 2 and dry["created_references"] == {"accounts": 1} and istore.rows(ws) == []

    result = runner.invoke(
        app,
        [
            "import",
            "run",
            str(source),
            "--resource",
            "contacts",
            "--workspace",
            ws,
            "--mapping",
            str(mapping_file),
            "--match",
            "email",
            "--static",
            "source=cli",
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output  # 2 of 5 rows rejected: past the default 10% max error rate
    refused = json.loads(result.stdout)
    assert refused["status"] == "failed" and refused["error_rows"] == 2 and refused["created_rows"] == 0
    assert "more than the 10.0% max_error_rate allows; nothing was loaded" in refused["error"] and istore.rows(ws) == []

    result = runner.invoke(
        app,
        ["import", "run", str(source), "--resource", "contacts", "--workspace", ws, "--mapping", str(mapping_file)]
        + ["--static", "source=cli", "--max-error-rate", "40%", "--json"],
    )
    assert result.exit_code == 3, result.output  # partial: rows rejected, the rest loaded
    run_id = json.loads(result.stdout)["run_id"]
    assert json.loads(result.stdout)["status"] == "partial" and {r["source"] for r in istore.rows(ws)} == {"cli"}

    result = runner.invoke(app, ["import", "history", "--resource", "contacts", "--workspace", ws, "--json"])
    assert [(r["run_id"], r["status"]) for r in json.loads(result.stdout)][:2] == [(run_id, "partial"), (refused["run_id"], "failed")]
    assert [r["dry_run"] for r in json.loads(result.stdout)] == [False, False, True]

    result = runner.invoke(app, ["import", "rollback", run_id[:8]])  # the history table's short id
    assert result.exit_code == 0, result.output
    assert "Rolled back" in result.stdout and istore.rows(ws) == []
    result = runner.invoke(app, ["import", "rollback", run_id])
    assert result.exit_code == 1 and "already rolled back" in result.output
    result = runner.invoke(app, ["import", "history", "--resource", "contacts", "--workspace", ws, "--json"])
    assert json.loads(result.stdout)[0]["status"] == "rolled_back"
    result = runner.invoke(app, ["runs", "show", run_id, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["record"]["status"] == "rolled_back"  # its run record says so too
    result = runner.invoke(app, ["import", "history", "--resource", "contacts", "--workspace", ws], env={"COLUMNS": "100"})
    assert f" {run_id[:8]} " in result.stdout and run_id not in result.stdout and " rolled_back " in result.stdout

    result = runner.invoke(app, ["import", "run", str(source), "--resource", "contacts", "--workspace", ws, "--duplicates", "merge"])
    assert result.exit_code == 2 and "duplicates" in result.output


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_a_large_file_starts_a_deployment_run_and_returns_at_once(istore, tmp_path):
    from prefect.client.orchestration import get_client

    ws = istore.workspace()
    source = write_csv(tmp_path / "big.csv")
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("import-data")
        deployment_id = client.create_deployment(flow_id=flow_id, name="default", entrypoint="flows/import_.py:import_data")
    try:
        state, record = run(source=str(source), resource="contacts", workspace=ws, mapping=MAPPING, inline_max_bytes=10, data_quality=False)
        assert state.is_completed() and record.status == "submitted" and record.processing_mode == "deployment"
        with get_client(sync_client=True) as client:
            started = client.read_flow_run(record.deployment_run_id)
        assert started.deployment_id == deployment_id and started.state.is_scheduled()  # no worker here: it waits to be picked up
        assert started.parameters["request"]["processing"] == "inline" and started.parameters["request"]["workspace"] == ws
        assert istore.rows(ws) == []  # nothing ran inline
        assert [(r.run_id, r.status) for r in import_history("contacts", workspace=ws)] == [(record.deployment_run_id, "submitted")]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_auto_map_maps_vendor_headers_and_remembers_the_mapping(istore, tmp_path):
    from tasks.imports.map import suggest_mapping

    ws = istore.workspace(accounts=("Acme",))
    source = write_csv(tmp_path / "hubspot.csv")
    state, record = run(source=str(source), resource="contacts", workspace=ws, auto_map=True, data_quality=False)

    assert record.status == "partial" and record.error_rows == 2, record.error  # ROWS has two bad rows
    used = {m["sourceColumn"]: (m["targetFieldSlug"], m.get("valueType") or m.get("addressPart")) for m in record.mapping}
    assert used["Email"] == ("email", None) and used["First Name"] == ("first_name", None)
    assert used["Mobile Phone Number"] == ("phone", "mobile") and used["City"] == ("address", "city")
    assert record.created_rows == 2 and {c["email"] for c in istore.rows(ws)} == {"ada@example.com", "alan@example.com"}
    remembered = suggest_mapping(HEADER, [], "contacts", engine=istore.engine, workspace=ws)
    assert all(m.confidence == 1.0 for m in remembered)


def test_a_failure_after_the_commit_says_the_rows_are_in_and_how_to_undo_them(istore, tmp_path, monkeypatch):
    """The failure message must not invite a re-run that would apply the rows twice."""
    import flows.import_ as import_flow

    def broken_memory(*_args, **_kwargs):  # a step after the load's commit fails unexpectedly
        raise RuntimeError("the mapping memory broke")

    monkeypatch.setattr(import_flow, "remember_plan", broken_memory)
    ws = istore.workspace(accounts=("Acme",))
    state, record = run(source=str(write_csv(tmp_path / "hubspot.csv")), resource="contacts", workspace=ws, auto_map=True)

    assert state.is_failed() and record.status == "failed"
    assert "Nothing was written" not in record.error
    assert f"ferry import rollback {record.run_id}" in record.error
    assert {c["email"] for c in istore.rows(ws)} == {"ada@example.com", "alan@example.com"}  # committed, as the message says
