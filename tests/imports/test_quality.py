"""The data-quality summary: great-expectations in a child process, beside the load."""

from __future__ import annotations

import pyarrow as pa

from ferry.import_params import ColumnMapping, ImportRequest
from ferry.import_plan import build_plan
from ferry.spool import write_spool
from tasks.imports.quality import finish_quality_summary, start_quality_summary
from tasks.imports.validate import ROW


def test_the_summary_runs_when_the_data_folder_is_a_relative_path(tmp_path, monkeypatch):
    """FERRY_DATA_DIR=data (the default) makes every spool path relative: the child must still find its files."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "f.csv"
    source.write_text("Mail\n")
    entries = [ColumnMapping.from_json({"sourceColumn": "Mail", "targetFieldSlug": "email"})]
    request = ImportRequest(source=str(source), resource="contacts", workspace="w", mapping=entries).validated()
    plan = build_plan(request, ["Mail"], entries)
    folder = tmp_path / "data" / "spool" / "run"
    folder.mkdir(parents=True)
    spool = folder / "source.arrow"
    schema = pa.schema([("Mail", pa.string()), (ROW, pa.int64())])
    write_spool(spool, schema, [pa.RecordBatch.from_pylist([{"Mail": "a@example.com", ROW: 2}, {"Mail": "bad", ROW: 3}], schema=schema)])

    relative = folder.relative_to(tmp_path)
    summary, problem = finish_quality_summary(start_quality_summary(relative / "source.arrow", plan, relative), relative)

    assert problem is None
    email = next(s for s in summary if s["column"] == "email" and s["expectation"].endswith("match_regex"))
    assert email["unexpected_count"] == 1 and not email["success"]
