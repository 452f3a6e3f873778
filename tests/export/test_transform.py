"""Transform: date formats, spreadsheet formula neutralisation and custom labels (pure, per batch)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from ferry.columns import output_columns
from ferry.params import parse_request
from tasks.export.extract import arrow_schema
from tasks.export.transform import format_temporal, neutralize_formulas, transform_batch

BIRTHDAY = datetime(1986, 9, 4, 20, 30, 5, 123456, tzinfo=UTC)  # sub-second, as PostgreSQL's now() stores


def ts(*values: datetime | None) -> pa.Array:
    return pa.array(list(values), pa.timestamp("us", tz="UTC"))


@pytest.mark.parametrize(
    ("fmt", "expected_datetime", "expected_date"),
    [
        ("iso", "1986-09-04T20:30:05Z", "1986-09-04"),
        ("L", "09/04/1986", "09/04/1986"),
        ("LL", "September 4, 1986", "September 4, 1986"),
        ("LLL", "September 4, 1986 8:30 PM", "September 4, 1986"),
        ("%d.%m.%Y %H:%M", "04.09.1986 20:30", "04.09.1986 00:00"),
        ("%Y%m%d", "19860904", "19860904"),
    ],
)
def test_date_formats_follow_moment_and_strftime(fmt, expected_datetime, expected_date):
    assert format_temporal(ts(BIRTHDAY), fmt).to_pylist() == [expected_datetime]
    assert format_temporal(pa.array([date(1986, 9, 4)], pa.date32()), fmt).to_pylist() == [expected_date]


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (datetime(2026, 12, 10, 0, 5, tzinfo=UTC), "LLL", "December 10, 2026 12:05 AM"),
        (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "LLL", "January 1, 2026 12:00 PM"),
        (datetime(2026, 5, 4, 9, 7, tzinfo=UTC), "LL", "May 4, 2026"),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "iso", "1969-12-31T23:59:59Z"),  # truncated, not rounded up
    ],
)
def test_moment_edge_cases(value, fmt, expected):
    assert format_temporal(ts(value), fmt).to_pylist() == [expected]


def test_nulls_stay_null():
    assert format_temporal(ts(None, BIRTHDAY), "LL").to_pylist() == [None, "September 4, 1986"]
    assert neutralize_formulas(pa.array([None, "=1"])).to_pylist() == [None, "'=1"]


DANGEROUS = [
    "=1+1",
    "+cmd",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "\t=1",
    "\rx",
    "\nx",
    " =1+1",
    "  @x",
    "\t \t+x",
    'Hello\n=HYPERLINK("http://evil")',
    "fine\r\n+1+1",
    "line\n  -cmd",
    "=",
    "-",
    "+1555\n=x",
    "+12abc",
]
HARMLESS = [
    "hello",
    "1+1",
    "a=b",
    "user@example.com",
    "-12.5",
    "+1 (555) 010-1234",
    "+15551234567",
    "-1",
    "2026-01-01",
    "",
    "O'Brien",
    "100%",
    "x\ny",
]


@pytest.mark.parametrize("value", DANGEROUS)
def test_formula_triggers_are_prefixed_with_a_quote(value):
    assert neutralize_formulas(pa.array([value])).to_pylist() == ["'" + value]


@pytest.mark.parametrize("value", HARMLESS)
def test_plain_text_numbers_and_phone_numbers_are_left_alone(value):
    assert neutralize_formulas(pa.array([value])).to_pylist() == [value]


def batch_for(request_params: dict, data: dict[str, list]) -> tuple:
    request = parse_request({"workspace": "acme", **request_params})
    columns = output_columns(request)
    schema = arrow_schema(columns)
    batch = pa.RecordBatch.from_pydict(data, schema=schema)
    return request, columns, batch


CONTACT_ROWS = {
    "email": ["=cmd@x.test", "ok@x.test"],
    "notes": ["@SUM(1)", "fine"],
    "phone.mobile": ["+15550100", "-cmd"],
    "orders_count": [-5, 3],
    "created_at": [BIRTHDAY, None],
}
CONTACT_FIELDS = ["email", "notes", "phone.mobile", "orders_count", "created_at"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx"])
def test_spreadsheet_formats_neutralise_formulas(fmt):
    request, columns, batch = batch_for({"resource": "contacts", "format": fmt, "fields": CONTACT_FIELDS}, CONTACT_ROWS)

    out = transform_batch(batch, request, columns).to_pydict()
    assert out["email"] == ["'=cmd@x.test", "ok@x.test"]
    assert out["notes"] == ["'@SUM(1)", "fine"]
    assert out["phone.mobile"] == ["+15550100", "'-cmd"]
    assert out["orders_count"] == [-5, 3]  # numbers are numbers, not text to defuse
    assert out["created_at"] == ["1986-09-04T20:30:05Z", None]


@pytest.mark.parametrize(
    ("fmt", "params"), [("json", {}), ("jsonl", {}), ("parquet", {}), ("xml", {}), ("csv", {"neutralize_formulas": False})]
)
def test_other_formats_and_the_switch_keep_values_as_they_are(fmt, params):
    request, columns, batch = batch_for({"resource": "contacts", "format": fmt, "fields": CONTACT_FIELDS, **params}, CONTACT_ROWS)

    out = transform_batch(batch, request, columns).to_pydict()
    assert out["email"] == CONTACT_ROWS["email"] and out["notes"] == CONTACT_ROWS["notes"]
    assert out["phone.mobile"] == CONTACT_ROWS["phone.mobile"]


def test_parquet_keeps_native_dates_and_other_formats_get_text():
    request, columns, batch = batch_for({"resource": "contacts", "format": "parquet", "fields": ["created_at"]}, {"created_at": [BIRTHDAY]})
    assert pa.types.is_timestamp(transform_batch(batch, request, columns).column(0).type)

    request, columns, batch = batch_for(
        {"resource": "contacts", "format": "json", "fields": ["created_at"], "date_format": "LL"}, {"created_at": [BIRTHDAY]}
    )
    assert transform_batch(batch, request, columns).column(0).to_pylist() == ["September 4, 1986"]


def test_custom_labels_name_the_columns_and_keep_the_json_tag():
    request, columns, batch = batch_for(
        {"resource": "contacts", "fields": ["email", "tags", "first_name"], "labels": {"email": "E-Mail", "tags": "Schlagwörter"}},
        {"email": ["a@x.test"], "tags": ['["vip"]'], "first_name": ["Ada"]},
    )

    out = transform_batch(batch, request, columns)
    assert out.schema.names == ["E-Mail", "Schlagwörter", "first_name"]
    assert out.schema.field("Schlagwörter").metadata[b"ferry.type"] == b"json"
    assert out.column(0).to_pylist() == ["a@x.test"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx"])
def test_spreadsheet_formats_neutralise_formula_labels_in_the_header(fmt):
    labels = {"email": '=HYPERLINK("http://x.test")', "notes": "@SUM(1)", "phone.mobile": "+15550100", "orders_count": "Orders"}
    request, columns, batch = batch_for({"resource": "contacts", "format": fmt, "fields": CONTACT_FIELDS, "labels": labels}, CONTACT_ROWS)

    names = transform_batch(batch, request, columns).schema.names
    assert names == ['\'=HYPERLINK("http://x.test")', "'@SUM(1)", "+15550100", "Orders", "created_at"]


@pytest.mark.parametrize(("fmt", "params"), [("json", {}), ("xml", {}), ("csv", {"neutralize_formulas": False})])
def test_other_formats_and_the_switch_keep_labels_as_they_are(fmt, params):
    request, columns, batch = batch_for(
        {"resource": "contacts", "format": fmt, "fields": ["email"], "labels": {"email": "=1+1"}, **params}, {"email": ["a@x.test"]}
    )
    assert transform_batch(batch, request, columns).schema.names == ["=1+1"]
