"""Every export format end to end: the export_data flow on a seeded store, the file read back
by an independent reader and compared with the rows in the store.

Each flow run costs about a second, so each format runs once (the backends
alternate; the serialize stage sees the same Arrow schema from both). Writer
details (delimiters, escaping, nulls, formula cells, the PDF cap's message)
are covered quickly in test_serialize.py.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from ferry.params import ExportRequest
from ferry.runs import run_result
from ferry.store import schema as s
from flows.export import export_data

FIELDS = ["email", "first_name", "orders_count", "email_consent", "tags", "lifetime_value", "created_at"]
LIMIT = 20


def run(tmp_path: Path, **params):
    request = ExportRequest(workspace="acme", resource="contacts", destination=str(tmp_path), **params)
    state = export_data(request, return_state=True)
    return state, run_result(state)


def exported(tmp_path: Path, **params) -> Path:
    params = {"fields": FIELDS, "sort": "email", "limit": LIMIT, **params}
    state, record = run(tmp_path, **params)
    assert state.is_completed(), state.message
    path = Path(record.destination_path)
    assert record.record_count == LIMIT and record.file_size == path.stat().st_size
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    return path


def truth(store) -> list[dict]:
    """The first rows of acme's contacts by e-mail, straight from the store."""
    c = s.contacts
    query = (
        sa.select(c.c.email, c.c.first_name, c.c.orders_count, c.c.email_consent, c.c.tags, c.c.lifetime_value, c.c.created_at)
        .join(s.workspaces, s.workspaces.c.id == c.c.workspace_id)
        .where(s.workspaces.c.slug == "acme")
        .order_by(c.c.email)
        .limit(LIMIT)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["tags"] = json.loads(row["tags"]) if isinstance(row["tags"], str) else row["tags"]
        row["created_at"] = row["created_at"].replace(tzinfo=UTC) if row["created_at"].tzinfo is None else row["created_at"]
    assert len(rows) == LIMIT and any(r["tags"] for r in rows) and any(r["orders_count"] for r in rows)
    return rows


def iso(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def text(value) -> str:
    """How a text format writes a value (CSV, XML)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def backend(name: str):
    return pytest.mark.parametrize("seeded_store", [name], indirect=True)


@backend("postgresql")
def test_csv_gz_with_semicolons(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="csv", delimiter=";", gzip=True)

    assert path.name.endswith(".csv.gz")
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=";"))
    assert rows[0] == FIELDS
    assert [r[0] for r in rows[1:]] == [e["email"] for e in expected]
    assert [r[2] for r in rows[1:]] == [text(e["orders_count"]) for e in expected]
    assert [r[3] for r in rows[1:]] == [text(e["email_consent"]) for e in expected]
    assert [json.loads(r[4]) if r[4] else None for r in rows[1:]] == [e["tags"] for e in expected]
    assert [r[6] for r in rows[1:]] == [iso(e["created_at"]) for e in expected]


@backend("sqlite")
def test_tsv_without_header(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="tsv", header=False)

    rows = list(csv.reader(path.open(newline="", encoding="utf-8"), delimiter="\t"))
    assert [r[0] for r in rows] == [e["email"] for e in expected]
    assert [r[1] for r in rows] == [text(e["first_name"]) for e in expected]


@backend("postgresql")
def test_json_array_embeds_json_columns(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="json", labels={"email": "E-mail address"})

    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data[0]) == ["E-mail address", *FIELDS[1:]]
    assert [d["E-mail address"] for d in data] == [e["email"] for e in expected]
    assert [d["tags"] for d in data] == [e["tags"] for e in expected]  # nested, not strings
    assert [d["orders_count"] for d in data] == [e["orders_count"] for e in expected]
    assert [d["email_consent"] for d in data] == [e["email_consent"] for e in expected]
    assert [d["lifetime_value"] for d in data] == pytest.approx([e["lifetime_value"] for e in expected])


@backend("sqlite")
def test_jsonl_embeds_json_columns(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="jsonl")

    data = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [d["email"] for d in data] == [e["email"] for e in expected]
    assert [d["tags"] for d in data] == [e["tags"] for e in expected]
    assert [d["created_at"] for d in data] == [iso(e["created_at"]) for e in expected]


@backend("postgresql")
def test_xml_with_a_label_that_is_not_an_element_name(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="xml", labels={"first_name": "First name"})

    records = ET.parse(path).getroot()
    assert len(records) == LIMIT
    first = records[0]
    assert [el.get("name", el.tag) for el in first] == ["email", "First name", *FIELDS[2:]]
    assert [r.find("email").text for r in records] == [e["email"] for e in expected]
    assert [(r.find("First_name").text or "") for r in records] == [text(e["first_name"]) for e in expected]
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    assert [None if r.find("tags").get(nil) else json.loads(r.find("tags").text) for r in records] == [e["tags"] for e in expected]


@backend("sqlite")
def test_parquet_keeps_native_types(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="parquet")

    table = pq.read_table(path)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("orders_count").type == pa.int64()
    assert table.schema.field("email_consent").type == pa.bool_()
    rows = table.to_pylist()
    assert [r["email"] for r in rows] == [e["email"] for e in expected]
    assert [r["created_at"] for r in rows] == [e["created_at"] for e in expected]
    assert [r["email_consent"] for r in rows] == [e["email_consent"] for e in expected]


@backend("postgresql")
def test_xlsx_native_cells(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="xlsx")

    ws = openpyxl.load_workbook(path)["contacts"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows[0] == FIELDS
    assert [r[0] for r in rows[1:]] == [e["email"] for e in expected]
    assert [r[2] for r in rows[1:]] == [e["orders_count"] for e in expected]
    assert [r[3] for r in rows[1:]] == [e["email_consent"] for e in expected]
    assert [json.loads(r[4]) if r[4] else None for r in rows[1:]] == [e["tags"] for e in expected]


@backend("sqlite")
def test_pdf_with_title_and_description(store, tmp_path):
    expected = truth(store)
    path = exported(tmp_path, format="pdf", title="Acme contacts", description="The first twenty, by e-mail.")

    pages = [p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages]
    assert "Acme contacts" in pages[0] and "The first twenty, by e-mail." in pages[0]
    assert expected[0]["email"] in pages[0]
    assert all(e["email"] in "\n".join(pages) for e in expected)


@backend("sqlite")
def test_pdf_over_the_cap_fails_the_run_with_an_actionable_error(store, tmp_path, monkeypatch):
    from tasks.export.serialize import PdfWriter

    monkeypatch.setattr(PdfWriter, "max_rows", 10)
    state, record = run(tmp_path, format="pdf", fields=["email"], limit=11)

    assert state.is_failed() and record.status == "failed"
    assert "11 rows" in record.error and "at most 10 rows" in record.error and "csv" in record.error
    assert list(tmp_path.iterdir()) == []


@backend("postgresql")
@pytest.mark.parametrize("params", [dict(format="csv", gzip=True), dict(format="parquet")], ids=["csv.gz", "parquet"])
def test_two_exports_of_the_same_rows_are_byte_identical(store, tmp_path, params):
    first = exported(tmp_path / "a", **params)
    second = exported(tmp_path / "b", **params)

    assert first.name != second.name  # different runs, different file names...
    assert first.read_bytes() == second.read_bytes()  # ...same bytes
