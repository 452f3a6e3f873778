"""The export flow end to end, on SQLite and PostgreSQL, through a real Prefect server.

Filters are proven stage-level in test_extract.py; these runs prove what only a
flow run shows: the record, the file, artifacts, the audit log, and that a
failing run leaves nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.params import ExportRequest
from ferry.runs import run_result
from ferry.settings import get_settings
from flows.export import export_data


def run(tmp_path: Path, **params):
    params.setdefault("destination", str(tmp_path))
    request = ExportRequest(workspace=params.pop("workspace", "acme"), **params)
    state = export_data(request, return_state=True)
    return state, run_result(state)


def audit_rows(store, run_id: str) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, actor, resource, details, payload_bytes FROM audit_log WHERE run_id = :r"), {"r": run_id})
        return [dict(r._mapping) for r in rows]


def details(row: dict) -> dict:
    return json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def seed(store, workspace: str = "acme", **counts):
    from ferry.store.seed import SeedCounts, seed_workspace

    seed_workspace(store.engine, workspace, SeedCounts(**{"contacts": 20, "events": 20, "products": 2, **counts}), seed=5)


def assert_nothing_left(state, record, folder: Path) -> None:
    assert state.is_failed()
    assert record.status == "failed" and record.error and record.completed_at is not None
    assert record.destination_path is None and record.sha256 is None
    assert not (get_settings().spool_dir / record.run_id).exists()


# --- success ---------------------------------------------------------------------------


def test_contacts_csv_record_matches_file_and_the_store(store, tmp_path):
    state, record = run(tmp_path, resource="contacts", fields=["email", "first_name", "company"], segment="customers", lists=["vip"])

    assert state.is_completed(), state.message
    path = Path(record.destination_path)
    assert path.parent == tmp_path.resolve() and files_in(tmp_path) == [path.name]
    assert record.status == "success" and record.error is None
    assert record.file_size == path.stat().st_size
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.started_at <= record.completed_at
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0]) == ["email", "first_name", "company", "list.vip"]
    with store.engine.connect() as conn:
        expected = dict(
            conn.execute(
                text(
                    "SELECT c.email, c.first_name FROM contacts c JOIN workspaces w ON w.id = c.workspace_id "
                    "WHERE w.slug = 'acme' AND c.lifecycle_stage = 'customer'"
                )
            ).all()
        )
    assert record.record_count == len(rows) == len(expected)
    assert {r["email"]: r["first_name"] for r in rows} == expected  # every customer of acme, nothing of globex
    assert {r["list.vip"] for r in rows} == {"0", "1"}


def test_a_successful_run_leaves_summary_preview_progress_and_an_audit_entry(store, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state, record = run(
        tmp_path,
        resource="events",
        fields=["external_id", "type", "occurred_at"],
        activity_types=["purchase"],
        actor="analyst@acme",
        date_format="LL",
        **{"from": "2026-10-01", "to": "2026-10-31"},
    )
    assert state.is_completed(), state.message

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {"export-summary", "export-preview", "export-progress"} <= set(by_key)

    summary = by_key["export-summary"]
    assert summary.type == "markdown"
    assert (
        f"| Rows | {record.record_count:,} |" in summary.data and record.sha256 in summary.data and record.destination_path in summary.data
    )

    preview = by_key["export-preview"]
    assert preview.type == "table"
    table = json.loads(preview.data) if isinstance(preview.data, str) else preview.data
    with open(record.destination_path, newline="") as fh:
        first = list(csv.DictReader(fh))[:10]
    assert table == first and len(first) == 10

    progress = by_key["export-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0

    (entry,) = audit_rows(store, record.run_id)
    assert (entry["action"], entry["actor"], entry["resource"], entry["payload_bytes"]) == (
        "export.success",
        "analyst@acme",
        "events",
        record.file_size,
    )
    assert details(entry)["activity_types"] == ["purchase"] and details(entry)["from"] == "2026-10-01"


def test_an_empty_result_is_a_file_with_a_header_only(store, tmp_path):
    state, record = run(
        tmp_path, resource="contacts", fields=["email", "created_at"], filters=[{"field": "email", "op": "eq", "value": "nobody@nowhere"}]
    )

    assert state.is_completed(), state.message
    assert record.record_count == 0
    assert list(csv.reader(open(record.destination_path, newline=""))) == [["email", "created_at"]]


def test_spreadsheet_formulas_in_the_store_arrive_neutralised(empty_store, tmp_path):
    seed(empty_store)
    with empty_store.engine.begin() as conn:
        conn.execute(
            text("UPDATE contacts SET notes = :n, job_title = :t WHERE id = (SELECT min(id) FROM contacts)"),
            {"n": '=HYPERLINK("http://evil.test","x")', "t": "Lead\n+cmd|' /C calc'!A0"},
        )

    state, record = run(tmp_path, resource="contacts", fields=["email", "notes", "job_title", "phone.mobile"], limit=1)
    assert state.is_completed(), state.message
    (row,) = list(csv.DictReader(open(record.destination_path, newline="")))
    assert row["notes"] == '\'=HYPERLINK("http://evil.test","x")'
    assert row["job_title"] == "'Lead\n+cmd|' /C calc'!A0"
    assert row["phone.mobile"].startswith("+1555")  # a phone number stays a phone number

    state, record = run(tmp_path / "raw", resource="contacts", fields=["notes"], limit=1, neutralize_formulas=False)
    (row,) = list(csv.DictReader(open(record.destination_path, newline="")))
    assert row["notes"] == '=HYPERLINK("http://evil.test","x")'


def test_a_workspace_named_like_a_path_stays_in_its_folder(empty_store, tmp_path):
    seed(empty_store, workspace="../../etc")
    dest = tmp_path / "exports"

    state, record = run(
        dest, workspace="../../etc", resource="contacts", fields=["email"], filename="{workspace}/{resource}-{workspace}.{format}"
    )

    assert state.is_completed(), state.message
    (name,) = files_in(tmp_path)
    folder = name.split("/")[1]
    assert folder.startswith("etc-") and name == f"exports/{folder}/contacts-{folder}.csv"  # not the folder of a workspace "etc"
    assert Path(record.destination_path) == (tmp_path / name).resolve()
    assert record.record_count == 20


# --- failure ------------------------------------------------------------------------------


def test_invalid_parameters_fail_the_run_listing_every_problem(store, tmp_path):
    state, record = run(tmp_path, resource="events", fields=["nope"], filename="{oops}.csv", date_format="YYYY")

    assert_nothing_left(state, record, tmp_path)
    for expected in ("fields[0]='nope'", "unknown placeholder {oops}", "date_format='YYYY'"):
        assert expected in record.error
    assert files_in(tmp_path) == []
    (entry,) = audit_rows(store, record.run_id)
    assert entry["action"] == "export.failed" and entry["payload_bytes"] == 0


def test_a_failed_run_raises_its_error_with_the_record_as_a_deployment_run_does(store, tmp_path):
    """Prefect's engine raises a failed run's data (in a deployment run too): it must be an exception, with the record inside."""
    from ferry.errors import RunFailedError

    request = ExportRequest(workspace="acme", resource="events", fields=["nope"], destination=str(tmp_path))
    with pytest.raises(RunFailedError) as failed:
        export_data(request)  # not TypeError("Unexpected result for failed state: ExportRecord(...)")
    assert failed.value.record.status == "failed" and "fields[0]='nope'" in failed.value.record.error
    assert str(failed.value) == failed.value.record.error


def test_rows_breaking_the_catalog_fail_in_validate_and_leave_no_file(empty_store, tmp_path):
    seed(empty_store)
    with empty_store.engine.begin() as conn:
        conn.execute(
            text("UPDATE contacts SET email = 'not-an-email', lifecycle_stage = 'bogus' WHERE id = (SELECT min(id) FROM contacts)")
        )
        conn.execute(text("UPDATE contacts SET lifecycle_stage = 'vip' WHERE id = (SELECT max(id) FROM contacts)"))

    state, record = run(tmp_path, resource="contacts")

    assert_nothing_left(state, record, tmp_path)
    assert "email: 1 row(s) fail 'email'" in record.error and "lifecycle_stage: 2 row(s) fail 'enum'" in record.error
    assert "not-an-email" not in record.error and "bogus" not in record.error  # counts, never customer data
    assert files_in(tmp_path) == []
    (entry,) = audit_rows(empty_store, record.run_id)
    assert entry["action"] == "export.failed"

    state, record = run(tmp_path, resource="contacts", on_invalid="warn")
    assert state.is_completed(), state.message
    assert record.record_count == 20
    assert {"column": "lifecycle_stage", "check": "enum", "rows": 2} in record.validation_failures


def test_an_unwritable_destination_fails_in_deliver_and_leaves_no_partial_file(empty_store, tmp_path):
    seed(empty_store)
    (tmp_path / "taken.csv").mkdir()  # the final path cannot become a file

    state, record = run(tmp_path, resource="contacts", filename="taken.{format}")

    assert_nothing_left(state, record, tmp_path)
    assert "taken.csv" in record.error
    assert list(tmp_path.iterdir()) == [tmp_path / "taken.csv"] and files_in(tmp_path) == []
    (entry,) = audit_rows(empty_store, record.run_id)
    assert entry["action"] == "export.failed"

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    state, record = run(blocker / "sub", resource="contacts")
    assert_nothing_left(state, record, tmp_path)
    assert "Cannot create folder" in record.error


def test_a_failure_in_the_last_stage_is_the_runs_error_not_the_stages_it_stopped(empty_store, tmp_path, monkeypatch):
    """The stages run at the same time: serialize refusing the rows stops extract mid-stream; the record names serialize's reason."""
    from tasks.export.serialize import PdfWriter

    seed(empty_store)
    monkeypatch.setattr(PdfWriter, "max_rows", 5)

    state, record = run(tmp_path, resource="contacts", format="pdf")

    assert_nothing_left(state, record, tmp_path)
    assert "20 rows" in record.error and "Stopped because another stage" not in record.error
    assert files_in(tmp_path) == []


