"""Import step 1: sniffing, previews and streamed batches for every format, encoding and CSV edge case.

Text case files live in tests/cases (one per behaviour); binary formats (XLSX, XLS,
Parquet) and the .gz/.zip wrappers are written at test time from the same rows, so the
repository holds no opaque blobs.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import shutil
import time
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ferry.errors import SourceFileError
from tasks.imports.parse import ERROR, ROW, FileInfo, iter_batches, preview, previewing, reading, sniff
from tasks.imports.parse import csv_parser as import_parse  # the CSV reader: _CountingStream is looked up there

CASES = Path(__file__).parents[1] / "cases"


def rows_of(info_or_path, batch_rows: int = 65_536) -> list[dict]:
    info = info_or_path if isinstance(info_or_path, FileInfo) else sniff(info_or_path)
    return [r for b in iter_batches(info, batch_rows) for r in b.to_pylist()]


def cells(rows: list[dict], *columns: str) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


# --- CSV dialects and encodings -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "file_type", "encoding", "delimiter"),
    [
        ("quotes_and_newlines.csv", "csv", "utf-8", ","),
        ("crlf.csv", "csv", "utf-8", ","),
        ("utf8_bom.csv", "csv", "utf-8-sig", ","),
        ("utf16_bom.csv", "tsv", "utf-16", "\t"),
        ("cp1252.csv", "csv", "cp1252", ";"),
        ("semicolon_decimal_comma.csv", "csv", "utf-8", ";"),
        ("tab_separated.tsv", "tsv", "utf-8", "\t"),
        ("pipe_separated.csv", "csv", "utf-8", "|"),
        ("excel_sep_line.csv", "csv", "utf-8", ";"),
    ],
)
def test_sniff_detects_type_encoding_and_delimiter(case, file_type, encoding, delimiter):
    info = sniff(CASES / case)
    assert (info.file_type, info.encoding, info.delimiter, info.compression) == (file_type, encoding, delimiter, None)
    assert info.schema().names[-2:] == [ROW, ERROR]


def test_quoted_commas_escaped_quotes_and_newlines_keep_their_first_line_number():
    rows = rows_of(CASES / "quotes_and_newlines.csv")
    assert cells(rows, "name", "notes", ROW) == [
        ("Lovelace, Ada", 'She said "hello"', 2),
        ("Alan Turing", "first line\nsecond line\nthird line", 3),
        ("Hopper, Grace", None, 6),  # a quoted empty cell is null, like an unquoted one
        ("Linus", "plain", 7),
    ]
    assert all(r[ERROR] is None for r in rows)


def test_crlf_line_endings_and_a_quoted_crlf():
    rows = rows_of(CASES / "crlf.csv")
    assert cells(rows, "email", "notes", ROW) == [("ada@example.com", "two\r\nlines", 2), ("alan@example.org", "one", 4)]


@pytest.mark.parametrize("case", ["utf8_bom.csv", "utf16_bom.csv"])
def test_bom_is_not_part_of_the_first_header_and_text_decodes(case):
    info = sniff(CASES / case)
    assert info.columns == ["email", "name", "city"]
    rows = rows_of(info)
    assert rows[0]["name"] == "Zoë" and rows[0]["city"] == "Zürich"
    assert rows[1]["city"] in ("São Paulo", "東京")


def test_utf16_without_bom_is_detected_by_its_nul_bytes(tmp_path):
    path = tmp_path / "utf16le.csv"
    path.write_bytes("email,name\nada@example.com,Zoë\n".encode("utf-16-le"))
    info = sniff(path)
    assert info.encoding == "utf-16-le"
    assert cells(rows_of(info), "email", "name", ROW) == [("ada@example.com", "Zoë", 2)]


def test_windows_1252_is_transcoded():
    rows = rows_of(CASES / "cp1252.csv")
    assert cells(rows, "name", "note") == [("Müller", "costs 5€"), ("Chloé", "“quoted” – dash")]


def test_bytes_undefined_in_windows_1252_make_it_latin_1(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,name\nada@example.com,Ren\xe9e\x81\n")
    info = sniff(path)
    assert info.encoding == "latin-1"
    assert rows_of(info)[0]["name"] == "Renée\x81"


def test_a_windows_1252_byte_deep_in_a_file_is_found_by_the_spread_samples(tmp_path):
    path = tmp_path / "late_cp1252.csv"
    body = "".join(f"user{i}@example.com,Name {i}\n" for i in range(20_000)).encode()
    path.write_bytes(b"email,name\n" + body + b"late@example.com,Andr\xe9\n")
    info = sniff(path)
    assert info.encoding == "cp1252"
    assert rows_of(info)[-1]["name"] == "André"


def test_encoding_override(tmp_path):
    path = tmp_path / "override.csv"
    path.write_bytes("email,name\nada@example.com,Zoë\n".encode())
    assert rows_of(sniff(path, encoding="latin-1"))[0]["name"] == "ZoÃ«"


def test_semicolons_with_decimal_commas_and_a_quoted_semicolon():
    rows = rows_of(CASES / "semicolon_decimal_comma.csv")
    assert sniff(CASES / "semicolon_decimal_comma.csv").columns == ["E-Mail", "Vorname", "Nachname", "Umsatz", "Ort"]
    assert cells(rows, "Umsatz", "Ort") == [("1.234,50", "Köln"), ("12,00", "Frankfurt; Main"), ("0,99", "Berlin")]


def test_tabs_and_pipes_keep_commas_inside_values():
    assert cells(rows_of(CASES / "tab_separated.tsv"), "name", "company")[0] == ("Ada, Countess", "Analytical, Ltd")
    assert cells(rows_of(CASES / "pipe_separated.csv"), "company")[0] == ("Analytical, Ltd",)


def test_excel_sep_line_sets_the_delimiter_and_is_skipped():
    info = sniff(CASES / "excel_sep_line.csv")
    assert info.columns == ["email", "name"]
    assert cells(rows_of(info), "name", ROW) == [("Ada, Countess", 3)]


def test_ragged_rows_are_yielded_with_an_error_not_padded_silently_or_dropped():
    rows = rows_of(CASES / "ragged_rows.csv")
    assert cells(rows, "email", ROW, ERROR) == [
        ("ada@example.com", 2, None),
        ("alan@example.org", 3, "ragged row: 2 values, header has 3"),
        ("grace@example.net", 4, "ragged row: 5 values, header has 3"),
        ("linus@example.com", 5, None),  # extra cells that are all empty (a trailing ",,") lose nothing
        ("ken@example.com", 6, None),
    ]


def test_a_trailing_delimiter_on_every_data_row_is_no_ragged_row():
    info = sniff(CASES / "trailing_delimiter.csv")
    assert info.trailing_delimiter is True and info.columns == ["email", "name"]
    rows = rows_of(info)
    assert cells(rows, "email", "name", ROW, ERROR)[:2] == [
        ("user0@example.com", "User 0", 2, None),
        ("user1@example.com", "User 1", 3, None),
    ]
    assert cells(rows, "email", "name", ROW, ERROR)[-2:] == [
        ("grace@example.net", "Grace", 12, "ragged row: 3 values, header has 2"),
        ("linus@example.com", "Linus", 13, None),
    ]
    assert all(r[ERROR] is None for r in rows[:10])


def test_ragged_rows_are_reported_in_the_preview():
    result = preview(CASES / "ragged_rows.csv")
    assert result.problems == ["row 3: ragged row: 2 values, header has 3", "row 4: ragged row: 5 values, header has 3"]
    assert result.total_rows == 5 and result.total_rows_estimated is False


def test_blank_and_duplicate_headers_are_made_unique_and_reported():
    info = sniff(CASES / "blank_and_duplicate_headers.csv")
    assert info.columns == ["Email", "column_2", "Name", "Email_2", "Name_2"]
    assert info.raw_columns == ["Email", "", "Name", "Email", "Name"]
    assert len(info.warnings) == 3
    assert "column 4 is named 'Email_2'" in info.warnings[1]
    assert rows_of(info)[0]["Email_2"] == "ada@work.example"


def test_blank_lines_and_empty_rows_are_skipped_but_counted_as_lines():
    rows = rows_of(CASES / "blank_lines.csv")
    assert cells(rows, "email", ROW) == [("ada@example.com", 3), ("alan@example.org", 6), ("grace@example.net", 8)]


def test_stray_quotes_inside_unquoted_fields_are_text_and_line_numbers_stay_right():
    rows = rows_of(CASES / "stray_quotes.csv")
    assert cells(rows, "height", "notes", ROW) == [("5'6\"", "fine", 2), ("5'11\" tall", "multi\nline", 3), ("5'4\"", "last", 5)]


def test_an_unterminated_quote_is_reported_on_its_line():
    rows = rows_of(CASES / "unterminated_quote.csv")
    assert cells(rows, ROW, ERROR) == [(2, None), (3, "unterminated quoted field starting on line 3")]


def test_classic_mac_line_endings():
    info = sniff(CASES / "classic_mac_cr.csv")
    assert info.line_terminator == "\r"
    assert cells(rows_of(info), "name", ROW) == [("Ada", 2), ("Al\ran", 3), ("Grace", 5)]


def test_header_only_and_no_trailing_newline():
    assert rows_of(CASES / "header_only.csv") == []
    assert preview(CASES / "header_only.csv").total_rows == 0
    assert cells(rows_of(CASES / "no_trailing_newline.csv"), "name", ROW) == [("Ada", 2), ("Alan", 3)]


@pytest.mark.parametrize("content", [b"", b"   \n\n"])
def test_empty_files_are_refused_with_a_clear_error(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(SourceFileError, match="empty|no header"):
        sniff(path)


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(SourceFileError, match="binary"):
        sniff(path)


def test_html_saved_as_xls_is_refused(tmp_path):
    path = tmp_path / "export.xls"
    path.write_text("<html><body><table><tr><td>email</td></tr></table></body></html>")
    with pytest.raises(SourceFileError, match="HTML"):
        sniff(path)


def test_text_saved_as_xls_is_read_as_delimited_text_with_a_warning(tmp_path):
    path = tmp_path / "export.xls"
    path.write_text("email\tname\nada@example.com\tAda\n")
    info = sniff(path)
    assert (info.file_type, info.delimiter) == ("tsv", "\t")
    assert "named like a spreadsheet" in info.warnings[0]


# --- fast path versus exact path ------------------------------------------------------------------


def _messy_csv(path: Path, rows: int, seed: int) -> list[tuple[int, list[str]]]:
    """A CSV with quoted delimiters, escaped quotes, quoted LF/CRLF, blank lines and ragged rows,
    and the (first line, values) of every data row written — the ground truth."""
    rng = random.Random(seed)
    pieces = ["plain", "with, comma", 'say "hi"', "two\nlines", "crlf\r\nvalue", "", "ünïcødé", "x" * 50]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "a", "b", "c"])
    line = 2
    truth = []
    for i in range(rows):
        if rng.random() < 0.03:
            out.write("\n")
            line += 1
        values = [str(i)] + [rng.choice(pieces) for _ in range(3)]
        if rng.random() < 0.02:
            values = values[:2]  # ragged
        start = out.tell()
        writer.writerow(values)
        text = out.getvalue()[start:]
        truth.append((line, values))
        line += text.count("\n")
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    return truth


def _check_against_truth(rows: list[dict], truth: list[tuple[int, list[str]]]) -> None:
    assert len(rows) == len(truth)
    for row, (line, values) in zip(rows, truth):
        assert row[ROW] == line
        assert row["id"] == values[0]
        if len(values) == 4:
            assert row[ERROR] is None
            assert [row["a"], row["b"], row["c"]] == [v or None for v in values[1:]]
        else:
            assert row[ERROR] == "ragged row: 2 values, header has 4"


def test_small_blocks_match_the_ground_truth(tmp_path, monkeypatch):
    """Many record-aligned blocks (4 KB each), some ragged (exact path), must agree with what was written."""
    path = tmp_path / "messy.csv"
    truth = _messy_csv(path, 3_000, seed=3)
    monkeypatch.setattr(reading, "BLOCK_BYTES", 4096)
    _check_against_truth(rows_of(path, batch_rows=500), truth)


def test_the_exact_path_alone_matches_the_ground_truth(tmp_path, monkeypatch):
    path = tmp_path / "messy.csv"
    truth = _messy_csv(path, 1_500, seed=4)
    monkeypatch.setattr(previewing, "_scan", lambda *a, **k: None)  # every block "untrustworthy"
    _check_against_truth(rows_of(path), truth)


@pytest.mark.parametrize("block", [65_536, 65_537, 65_543, 70_001])
def test_quoted_crlf_split_across_blocks_keeps_its_lf(tmp_path, monkeypatch, block):
    """pyarrow drops the LF of a quoted CR LF when a read ends between the two; the reader never lets it."""
    path = tmp_path / "crlf_values.csv"
    path.write_bytes(("id,p\r\n" + "".join(f'{i},"a\r\nb"\r\n' for i in range(20_000))).encode())
    monkeypatch.setattr(reading, "BLOCK_BYTES", block)
    rows = rows_of(path)
    assert {r["p"] for r in rows} == {"a\r\nb"}
    assert [r[ROW] for r in rows[-2:]] == [2 + 2 * 19_998, 2 + 2 * 19_999]


def test_a_record_longer_than_a_block_falls_back_to_the_exact_path_without_repeating_rows(tmp_path, monkeypatch):
    path = tmp_path / "long_value.csv"
    head = "".join(f"u{i}@example.com,short\n" for i in range(5_000))
    path.write_text("email,notes\n" + head + 'big@example.com,"' + "x\n" * 100_000 + '"\nlast@example.com,end\n')
    monkeypatch.setattr(reading, "BLOCK_BYTES", 64 * 1024)
    rows = rows_of(path, batch_rows=1_000)
    assert len(rows) == 5_002
    assert [r["email"] for r in rows[:2]] == ["u0@example.com", "u1@example.com"]
    assert rows[-2]["email"] == "big@example.com" and rows[-2][ROW] == 5_002 and len(rows[-2]["notes"]) == 200_000
    assert (rows[-1]["email"], rows[-1][ROW]) == ("last@example.com", 5_002 + 100_001)


def test_the_csv_reader_reads_only_a_few_blocks_ahead_of_a_slow_consumer(tmp_path, monkeypatch):
    """pyarrow's reader thread buffers up to 32 blocks of raw text (64 MB at the real block size)
    unless the stream holds it back: memory must not depend on how slow the stages after it are."""
    block = 64 * 1024
    lines = [f"u{i}@example.com,{i}\n" for i in range(100_000)]  # ~40 blocks
    path = tmp_path / "many.csv"
    path.write_text("email,n\n" + "".join(lines))
    offsets = [len("email,n\n")]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    monkeypatch.setattr(reading, "BLOCK_BYTES", block)
    streams = []

    class Recorded(import_parse._CountingStream):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            streams.append(self)

    monkeypatch.setattr(import_parse, "_CountingStream", Recorded)
    read_ahead = []
    rows = 0
    for batch in iter_batches(sniff(path), batch_rows=500):
        rows += batch.num_rows
        read_ahead.append(streams[0].total - offsets[rows])
        time.sleep(0.003)
    assert rows == 100_000
    assert max(read_ahead) <= (import_parse._CountingStream.READS_AHEAD + 3) * block


def test_an_odd_number_of_quotes_from_a_stray_quote_is_no_unterminated_field(tmp_path):
    path = tmp_path / "stray_last.csv"
    path.write_text('email,height\nada@example.com,"5\'6"\nalan@example.org,5\'11"\n')
    assert cells(rows_of(path), "height", ROW, ERROR) == [("5'6", 2, None), ("5'11\"", 3, None)]


def test_batches_are_bounded_and_typed(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("email,n\n" + "".join(f"u{i}@example.com,{i}\n" for i in range(2_500)))
    batches = list(iter_batches(sniff(path), batch_rows=1_000))
    assert [b.num_rows for b in batches] == [1_000, 1_000, 500]
    assert all(b.schema == sniff(path).schema() for b in batches)
    assert batches[-1].column(ROW)[-1].as_py() == 2_501


# --- JSON and JSONL --------------------------------------------------------------------------------


def test_json_array_values_become_raw_text_and_non_objects_are_errors():
    info = sniff(CASES / "contacts.json")
    assert (info.file_type, info.json_path) == ("json", "item")
    assert info.columns == ["email", "first_name", "orders", "ltv", "vip", "tags", "address", "address.city", "phone"]
    rows = rows_of(info)
    assert cells(rows, "orders", "ltv", "vip", "tags", "address", "address.city")[0] == (
        "3",
        "1234.50",
        "true",
        '["vip","beta"]',
        '{"city":"London"}',  # a nested object is one cell of JSON text, and its keys are dotted columns
        "London",
    )
    assert cells(rows, ROW, ERROR)[2] == (3, "not a JSON object (got str)")
    assert rows[3]["first_name"] is None and rows[3]["phone"] == "+1 212 555 0142"


def test_jsonl_reports_invalid_lines_by_line_number():
    info = sniff(CASES / "contacts.jsonl")
    assert info.file_type == "jsonl"
    rows = rows_of(info)
    assert [r[ROW] for r in rows] == [1, 3, 4, 5]
    assert rows[2][ERROR].startswith("invalid JSON")
    assert (rows[3]["nested"], rows[3]["nested.a"]) == ('{"a":[1,2]}', "[1,2]")  # an array stays one cell of JSON text


def test_json_object_wrapping_one_array():
    info = sniff(CASES / "wrapped_array.json")
    assert info.json_path == "data.item" and "under the key 'data'" in info.warnings[0]
    assert cells(rows_of(info), "email", ROW) == [("ada@example.com", 1), ("alan@example.org", 2)]


def test_a_single_json_object_is_refused():
    with pytest.raises(SourceFileError, match="one JSON object"):
        sniff(CASES / "single_object.json")


def test_json_truncated_mid_array_reports_where(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text('[{"email": "ada@example.com"}, {"email": "alan@exa')
    rows = rows_of(path)
    assert rows[0]["email"] == "ada@example.com"
    assert rows[-1][ERROR].startswith("invalid JSON after element 1")


# --- spreadsheets and Parquet ------------------------------------------------------------------------


def _write_xlsx(path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Contacts"
    ws.append(["Email", "Name", "Signed up", "Orders", "LTV", "VIP", None])
    ws.append(["ada@example.com", "Ada", datetime(2024, 1, 5, 10, 30), 3, 1234.5, True])
    ws.append([])
    ws.append(["alan@example.org", "Alan", datetime(2024, 2, 1), 4155550100, 0.1, False])
    ws.append(["grace@example.net", None, None, None, None, None, None, "stray"])
    wb.create_sheet("Notes").append(["ignored"])
    wb.save(path)


def _write_xls(path: Path) -> None:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Contacts")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for c, v in enumerate(["Email", "Name", "Signed up", "Orders", "VIP"]):
        sheet.write(0, c, v)
    sheet.write(1, 0, "ada@example.com")
    sheet.write(1, 1, "Ada")
    sheet.write(1, 2, date(2024, 1, 5), date_style)
    sheet.write(1, 3, 3)
    sheet.write(1, 4, True)
    sheet.write(3, 0, "alan@example.org")
    sheet.write(3, 3, 2.5)
    book.save(str(path))


def _write_parquet(path: Path) -> None:
    table = pa.table(
        {
            "email": ["ada@example.com", "alan@example.org", None, ""],
            "orders": pa.array([3, None, 1, 2], pa.int64()),
            "ltv": [1234.5, 0.0, None, 2.25],
            "vip": [True, False, None, True],
            "signed_up": pa.array(
                [datetime(2024, 1, 5, 10, 30, tzinfo=UTC), None, None, datetime(2024, 2, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")
            ),
            "birthday": pa.array([date(1815, 12, 10), None, None, None], pa.date32()),
            "tags": pa.array([["vip", "beta"], [], None, ["x"]], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path, row_group_size=2)


def test_xlsx_first_sheet_typed_cells_as_text_and_sheet_row_numbers(tmp_path):
    path = tmp_path / "contacts.xlsx"
    _write_xlsx(path)
    info = sniff(path)
    assert (info.file_type, info.sheet, info.encoding) == ("xlsx", "Contacts", None)
    assert info.columns == ["Email", "Name", "Signed up", "Orders", "LTV", "VIP"]
    assert "2 sheets" in info.warnings[0]
    rows = rows_of(info)
    assert cells(rows, "Signed up", "Orders", "LTV", "VIP", ROW) == [
        ("2024-01-05T10:30:00", "3", "1234.5", "true", 2),
        ("2024-02-01", "4155550100", "0.1", "false", 4),  # the blank row 3 is skipped, row numbers stay
        (None, None, None, None, 5),
    ]
    assert rows[2][ERROR] == "ragged row: values in 1 column(s) past the header's 6 (first: column 8)"
    result = preview(path)
    assert (result.total_rows, result.total_rows_estimated) == (3, False)


def test_big_xlsx_row_count_is_the_sheet_dimension_flagged_as_an_estimate(tmp_path, monkeypatch):
    path = tmp_path / "contacts.xlsx"
    _write_xlsx(path)
    monkeypatch.setattr(previewing, "XLSX_EXACT_BYTES", 0)
    result = preview(path, sample_rows=1)
    assert (result.total_rows, result.total_rows_estimated) == (4, True)  # rows 2-5 of the dimension, one blank


def test_xls_legacy_workbook(tmp_path):
    path = tmp_path / "contacts.xls"
    _write_xls(path)
    info = sniff(path)
    assert (info.file_type, info.sheet) == ("xls", "Contacts")
    rows = rows_of(info)
    assert cells(rows, "Email", "Signed up", "Orders", "VIP", ROW) == [
        ("ada@example.com", "2024-01-05", "3", "true", 2),
        ("alan@example.org", None, "2.5", None, 4),
    ]
    assert preview(path).total_rows == 2


def test_parquet_columns_of_any_type_become_text(tmp_path):
    path = tmp_path / "contacts.parquet"
    _write_parquet(path)
    info = sniff(path)
    assert info.file_type == "parquet"
    rows = rows_of(info, batch_rows=3)
    assert cells(rows, "email", "orders", "ltv", "vip", "signed_up", "birthday", "tags", ROW) == [
        ("ada@example.com", "3", "1234.5", "true", "2024-01-05T10:30:00+0000", "1815-12-10", '["vip","beta"]', 1),
        ("alan@example.org", None, "0", "false", None, None, "[]", 2),
        (None, "1", None, None, None, None, None, 3),
        (None, "2", "2.25", "true", "2024-02-01T00:00:00+0000", None, '["x"]', 4),
    ]
    assert preview(path).total_rows == 4


# --- compression wrappers --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["quotes_and_newlines.csv", "utf16_bom.csv", "contacts.jsonl"])
def test_gzip_wrapped_text(tmp_path, case):
    path = tmp_path / (case + ".gz")
    path.write_bytes(gzip.compress((CASES / case).read_bytes()))
    plain, wrapped = sniff(CASES / case), sniff(path)
    assert wrapped.compression == "gzip"
    assert (wrapped.file_type, wrapped.encoding, wrapped.columns) == (plain.file_type, plain.encoding, plain.columns)
    assert rows_of(wrapped) == rows_of(plain)


def test_zip_with_one_csv(tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(CASES / "cp1252.csv", "export/contacts.csv")
        archive.writestr("__MACOSX/._contacts.csv", b"junk")
    info = sniff(path)
    assert (info.compression, info.member, info.encoding) == ("zip", "export/contacts.csv", "cp1252")
    assert rows_of(info) == rows_of(CASES / "cp1252.csv")
    assert preview(path).total_rows == 2


def test_zip_with_several_files_is_refused_naming_them(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "email\n")
        archive.writestr("b.csv", "email\n")
    with pytest.raises(SourceFileError, match=r"holds 2 files \(a.csv, b.csv\)"):
        sniff(path)


@pytest.mark.parametrize(("writer", "name", "file_type"), [(_write_xlsx, "c.xlsx", "xlsx"), (_write_parquet, "c.parquet", "parquet")])
def test_binary_formats_inside_gzip_and_zip(tmp_path, writer, name, file_type):
    inner = tmp_path / name
    writer(inner)
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(inner.read_bytes()))
    zp = tmp_path / (name + ".zip")
    with zipfile.ZipFile(zp, "w") as archive:
        archive.write(inner, name)
    expected = rows_of(inner)
    for wrapped in (gz, zp):
        info = sniff(wrapped)
        assert info.file_type == file_type and info.compression in ("gzip", "zip")
        assert rows_of(info) == expected


# --- preview -------------------------------------------------------------------------------------


def test_preview_returns_columns_samples_counts_and_dialect():
    result = preview(CASES / "hubspot_contacts.csv", sample_rows=2)
    assert result.columns[:3] == ["Record ID", "First Name", "Last Name"]
    assert len(result.sample_rows) == 2 and result.sample_row_numbers == [2, 3]
    assert result.sample_rows[0]["Email"] == "ada@example.com"
    assert (result.total_rows, result.total_rows_estimated) == (3, False)
    assert (result.file_type, result.encoding, result.delimiter) == ("csv", "utf-8", ",")
    payload = result.to_json()
    assert {"columns", "sampleRows", "totalRows", "totalRowsEstimated", "fileType", "encoding", "delimiter", "warnings", "problems"} <= set(
        payload
    )


def test_preview_caps_the_sample_at_what_was_asked(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(500)))
    result = preview(path)
    assert len(result.sample_rows) == 50 and result.total_rows == 500 and not result.total_rows_estimated


@pytest.mark.parametrize("compress", [False, True])
def test_big_text_files_get_an_estimate_flagged_as_such(tmp_path, monkeypatch, compress):
    path = tmp_path / "big.csv"
    lines = "".join(f"user{i}@example.com,Name {i},{i % 97}\n" for i in range(60_000))
    data = ("email,name,n\n" + lines).encode()
    if compress:
        path = tmp_path / "big.csv.gz"
        data = gzip.compress(data)
    path.write_bytes(data)
    monkeypatch.setattr(previewing, "EXACT_COUNT_BYTES", 100_000)
    monkeypatch.setattr(previewing, "PREVIEW_BLOCK_BYTES", 64 * 1024)
    result = preview(path)
    assert result.total_rows_estimated is True
    assert 0.85 * 60_000 <= result.total_rows <= 1.15 * 60_000
    assert len(result.sample_rows) == 50


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceFileError, match="No file at"):
        sniff(tmp_path / "nope.csv")


def test_copy_of_a_case_file_reads_the_same(tmp_path):
    """Sniffing depends on content, not on where the file is."""
    copy = tmp_path / "renamed.data"
    shutil.copy(CASES / "semicolon_decimal_comma.csv", copy)
    assert rows_of(copy) == rows_of(CASES / "semicolon_decimal_comma.csv")
