"""The export flow end to end, on SQLite and PostgreSQL, through a real Prefect server."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from ferry.params import ExportRequest
from flows.export import export_data


def run(tmp_path: Path, **params):
    request = ExportRequest(workspace=params.pop("workspace", "acme"), destination=str(tmp_path), **params)
    state = export_data(request, return_state=True)
    return state, state.result(raise_on_failure=False)


def test_contacts_csv_record_matches_file(store, tmp_path):
    state, record = run(tmp_path, resource="contacts", fields=["email", "first_name", "company"], limit=50)

    assert state.is_completed(), state.message
    path = Path(record.destination_path)
    assert path.parent == tmp_path
    assert record.status == "success" and record.record_count == 50
    assert record.file_size == path.stat().st_size
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0]) == ["email", "first_name", "company"]
    assert len(rows) == 50 and all("@" in r["email"] for r in rows)


def test_invalid_parameters_fail_the_run_listing_every_problem(store, tmp_path):
    state, record = run(tmp_path, resource="events", fields=["nope"], filename="{oops}.csv", date_format="YYYY")

    assert state.is_failed()
    assert record.status == "failed"
    for expected in ("fields[0]='nope'", "unknown placeholder {oops}", "date_format='YYYY'"):
        assert expected in record.error
    assert list(tmp_path.iterdir()) == []
