"""Serialize stage, writer by writer: every format is read back by an independent reader.

These drive ``write_file`` directly with small Arrow batches (no store, no
Prefect run). The batches hold the awkward values: delimiters, quotes and
newlines inside values, nulls next to empty strings, formula-looking text,
control characters and JSON columns. End-to-end runs through the flow live in
test_export_formats.py.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl.worksheet._writer import ALL_TEMP_FILES
from pypdf import PdfReader

from ferry.columns import output_columns
from ferry.errors import SerializationError
from ferry.params import ExportRequest
from ferry.pipe import Pipe, StreamHeader
from tasks.export.extract import arrow_schema
from tasks.export.serialize import (
    PDF_MAX_ROWS,
    WRITERS,
    XLSX_MAX_SHEET_ROWS,
    PdfWriter,
    XlsxWriter,
    serialize,
    write_file,
    xml_element_names,
)
from tasks.export.transform import transform_batch

JSON_META = {"ferry.type": "json"}
SCHEMA = pa.schema(
    [
        pa.field("email", pa.string()),
        pa.field("Full name", pa.string()),
        pa.field("notes", pa.string()),
        pa.field("orders", pa.int64()),
        pa.field("ltv", pa.float64()),
        pa.field("consent", pa.bool_()),
        pa.field("tags", pa.string(), metadata=JSON_META),
    ]
)
ROWS = [
    {
        "email": "ada@example.com",
        "Full name": "Ada Lovelace",
        "notes": 'said "hi", then left;\nnew line|pipe\ttab',
        "orders": 3,
        "ltv": 12.5,
        "consent": True,
        "tags": '["vip", "beta"]',
    },
    {
        "email": "bob@example.com",
        "Full name": "",
        "notes": None,
        "orders": None,
        "ltv": None,
        "consent": False,
        "tags": '{"a": {"b": [1, 2.5, null]}}',
    },
    {
        "email": "cy@example.com",
        "Full name": "Zoë Ünal",
        "notes": "<b>&amp;</b> 'quoted'",
        "orders": 0,
        "ltv": -0.25,
        "consent": None,
        "tags": None,
    },
]
# What a text reader (CSV) sees for each row: booleans as true/false, nulls as "".
CSV_ROWS = [
    ["ada@example.com", "Ada Lovelace", 'said "hi", then left;\nnew line|pipe\ttab', "3", "12.5", "true", '["vip", "beta"]'],
    ["bob@example.com", "", "", "", "", "false", '{"a": {"b": [1, 2.5, null]}}'],
    ["cy@example.com", "Zoë Ünal", "<b>&amp;</b> 'quoted'", "0", "-0.25", "", ""],
]


def batches(rows: list[dict] = ROWS, schema: pa.Schema = SCHEMA, size: int = 2) -> list[pa.RecordBatch]:
    """The rows in several batches, as the spool hands them over."""
    return [pa.RecordBatch.from_pylist(rows[i : i + size], schema=schema) for i in range(0, len(rows), size)]


def request(**params) -> ExportRequest:
    return ExportRequest(workspace="acme", resource="contacts", **params)


def write(tmp_path: Path, rows=ROWS, schema=SCHEMA, name: str | None = None, **params):
    req = request(**params)
    target = tmp_path / (name or f"out.{req.extension()}")
    result = write_file(iter(batches(rows, schema)), schema, req, target)
    assert result.path == target and result.rows == len(rows)
    assert result.bytes == target.stat().st_size
    return target


def test_every_format_of_the_contract_has_a_writer():
    assert sorted(WRITERS) == sorted(["csv", "tsv", "json", "jsonl", "xml", "parquet", "xlsx", "pdf"])


# --- CSV / TSV --------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_round_trips_with_each_delimiter(tmp_path, delimiter):
    path = write(tmp_path, format="csv", delimiter=delimiter)

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    assert rows[0] == SCHEMA.names
    assert rows[1:] == CSV_ROWS


def test_csv_without_header_starts_with_data(tmp_path):
    path = write(tmp_path, format="csv", header=False, delimiter=";")

    rows = list(csv.reader(path.open(newline="", encoding="utf-8"), delimiter=";"))
    assert rows == CSV_ROWS


def test_tsv_is_tab_delimited(tmp_path):
    path = write(tmp_path, format="tsv")

    rows = list(csv.reader(path.open(newline="", encoding="utf-8"), delimiter="\t"))
    assert rows == [SCHEMA.names, *CSV_ROWS]


def test_gzip_csv_is_a_plain_gzip_stream_without_name_or_time(tmp_path):
    path = write(tmp_path, format="csv", gzip=True)

    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # mtime 0
    assert not raw[3] & 0x08  # no FNAME: the file is renamed on delivery anyway
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [SCHEMA.names, *CSV_ROWS]


def test_gzip_spanning_many_compression_blocks_is_byte_stable_and_whole(tmp_path):
    """Blocks are compressed in threads: order and bytes must not depend on their timing."""
    rows = [{**ROWS[i % 3], "email": f"user{i}@example.com", "orders": i} for i in range(60_000)]  # ~7 MB of CSV
    first = write(tmp_path, rows=rows, name="a.csv.gz", format="csv", gzip=True).read_bytes()
    second = write(tmp_path, rows=rows, name="b.csv.gz", format="csv", gzip=True).read_bytes()

    assert first == second
    lines = list(csv.reader(io.StringIO(gzip.decompress(first).decode("utf-8"))))
    assert len(lines) == 1 + len(rows)
    assert [line[0] for line in lines[1:]] == [f"user{i}@example.com" for i in range(60_000)]


def test_gzip_write_that_fails_midway_leaves_no_file_and_no_threads(tmp_path):
    def failing():
        yield from batches()
        raise OSError("spool read failed")

    target = tmp_path / "out.csv.gz"
    before = threading.active_count()
    with pytest.raises(OSError, match="spool read failed"):
        write_file(failing(), SCHEMA, request(format="csv", gzip=True), target)

    assert not target.exists()
    assert threading.active_count() == before


def test_neutralised_formula_cells_survive_csv_intact(tmp_path):
    req = request(format="csv", fields=["email", "notes"])
    columns = output_columns(req)
    raw = pa.RecordBatch.from_pylist(
        [
            {"email": "a@example.com", "notes": '=HYPERLINK("http://x")'},
            {"email": "b@example.com", "notes": "@SUM(A1)"},
            {"email": "c@example.com", "notes": "-1+2"},
            {"email": "d@example.com", "notes": "+49 30 1234"},
        ],
        schema=arrow_schema(columns),
    )
    shaped = transform_batch(raw, req, columns)
    target = tmp_path / "n.csv"
    write_file(iter([shaped]), shaped.schema, req, target)

    rows = list(csv.DictReader(target.open(newline="")))
    assert [r["notes"] for r in rows] == ['\'=HYPERLINK("http://x")', "'@SUM(A1)", "'-1+2", "+49 30 1234"]


# --- JSON / JSONL -----------------------------------------------------------------------

EXPECTED_JSON = [
    {
        "email": "ada@example.com",
        "Full name": "Ada Lovelace",
        "notes": 'said "hi", then left;\nnew line|pipe\ttab',
        "orders": 3,
        "ltv": 12.5,
        "consent": True,
        "tags": ["vip", "beta"],
    },
    {
        "email": "bob@example.com",
        "Full name": "",
        "notes": None,
        "orders": None,
        "ltv": None,
        "consent": False,
        "tags": {"a": {"b": [1, 2.5, None]}},
    },
    {
        "email": "cy@example.com",
        "Full name": "Zoë Ünal",
        "notes": "<b>&amp;</b> 'quoted'",
        "orders": 0,
        "ltv": -0.25,
        "consent": None,
        "tags": None,
    },
]


def test_json_is_one_array_with_json_columns_as_nested_values(tmp_path):
    path = write(tmp_path, format="json")

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == EXPECTED_JSON
    assert list(data[0]) == SCHEMA.names  # column order kept


def test_jsonl_is_one_object_per_line(tmp_path):
    path = write(tmp_path, format="jsonl", gzip=True)

    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert [json.loads(line) for line in lines] == EXPECTED_JSON


@pytest.mark.parametrize(("fmt", "expected"), [("json", []), ("jsonl", None)])
def test_empty_exports_are_valid_json(tmp_path, fmt, expected):
    path = write(tmp_path, rows=[], format=fmt)

    text = path.read_text()
    assert (json.loads(text) if fmt == "json" else (text or None)) == expected


# --- XML -------------------------------------------------------------------------------

NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def xml_records(path: Path) -> list[dict]:
    """Rows as dicts keyed by the original label (``name`` attribute, else the tag); None for xsi:nil."""
    root = ET.parse(path).getroot()
    assert root.tag == "records"
    return [{el.get("name", el.tag): (None if el.get(NIL) == "true" else el.text or "") for el in record} for record in root]


def test_xml_round_trips_labels_nulls_and_escaped_text(tmp_path):
    path = write(tmp_path, format="xml")

    records = xml_records(path)
    assert [list(r) for r in records] == [SCHEMA.names] * 3
    ada, bob, cy = records
    assert ada["notes"] == 'said "hi", then left;\nnew line|pipe\ttab'
    assert ada["orders"] == "3" and ada["ltv"] == "12.5" and ada["consent"] == "true"
    assert json.loads(ada["tags"]) == ["vip", "beta"]  # JSON columns embedded as JSON text
    assert bob["Full name"] == "" and bob["notes"] is None and bob["orders"] is None  # empty string != null
    assert cy["notes"] == "<b>&amp;</b> 'quoted'" and cy["Full name"] == "Zoë Ünal" and cy["tags"] is None
    root = ET.parse(path).getroot()
    assert root[0][1].tag == "Full_name" and root[0][1].get("name") == "Full name"
    assert root[0][0].get("name") is None  # a label that is a valid name needs no attribute


def test_xml_keeps_carriage_returns_and_replaces_characters_xml_cannot_hold(tmp_path):
    schema = pa.schema([pa.field("text", pa.string())])
    path = write(tmp_path, rows=[{"text": "a\r\nb\rc"}, {"text": "bell\x07 nul\x00 ok\ttab"}], schema=schema, format="xml")

    assert [r["text"] for r in xml_records(path)] == ["a\r\nb\rc", "bell\ufffd nul\ufffd ok\ttab"]


def test_xml_element_names_are_valid_unique_and_deterministic():
    labels = [
        "email",
        "phone.mobile",
        "Full name",
        "Full-name",
        "Full  name",
        "2nd",
        "xmlish",
        "",
        "E-mail (work)",
        "Téléphone",
        "<b>",
        "a:b",
    ]
    names = xml_element_names(labels)

    assert names == xml_element_names(labels)
    assert names[:2] == ["email", "phone.mobile"]
    assert names[2:5] == ["Full_name", "Full-name", "Full_name_2"]
    assert names[5:7] == ["_2nd", "_xmlish"]
    assert len(set(names)) == len(names)
    for name in names:  # every one parses as an element name, with no namespace prefix
        assert ET.fromstring(f"<{name}/>").tag == name and ":" not in name


def test_xml_with_many_rows_streams_in_slices(tmp_path, monkeypatch):
    from tasks.export.serialize import XmlWriter

    monkeypatch.setattr(XmlWriter, "slice_rows", 7)
    schema = pa.schema([pa.field("n", pa.int64())])
    rows = [{"n": i} for i in range(50)]
    req = request(format="xml")
    target = tmp_path / "many.xml"
    write_file(iter(batches(rows, schema, size=23)), schema, req, target)

    assert [r["n"] for r in xml_records(target)] == [str(i) for i in range(50)]


# --- Parquet -----------------------------------------------------------------------------


def test_parquet_keeps_native_types_and_json_metadata(tmp_path):
    schema = SCHEMA.append(pa.field("created_at", pa.timestamp("us", tz="UTC"))).append(pa.field("birthday", pa.date32()))
    stamps = [datetime(2024, 5, 4, 13, 5, 6, 789000, tzinfo=UTC), None, datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    days = [date(1990, 1, 2), date(2000, 2, 29), None]
    rows = [{**row, "created_at": s, "birthday": d} for row, s, d in zip(ROWS, stamps, days, strict=True)]
    path = write(tmp_path, rows=rows, schema=schema, format="parquet")

    table = pq.read_table(path)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("birthday").type == pa.date32()
    assert table.schema.field("orders").type == pa.int64() and table.schema.field("consent").type == pa.bool_()
    assert table.schema.field("tags").metadata == {b"ferry.type": b"json"}
    assert table.to_pylist() == rows


# --- XLSX --------------------------------------------------------------------------------


def sheet_rows(ws) -> list[list]:
    return [[cell.value for cell in row] for row in ws.iter_rows()]


def test_xlsx_has_a_header_and_native_values(tmp_path):
    path = write(tmp_path, format="xlsx")

    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["contacts"]
    ws = wb["contacts"]
    assert ws.freeze_panes == "A2"
    rows = sheet_rows(ws)
    assert rows[0] == SCHEMA.names
    assert rows[1] == ["ada@example.com", "Ada Lovelace", 'said "hi", then left;\nnew line|pipe\ttab', 3, 12.5, True, '["vip", "beta"]']
    assert rows[2][3:6] == [None, None, False]
    assert rows[3] == ["cy@example.com", "Zoë Ünal", "<b>&amp;</b> 'quoted'", 0, -0.25, None, None]
    assert [c.data_type for c in ws[2]][3:6] == ["n", "n", "b"]


FORMULA_LIKE = ["'=1+1", "=1+1", '=HYPERLINK("http://evil","x")', "#N/A", "#DIV/0!", "=", "@SUM(A1)", "+1+2"]


@pytest.mark.parametrize("neutralize", [True, False])
def test_xlsx_stores_formula_looking_text_as_text_never_as_a_formula(tmp_path, neutralize):
    req = request(format="xlsx", fields=["email", "notes"], neutralize_formulas=neutralize)
    columns = output_columns(req)
    raw = pa.RecordBatch.from_pylist(
        [{"email": f"u{i}@example.com", "notes": v} for i, v in enumerate(FORMULA_LIKE)], schema=arrow_schema(columns)
    )
    shaped = transform_batch(raw, req, columns)
    target = tmp_path / "f.xlsx"
    write_file(iter([shaped]), shaped.schema, req, target)

    ws = openpyxl.load_workbook(target)["contacts"]
    cells = [row[1] for row in ws.iter_rows(min_row=2)]
    assert all(c.data_type == "s" for c in cells), [(c.value, c.data_type) for c in cells]
    expected = shaped.column(1).to_pylist()
    assert [c.value for c in cells] == expected
    if neutralize:
        assert expected[:3] == ["'=1+1", "'=1+1", '\'=HYPERLINK("http://evil","x")']
    else:
        assert expected == FORMULA_LIKE
    with zipfile.ZipFile(target) as z:  # no formula element anywhere in the sheet
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml") and b"<f " not in z.read("xl/worksheets/sheet1.xml")


def test_xlsx_rolls_over_to_a_new_sheet_with_its_own_header(tmp_path, monkeypatch):
    assert XlsxWriter.sheet_rows == XLSX_MAX_SHEET_ROWS - 1 == 1_048_575
    monkeypatch.setattr(XlsxWriter, "sheet_rows", 3)
    schema = pa.schema([pa.field("n", pa.int64())])
    path = write(tmp_path, rows=[{"n": i} for i in range(7)], schema=schema, format="xlsx")

    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["contacts", "contacts (2)", "contacts (3)"]
    assert [sheet_rows(ws) for ws in wb] == [[["n"], [0], [1], [2]], [["n"], [3], [4], [5]], [["n"], [6]]]


def test_xlsx_replaces_control_characters_excel_cannot_store(tmp_path):
    schema = pa.schema([pa.field("t", pa.string())])
    path = write(tmp_path, rows=[{"t": "a\x00b\x1fc\td\ne"}], schema=schema, format="xlsx")

    assert sheet_rows(openpyxl.load_workbook(path).active)[1] == ["a\ufffdb\ufffdc\td\ne"]


def test_xlsx_refuses_a_value_longer_than_a_cell_and_leaves_no_file(tmp_path):
    schema = pa.schema([pa.field("notes", pa.string())])
    req = request(format="xlsx")
    target = tmp_path / "long.xlsx"
    rows = [{"notes": "ok"}, {"notes": "secret " * 5000}]
    with pytest.raises(SerializationError) as caught:
        write_file(iter(batches(rows, schema, size=1)), schema, req, target)

    assert "'notes'" in caught.value.message and "data row 2" in caught.value.message and "32,767" in caught.value.message
    assert "secret" not in str(caught.value)  # no customer data in errors
    assert not target.exists()
    assert ALL_TEMP_FILES == []  # openpyxl's spooled sheets are gone too


def test_xlsx_writes_through_gzip(tmp_path):
    path = write(tmp_path, format="xlsx", gzip=True)

    workbook = openpyxl.load_workbook(io.BytesIO(gzip.decompress(path.read_bytes())))
    assert sheet_rows(workbook.active)[1][0] == "ada@example.com"


# --- PDF ---------------------------------------------------------------------------------


def pdf_pages(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def test_pdf_has_title_description_and_a_paginated_table_with_repeated_header(tmp_path):
    schema = pa.schema([pa.field("email", pa.string()), pa.field("Orders", pa.int64()), pa.field("notes", pa.string())])
    rows = [{"email": f"user{i:03}@example.com", "Orders": i, "notes": "x" if i % 2 else None} for i in range(150)]
    path = write(tmp_path, rows=rows, schema=schema, format="pdf", title="Q3 customers", description="All contacts who bought in Q3.")

    pages = pdf_pages(path)
    assert len(pages) >= 2
    assert "Q3 customers" in pages[0] and "All contacts who bought in Q3." in pages[0]
    for number, text in enumerate(pages, 1):
        assert "email" in text and "Orders" in text and "notes" in text  # header on every page
        assert f"Page {number}" in text
    everything = "\n".join(pages)
    assert all(f"user{i:03}@example.com" in everything for i in range(150))
    assert "user149@example.com" in pages[-1] and "user149@example.com" not in pages[0]
    assert PdfReader(path).metadata.title == "Q3 customers"


def test_pdf_default_title_names_resource_and_workspace(tmp_path):
    path = write(tmp_path, format="pdf")

    first = pdf_pages(path)[0]
    assert "Contacts — acme" in first and "ada@example.com" in first and "Zoë Ünal" in first


def test_pdf_cuts_long_values_with_an_ellipsis(tmp_path):
    schema = pa.schema([pa.field("a", pa.string()), pa.field("b", pa.string())])
    long = "word " * 400
    path = write(tmp_path, rows=[{"a": long, "b": "short"}], schema=schema, format="pdf")

    text = pdf_pages(path)[0]
    assert "…" in text and "short" in text and text.count("word") < 400


def test_pdf_refuses_more_rows_than_the_cap_before_writing_them(tmp_path, monkeypatch):
    assert PdfWriter.max_rows == PDF_MAX_ROWS == 50_000
    monkeypatch.setattr(PdfWriter, "max_rows", 10)
    schema = pa.schema([pa.field("email", pa.string())])
    rows = [{"email": f"person{i}@example.com"} for i in range(16)]
    req = request(format="pdf")
    drawn: list[int] = []
    real_write = PdfWriter.write
    monkeypatch.setattr(PdfWriter, "write", lambda self, batch: (drawn.append(batch.num_rows), real_write(self, batch)))
    target = tmp_path / "big.pdf"

    with pytest.raises(SerializationError) as caught:
        write_file(iter(batches(rows, schema, size=8)), schema, req, target)
    assert "more than 10 rows" in caught.value.message and "csv" in caught.value.hint
    assert "person" not in str(caught.value)
    assert not target.exists()

    # With the total known (as the serialize task knows it), nothing is opened at all.
    drawn.clear()
    with pytest.raises(SerializationError) as caught:
        write_file(iter(batches(rows, schema, size=8)), schema, req, target, total_rows=16)
    assert "has 16 rows" in caught.value.message and "limit=10" in caught.value.hint
    assert drawn == [] and not target.exists()


def test_pdf_of_no_rows_says_so(tmp_path):
    path = write(tmp_path, rows=[], format="pdf")

    assert "No rows." in pdf_pages(path)[0]


# --- the task and determinism ---------------------------------------------------------


def test_serialize_task_writes_the_piped_rows_into_the_run_folder_and_counts_them(tmp_path):
    pipe = Pipe(capacity=None)
    with pipe.writing("test"):
        pipe.open(StreamHeader(SCHEMA, [], 3))
        for batch in batches():
            pipe.put(batch)
    result = serialize.fn(pipe, request(format="jsonl", gzip=True), tmp_path / "run")

    assert result.path == tmp_path / "run" / "export.jsonl.gz" and result.rows == 3
    assert len(gzip.decompress(result.path.read_bytes()).splitlines()) == 3


def test_same_rows_give_the_same_bytes_in_every_format(tmp_path):
    cases = [
        dict(format="csv", gzip=True),
        dict(format="jsonl"),
        dict(format="parquet"),
        dict(format="json"),
        dict(format="xml", gzip=True),
        dict(format="xlsx"),
        dict(format="pdf", title="T", description="D"),
    ]
    first = {i: write(tmp_path, name=f"a{i}", **case).read_bytes() for i, case in enumerate(cases)}
    time.sleep(2.1)  # a clock anywhere in a file (ZIP has 2-second resolution) would now differ
    for i, case in enumerate(cases):
        assert write(tmp_path, name=f"b{i}", **case).read_bytes() == first[i], case
