"""Import step 1 against hostile files (issue 15, "Bounded input"): a file costs only what its limits allow,
and whatever is wrong with it is said plainly (a FerryError with a hint, never a traceback or an abort).

Small case files live in tests/cases/hostile (written by its make_hostile_cases.py); big ones (bombs,
a 302-column header, lines without an end) are written here, in tmp_path, with the limits lowered
through the settings so that "a few times the limit" stays a few megabytes.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from ferry.errors import ConfigurationError, FerryError, SourceFileError
from ferry.settings import reload_settings
from tasks.imports.parse import ERROR, ROW, iter_batches, preview, read_rows, sniff

CASES = Path(__file__).parents[1] / "cases" / "hostile"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def limits(monkeypatch):
    """Set import limits (``limits(line_bytes=...)`` -> FERRY_IMPORT_MAX_LINE_BYTES) for one test."""

    def set_limits(**values):
        for name, value in values.items():
            monkeypatch.setenv(f"FERRY_IMPORT_MAX_{name.upper()}", str(value))
        reload_settings()

    yield set_limits
    monkeypatch.undo()
    reload_settings()


def rows_of(path) -> list[dict]:
    return [r for b in iter_batches(sniff(path)) for r in b.to_pylist()]


def zip_declaring(path: Path, name: str, data: bytes, declared: int) -> Path:
    """A zip whose one (stored, ZIP64) member holds ``data`` but declares ``declared`` bytes."""
    crc, fname = zlib.crc32(data), name.encode()
    extra = struct.pack("<HHQQ", 1, 16, declared, len(data))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(fname), len(extra))
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(fname), len(extra), 0, 0, 0, 0, 0
    )
    head = local + fname + extra + data
    directory = central + fname + extra
    path.write_bytes(head + directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(head), 0))
    return path


# --- 1. decompression limits ------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_at_the_expansion_ratio(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"email,name\n")
        for _ in range(40):
            f.write(b"a@b.c,x\n" * 131_072)  # 40 MiB that compress ~1000:1
    assert path.stat().st_size < 200_000
    with pytest.raises(SourceFileError, match=r"200:1 \(import_max_expansion_ratio\)") as caught:
        rows_of(path)
    assert "bomb.csv.gz" in caught.value.message and "FERRY_IMPORT_MAX_EXPANSION_RATIO" in caught.value.hint


def test_an_expansion_past_the_byte_limit_is_refused(tmp_path, limits):
    limits(expanded_bytes=2 * 1024 * 1024)
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"email,n\n" + b"".join(b"u%d@example.com,%d\n" % (i, i * 7919 % 100_003) for i in range(200_000)))
    with pytest.raises(SourceFileError, match=r"past the limit of 2\.0 MiB \(import_max_expanded_bytes\)"):
        rows_of(path)


def test_a_zip_member_declaring_a_huge_size_is_refused_before_reading(tmp_path):
    path = zip_declaring(tmp_path / "liar.zip", "contacts.csv", b"email\nada@example.com\n", declared=2**50)
    with pytest.raises(SourceFileError, match="contacts.csv in liar.zip declares that it expands to 1,024.0 TiB"):
        sniff(path)


def test_free_disk_space_is_checked_before_spooling_an_expansion(tmp_path, limits):
    limits(expanded_bytes=2**62, expansion_ratio=2**62)  # only the disk stands in the way now
    path = zip_declaring(tmp_path / "huge.zip", "contacts.csv", b"email\nada@example.com\n", declared=2**50)
    info = sniff(path)
    with pytest.raises(ConfigurationError, match="Not enough disk space for the spool of huge.zip: it needs about 1,024.0 TiB"):
        read_rows.fn(info, tmp_path / "spool")
    assert not (tmp_path / "spool" / "source.arrow").exists()


# --- 2./3. long headers and lines -----------------------------------------------------------------------


def test_a_75_kb_header_of_302_columns_is_read_whole(tmp_path):
    names = [f"custom_property_{i:03d}_" + "x" * 230 for i in range(302)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + ",".join(f"v{i}" for i in range(302)) + "\n")
    assert len(names[0]) * 302 > 75_000
    info = sniff(path)
    assert len(info.columns) == 302 and info.columns[-1] == names[-1]
    (row,) = rows_of(path)
    assert row[ERROR] is None and row[names[-1]] == "v301" and row[ROW] == 2


def test_a_header_past_the_line_limit_is_refused_naming_it(tmp_path, limits):
    limits(line_bytes=16 * 1024)
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"column_{i:05d}" for i in range(3000)) + "\nx\n")
    with pytest.raises(SourceFileError, match=r"line 1 is longer than the limit of 16,384 bytes \(import_max_line_bytes\)"):
        sniff(path)


def test_a_file_without_any_line_break_is_refused_at_line_1(tmp_path, limits):
    limits(line_bytes=1024 * 1024)
    path = tmp_path / "one-line.csv"
    path.write_bytes(b"a," * (2 * 1024 * 1024))  # 4 MiB, no newline: it once "succeeded" with 0 rows
    with pytest.raises(SourceFileError, match=r"line 1 is longer than the limit of 1,048,576 bytes"):
        sniff(path)


def test_a_data_line_past_the_limit_is_an_error_at_that_line_in_flat_memory(tmp_path):
    """A 4 MiB line (four times the 1 MiB limit) in a subprocess: refused at line 3, peak RSS measured."""
    path = tmp_path / "no-newline.csv"
    with path.open("wb") as f:
        f.write(b"email,notes\nada@example.com,short\nalan@example.com,")
        f.write(b"x" * (64 * 1024 * 1024))  # 64 MiB without a newline: 64 times the limit
    script = textwrap.dedent(
        """
        import resource, sys
        from ferry.errors import SourceFileError
        from tasks.imports.parse import iter_batches, sniff
        info = sniff(sys.argv[1])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            for batch in iter_batches(info):
                pass
        except SourceFileError as exc:
            print("REFUSED", exc.message)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("GROWN_MB", grown // 1024)
        """
    )
    env = {**os.environ, "FERRY_IMPORT_MAX_LINE_BYTES": str(1024 * 1024), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "REFUSED no-newline.csv: line 3 is longer than the limit of 1,048,576 bytes" in done.stdout
    grown = int(done.stdout.split("GROWN_MB")[1])
    assert grown < 48, f"peak RSS grew {grown} MB reading a 64 MiB line"  # the line itself is never held


# --- 4. deep JSON -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["deep_line.jsonl", "deep_element.json"])
def test_a_too_deep_record_is_a_row_error_like_any_other(case):
    rows = rows_of(CASES / case)
    assert [(r["email"], r[ERROR]) for r in rows] == [
        ("ada@example.com", None),
        (None, "nested deeper than 64 levels (import_max_json_depth)"),
        ("alan@example.com", None),
    ]
    shown = preview(CASES / case)
    assert shown.problems == ["row 2: nested deeper than 64 levels (import_max_json_depth)"]
    assert shown.total_rows == 3


def test_the_depth_limit_is_a_setting(limits):
    limits(json_depth=1000)  # the line nests 3,001 levels; orjson stops at 1,024: a row error, never a RecursionError
    rows = rows_of(CASES / "deep_line.jsonl")
    assert rows[1][ERROR] == "nested deeper than 1000 levels (import_max_json_depth)"


def test_a_two_million_deep_array_element_costs_no_more_than_its_bytes(tmp_path):
    depth = 2_000_000
    path = tmp_path / "abyss.json"
    path.write_bytes(b'[{"email":"ada@example.com"},' + b'{"a":' * depth + b"1" + b"}" * depth + b',{"email":"alan@example.com"}]')
    rows = rows_of(path)  # ijson built the element whole and took the process down
    assert [r[ERROR] is None for r in rows] == [True, False, True]


def test_nesting_within_the_limit_is_kept(tmp_path):
    value = 1
    for _ in range(60):
        value = {"n": value}
    path = tmp_path / "nested.jsonl"
    path.write_text(json.dumps({"email": "ada@example.com", "x": value}) + "\n")
    (row,) = rows_of(path)
    assert row[ERROR] is None and row["x"].startswith('{"n":{"n":')


# --- 5. truncated gzip --------------------------------------------------------------------------------------


def test_a_truncated_gzip_says_so_and_where():
    size = (CASES / "truncated.csv.gz").stat().st_size
    with pytest.raises(SourceFileError, match=rf"truncated.csv.gz is truncated: its compressed data ends at byte {size:,}"):
        preview(CASES / "truncated.csv.gz")


# --- 6. NUL bytes -------------------------------------------------------------------------------------------


def test_nul_bytes_are_removed_in_the_parse_stage_with_a_warning(tmp_path):
    parsed = read_rows.fn(sniff(CASES / "nul_bytes.csv"), tmp_path)
    from ferry.spool import read_spool

    rows = [r for b in read_spool(parsed.spool) for r in b.to_pylist()]
    assert [(r["name"], r["notes"]) for r in rows[:3]] == [("Ada", "plain"), ("Alan", "twonuls"), (None, "x")]
    assert not any("\x00" in (v or "") for r in rows for v in (r["name"], r["notes"]))
    assert parsed.warnings == [
        "3 cell(s) held NUL bytes (0x00), which no text can hold; they were removed: "
        "row 3 column 'name', row 3 column 'notes', row 4 column 'name'."
    ]


def test_nul_bytes_import_the_same_on_both_stores(istore, tmp_path):
    from ferry.import_params import ImportRequest
    from ferry.runs import run_result
    from flows.import_ import import_data

    ws = istore.workspace()
    state = import_data(
        ImportRequest(
            source=str(CASES / "nul_bytes.csv"),
            resource="contacts",
            workspace=ws,
            mapping=[
                {"sourceColumn": "email", "targetFieldSlug": "email"},
                {"sourceColumn": "name", "targetFieldSlug": "first_name"},
                {"sourceColumn": "notes", "targetFieldSlug": None},
            ],
        ),
        return_state=True,
    )
    record = run_result(state)
    assert state.is_completed(), state.message
    stored = {r["email"]: r["first_name"] for r in istore.rows(ws)}
    assert (len(stored), stored["alan@example.com"], stored["grace@example.com"]) == (63, "Alan", None)
    assert any("held NUL bytes" in w for w in record.warnings)


# --- 7. a write error while parsing ---------------------------------------------------------------------------


def test_a_write_error_while_parsing_ends_as_a_clear_error_with_the_spool_removed(tmp_path):
    """RLIMIT_FSIZE (SIGXFSZ ignored) in a subprocess that keeps the error (as Prefect keeps it in the run's
    state) and exits normally: it once aborted with exit 134, PyGILState_Release."""
    source = tmp_path / "big.csv"
    with source.open("w") as f:
        f.write("email,name,notes\n")
        f.writelines(f"u{i}@example.com,name {i},some notes {i * 7}\n" for i in range(200_000))
    spool = tmp_path / "spool"
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        from ferry.errors import FerryError
        from tasks.imports.parse import read_rows, sniff
        info = sniff(sys.argv[1])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
        kept = []
        try:
            read_rows.fn(info, Path(sys.argv[2]))
        except FerryError as exc:
            kept.append(exc)
            print("ERROR", type(exc).__name__, exc.message)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", script, str(source), str(spool)], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert "ERROR ConfigurationError The import's spool could not be written" in done.stdout
        assert "the file grew past the size limit of the process" in done.stdout
        assert list(spool.iterdir()) == []
    assert issubclass(ConfigurationError, FerryError)


# --- 8. zip members --------------------------------------------------------------------------------------------


def test_a_zip_member_leaving_the_archive_is_named():
    with pytest.raises(SourceFileError, match=r"holds a member whose path leaves the archive \('../../etc/contacts.csv'\)"):
        sniff(CASES / "zip_slip.zip")


def test_text_named_xlsx_inside_a_zip_is_named_as_what_it_is():
    with pytest.raises(SourceFileError, match="contacts.xlsx in text_named_xlsx.zip is named like a spreadsheet but is no workbook"):
        sniff(CASES / "text_named_xlsx.zip")


def test_delimited_text_named_xlsx_inside_a_zip_is_read_with_a_warning_naming_the_member(tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("contacts.xlsx", "email;name\nada@example.com;Ada\n")
    info = sniff(path)
    assert info.warnings == ["contacts.xlsx in export.zip is named like a spreadsheet but holds text; it was read as delimited text."]
    assert [r["name"] for r in rows_of(path)] == ["Ada"]