def test_an_unexpected_error_still_fails_with_a_record_and_an_audit_entry(empty_store, tmp_path):
    seed(empty_store)
    with empty_store.engine.begin() as conn:
        conn.execute(text("DROP TABLE localized_values"))  # a store broken under Ferry's feet

    state, record = run(tmp_path, resource="products", dimension_scope={"language": "de"})

    assert_nothing_left(state, record, tmp_path)
    assert "The export failed with an unexpected" in record.error and "localized_values" not in record.error  # no SQL in the record
    assert files_in(tmp_path) == []
    (entry,) = audit_rows(empty_store, record.run_id)
    assert entry["action"] == "export.failed"


@pytest.mark.parametrize("workspace", ["nope"])
def test_an_unknown_workspace_fails_without_an_audit_entry_to_attribute(store, tmp_path, workspace):
    state, record = run(tmp_path, workspace=workspace, resource="contacts")

    assert_nothing_left(state, record, tmp_path)
    assert "Workspace 'nope' does not exist" in record.error
    assert audit_rows(store, record.run_id) == []


def _artifacts(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


@pytest.mark.parametrize("rows", [3, 0])
def test_the_preview_artifact_copies_ferry_preview_rows_rows_and_0_turns_it_off(store, tmp_path, monkeypatch, rows):
    """Issue 15: the first-rows artifact puts customer rows into Prefect's database; FERRY_PREVIEW_ROWS says how many."""
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_PREVIEW_ROWS", str(rows))
    reload_settings()
    try:
        state, record = run(tmp_path, resource="contacts", fields=["email"])
    finally:
        monkeypatch.delenv("FERRY_PREVIEW_ROWS")
        reload_settings()
    assert state.is_completed(), state.message
    assert record.record_count > 3

    by_key = _artifacts(state.state_details.flow_run_id)
    assert "export-summary" in by_key
    if rows == 0:
        assert "export-preview" not in by_key
    else:
        table = by_key["export-preview"].data
        table = json.loads(table) if isinstance(table, str) else table
        assert len(table) == rows and set(table[0]) == {"email"}


def test_a_file_name_that_exists_is_refused_unless_overwrite_is_asked(store, tmp_path):
    """Issue 15: a template without {run_id} overwrote the previous file without a word."""
    first_state, first = run(tmp_path, resource="contacts", fields=["email"], filename="contacts.{format}")
    assert first_state.is_completed(), first_state.message
    before = (tmp_path / "contacts.csv").read_bytes()

    second_state, second = run(tmp_path, resource="contacts", fields=["email", "first_name"], filename="contacts.{format}")
    assert second_state.is_failed()
    assert "already holds a file named 'contacts.csv'" in second.error and "--overwrite" in second.error
    assert (tmp_path / "contacts.csv").read_bytes() == before
    assert files_in(tmp_path) == ["contacts.csv"]

    third_state, third = run(tmp_path, resource="contacts", fields=["email", "first_name"], filename="contacts.{format}", overwrite=True)
    assert third_state.is_completed(), third_state.message
    assert (tmp_path / "contacts.csv").read_bytes() != before and third.sha256 != first.sha256
