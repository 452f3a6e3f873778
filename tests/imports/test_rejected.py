"""The rejected-rows file: each rejected row as it was in the file, with its line number and every error."""

from __future__ import annotations

import csv


def test_rejected_rows_file_lines_up_errors_with_rows_across_batches(tmp_path):
    """Validation and load errors for rows in different source batches (with gaps in the numbering)."""
    import pyarrow as pa

    from ferry.spool import write_spool
    from tasks.imports.rejected import write_rejected
    from tasks.imports.validate import ERROR_SCHEMA, ROW

    source_schema = pa.schema([("Email", pa.string()), (ROW, pa.int64())])
    numbers = [2, 3, 5, 6, 7, 9, 10, 12]  # line numbers: blank lines and multi-line records leave gaps
    batches = [
        pa.RecordBatch.from_pylist([{"Email": f"u{n}", ROW: n} for n in part], schema=source_schema)
        for part in (numbers[:3], numbers[3:6], numbers[6:])
    ]
    write_spool(tmp_path / "source.arrow", source_schema, batches)
    validation = [
        {"row": 9, "field": "email", "value": "u9", "error": "bad", "check": "type"},
        {"row": 3, "field": "email", "value": "u3", "error": "bad", "check": "type"},
        {"row": 3, "field": "", "value": None, "error": "ragged row", "check": "parse"},
    ]
    load = [
        {"row": 12, "field": "email", "value": "u12", "error": "already used", "check": "unique"},
        {"row": 5, "field": "email", "value": "u5", "error": "in row 2", "check": "unique"},
    ]
    write_spool(tmp_path / "v.arrow", ERROR_SCHEMA, [pa.RecordBatch.from_pylist(validation, schema=ERROR_SCHEMA)])
    write_spool(tmp_path / "l.arrow", ERROR_SCHEMA, [pa.RecordBatch.from_pylist(load, schema=ERROR_SCHEMA)])

    written = write_rejected(tmp_path / "source.arrow", [tmp_path / "v.arrow", tmp_path / "l.arrow"], tmp_path / "rejected.csv", ["Email"])

    with open(tmp_path / "rejected.csv", newline="") as f:
        rows = [(r["Email"], r["ferry_row"], r["ferry_errors"]) for r in csv.DictReader(f)]
    assert written == 4
    assert rows == [
        ("u3", "3", "email: bad; ragged row"),
        ("u5", "5", "email: in row 2"),
        ("u9", "9", "email: bad"),
        ("u12", "12", "email: already used"),
    ]
