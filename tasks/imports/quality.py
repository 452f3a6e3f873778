"""Data-quality summary (import step 3, beside validation): great-expectations on a sample.

great-expectations earns its place as the *report*: :func:`expectation_specs`
generates an expectation suite from the same catalog the row checks in
:mod:`tasks.imports.validate` come from, and :func:`start_quality_summary` runs it
in SUMMARY mode on a bounded sample, in a child process (GX costs ~290 MB and
5-8 s to import, which must not land on the import's own memory). So GX is
imported only in :func:`run_gx`, in that child.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ferry.catalog import FieldType
from ferry.checks import EMAIL
from ferry.import_plan import ImportPlan
from ferry.lifelines import die_with_parent_preexec
from ferry.spool import read_spool, write_spool
from tasks.imports.cells import normalise_text
from tasks.imports.validate import NUMBER_RE

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def expectation_specs(plan: ImportPlan) -> list[dict]:
    """The catalog's checks as GX expectation specs over the mapped (string) source columns."""
    specs: list[dict] = []
    for col in plan.columns:
        if col.source is None:
            continue
        column = col.key
        if col.required:
            specs.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}})
        if col.unique:
            specs.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": column}})
        if col.type is FieldType.EMAIL:
            specs.append({"type": "expect_column_values_to_match_regex", "kwargs": {"column": column, "regex": EMAIL}})
        if col.type is FieldType.ENUM and col.enum:
            specs.append({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": column, "value_set": list(col.enum)}})
        if col.type in (FieldType.INTEGER, FieldType.NUMBER):
            specs.append({"type": "expect_column_values_to_match_regex", "kwargs": {"column": column, "regex": NUMBER_RE}})
    return specs


def run_gx(sample_spool: Path, specs: list[dict]) -> list[dict]:
    """Run the suite in SUMMARY mode; call in a child process (see module docstring)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    with pa.OSFile(str(sample_spool), "rb") as source:
        frame = pa.ipc.open_file(source).read_all().to_pandas()
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("ferry")
        .add_dataframe_asset("import")
        .add_batch_definition_whole_dataframe("sample")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name="ferry-import")
    for spec in specs:
        cls = getattr(gxe, "".join(part.title() for part in spec["type"].split("_")))
        suite.add_expectation(cls(**spec["kwargs"]))
    results = batch.validate(suite, result_format="SUMMARY")
    summary = []
    for res in results.results:
        cfg = res.expectation_config
        detail = res.result or {}
        summary.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column"),
                "success": bool(res.success),
                "unexpected_count": int(detail.get("unexpected_count") or 0),
                "unexpected_percent": round(float(detail.get("unexpected_percent") or 0.0), 3),
                "element_count": int(detail.get("element_count") or len(frame)),
            }
        )
    return summary


def write_quality_sample(source: Path, plan: ImportPlan, target: Path, sample_rows: int) -> int:
    """The first ``sample_rows`` mapped source rows (strings, trimmed) for the GX summary."""
    columns = [c for c in plan.columns if c.source is not None]
    schema = pa.schema([(c.key, pa.string()) for c in columns])
    taken = 0

    def batches():
        nonlocal taken
        for batch in read_spool(source):
            if taken >= sample_rows:
                return
            part = batch.slice(0, sample_rows - taken)
            taken += part.num_rows
            arrays = [normalise_text(part.column(part.schema.names.index(c.source))) for c in columns]
            arrays = [pc.utf8_lower(a) if c.type in (FieldType.EMAIL, FieldType.ENUM) else a for a, c in zip(arrays, columns)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return write_spool(target, schema, batches())


def start_quality_summary(source: Path, plan: ImportPlan, out_dir: Path, sample_rows: int = 20_000) -> subprocess.Popen | None:
    """Start the GX summary in a child process; None when there is nothing to check."""
    specs = expectation_specs(plan)
    if not specs:
        return None
    sample = out_dir / "quality-sample.arrow"
    write_quality_sample(source, plan, sample, sample_rows)
    (out_dir / "quality-specs.json").write_text(json.dumps(specs))
    log = open(out_dir / "quality.log", "wb")
    # niced: the report must not slow the load it runs beside (2 cores are shared with the database);
    # killed with the import's process: a kill -9 of the run must not leave a 290 MB GX process behind
    return subprocess.Popen(
        [sys.executable, "-m", "tasks.imports.quality", str(out_dir.resolve())],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(PROJECT_ROOT),  # where `-m tasks.imports.quality` resolves, whatever the caller's folder
        preexec_fn=die_with_parent_preexec(nice=10),
    )


def finish_quality_summary(proc: subprocess.Popen | None, out_dir: Path, timeout: float = 120) -> tuple[list[dict], str | None]:
    """Wait for the GX child; (summary, problem) where problem says why there is no summary."""
    if proc is None:
        return [], None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return [], f"The data-quality summary took longer than {timeout:.0f} s and was stopped."
    out = out_dir / "quality.json"
    if proc.returncode != 0 or not out.exists():
        tail = (out_dir / "quality.log").read_text(errors="replace")[-300:] if (out_dir / "quality.log").exists() else ""
        return [], f"The data-quality summary failed (exit {proc.returncode}): {tail.strip()}"
    return json.loads(out.read_text()), None


def stop_quality_summary(proc: subprocess.Popen | None) -> None:
    """Kill the summary's child process if it still runs: a run that ended (or failed) does not wait for it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _main(out_dir: str) -> None:  # child process entry: python -m tasks.imports.quality OUT_DIR
    folder = Path(out_dir)
    specs = json.loads((folder / "quality-specs.json").read_text())
    started = datetime.now(UTC)
    summary = run_gx(folder / "quality-sample.arrow", specs)
    (folder / "quality.json").write_text(json.dumps(summary))
    print(f"GX summary: {len(summary)} expectations in {(datetime.now(UTC) - started).total_seconds():.1f} s")


if __name__ == "__main__":
    _main(sys.argv[1])
