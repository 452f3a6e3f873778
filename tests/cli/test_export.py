"""The ``ferry`` CLI: db init / db seed / export, with the contract's flags and JSON field names.

Commands run in-process through typer's CliRunner, so flows use the session's
Prefect server; stdout and stderr are read separately.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from ferry_cli import ferry
from sqlalchemy import text

CONTRACT = ("status", "record_count", "file_size", "destination_path", "sha256", "started_at", "completed_at", "error")


def seeded(empty_store, **counts) -> None:
    from ferry.store.seed import SeedCounts, seed_workspace

    seed_workspace(empty_store.engine, "acme", SeedCounts(**{"contacts": 30, "events": 50, "products": 5, **counts}), seed=4)


@pytest.fixture
def fresh_db(tmp_path, monkeypatch):
    """A store URL that does not exist yet, made the configured store."""
    from ferry.settings import reload_settings

    url = f"sqlite:///{tmp_path / 'new.db'}"
    monkeypatch.setenv("FERRY_DATABASE_URL", url)
    reload_settings()
    yield url
    monkeypatch.undo()
    reload_settings()


def test_db_init_creates_the_schema(fresh_db):
    result = ferry("db", "init")

    assert result.exit_code == 0, result.output
    assert "Store ready" in result.stdout
    tables = set(sa.inspect(sa.create_engine(fresh_db)).get_table_names())
    assert {"workspaces", "contacts", "events", "products", "audit_log", "localized_values"} <= tables
    assert ferry("db", "init").exit_code == 0  # idempotent


def test_db_seed_fills_a_workspace_with_the_asked_counts(fresh_db):
    result = ferry("db", "seed", "--workspace", "demo-co", "--contacts", "40", "--events", "75", "--products", "3")

    assert result.exit_code == 0, result.output
    assert "Seeded workspace demo-co" in result.stdout and "40 contacts" in result.stdout and "75 events" in result.stdout
    with sa.create_engine(fresh_db).connect() as conn:
        counts = {
            t: conn.execute(
                sa.text(f"SELECT count(*) FROM {t} t JOIN workspaces w ON w.id = t.workspace_id WHERE w.slug = 'demo-co'")
            ).scalar_one()
            for t in ("contacts", "events", "products", "accounts")
        }
    assert counts == {"contacts": 40, "events": 75, "products": 3, "accounts": 2}


def test_export_json_prints_the_record_with_the_contract_names(store, tmp_path):
    result = ferry(
        "export",
        "contacts",
        "--workspace",
        "acme",
        "--fields",
        "email,first_name,lifetime_value",
        "--filter",
        "lifecycle_stage:eq:customer",
        "--filter",
        "lifetime_value:gte:100",
        "--sort",
        "lifetime_value:desc",
        "--limit",
        "5",
        "--dest",
        str(tmp_path),
        "--json",
    )

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # stdout is the record and nothing else
    assert set(CONTRACT) <= set(record)
    assert record["status"] == "success" and record["error"] is None and record["record_count"] == 5
    path = Path(record["destination_path"])
    assert path.parent == tmp_path.resolve()
    assert record["file_size"] == path.stat().st_size and record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["started_at"] <= record["completed_at"]
    rows = list(csv.DictReader(path.open(newline="")))
    values = [float(r["lifetime_value"]) for r in rows]
    assert values == sorted(values, reverse=True) and min(values) >= 100


@pytest.mark.parametrize("compress", ["--gzip", "--compress"])  # the spelling of `ferry jobs create` works here too
def test_export_options_reach_the_file(empty_store, tmp_path, compress):
    seeded(empty_store)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"sku": "Artikel", "name": "Bezeichnung"}))

    result = ferry(
        "export",
        "products",
        "--workspace",
        "acme",
        "--fields",
        "sku,name,catalog",
        "--scope",
        "language=de",
        "--catalog",
        "main",
        "--include-variants",
        "--delimiter",
        ";",
        "--labels",
        str(labels),
        compress,
        "--filename",
        "{workspace}/{resource}",
        "--dest",
        str(tmp_path / "out"),
        "--actor",
        "cli-test",
        "--json",
    )

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    path = Path(record["destination_path"])
    assert path == (tmp_path / "out" / "acme" / "products.csv.gz").resolve()
    rows = list(csv.reader(gzip.open(path, "rt", newline=""), delimiter=";"))
    assert rows[0] == ["Artikel", "Bezeichnung", "catalog", "variant.sku", "variant.name", "variant.price", "variant.stock"]
    assert all(r[1].endswith("(DE)") and r[2] == "main" for r in rows[1:]) and len(rows) - 1 == record["record_count"]


@pytest.mark.parametrize("off", ["--no-include-variants", "--no-variants"])  # `ferry jobs create`'s earlier spelling works here too
def test_include_variants_can_be_turned_off_with_either_spelling(empty_store, tmp_path, off):
    seeded(empty_store)

    result = ferry(
        "export", "products", "--workspace", "acme", "--fields", "sku", "--include-variants", off, "--dest", str(tmp_path), "--json"
    )

    assert result.exit_code == 0, result.output
    rows = list(csv.reader(open(json.loads(result.stdout)["destination_path"], newline="")))
    assert rows[0] == ["sku"] and len(rows) == 6  # one row per product, no variant columns
    help_text = ferry("export", "--help", env={"COLUMNS": "200"}).stdout
    assert "--include-variants" in help_text and "--no-include-variants" in help_text and "--no-variants" not in help_text


def test_export_window_date_format_and_no_header(empty_store, tmp_path):
    seeded(empty_store)

    result = ferry(
        "export",
        "events",
        "--workspace",
        "acme",
        "--fields",
        "occurred_at,type",
        "--from",
        "2026-09-01",
        "--to",
        "2026-10-01",
        "--activity-types",
        "page_view,purchase",
        "--date-format",
        "L",
        "--no-header",
        "--dest",
        str(tmp_path),
        "--json",
    )

    assert result.exit_code == 0, result.output
    rows = list(csv.reader(open(json.loads(result.stdout)["destination_path"], newline="")))
    assert rows and all(r[0][:2] in ("09", "10") and r[0].endswith("/2026") and r[1] in ("page_view", "purchase") for r in rows)


def test_a_failed_export_exits_non_zero_with_the_failed_record(empty_store, tmp_path):
    seeded(empty_store)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    result = ferry("export", "contacts", "--workspace", "acme", "--dest", str(blocker / "sub"), "--json")

    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed" and "Cannot create folder" in record["error"] and record["destination_path"] is None

    result = ferry("export", "contacts", "--workspace", "acme", "--dest", str(blocker / "sub"))
    assert result.exit_code == 1 and "Export failed" in result.stderr


def test_invalid_parameters_exit_2_listing_every_problem_before_any_run(empty_store, tmp_path):
    result = ferry(
        "export",
        "events",
        "--workspace",
        "acme",
        "--fields",
        "nope",
        "--filename",
        "{oops}",
        "--format",
        "docx",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-01",
        "--dest",
        str(tmp_path),
        "--json",
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    # a type error (the format) is listed with every other problem, not alone first
    for expected in ("4 invalid parameter(s)", "format='docx'", "fields[0]='nope'", "unknown placeholder {oops}", "at most 31 days"):
        assert expected in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []

    result = ferry("export", "contcts", "--workspace", "acme", "--format", "xlsxx", "--fields", "emial,firstname", "--sort", "lastname")
    assert result.exit_code == 2
    for expected in (
        "resource='contcts'",
        "did you mean 'contacts'?",
        "format='xlsxx'",
        "did you mean 'xlsx'?",
    ):
        assert expected in result.stderr, result.stderr
    result = ferry("export", "profiles", "--workspace", "acme", "--format", "xlsxx", "--fields", "emial,firstname", "--sort", "lastname")
    for expected in (
        "format='xlsxx'",
        "fields[0]='emial'",
        "did you mean 'email'?",
        "fields[1]='firstname'",
        "did you mean 'first_name'?",  # an alias of the field
        "sort.field='lastname'",
        "did you mean 'last_name'?",
    ):
        assert expected in result.stderr, result.stderr
    # options the CLI parses itself (a number, a filter, a scope) are listed with the rest too, not alone first
    result = ferry("export", "contacts", "--workspace", "acme", "--format", "xlsxx", "--limit", "abc", "--filter", "email", "--scope", "de")
    assert result.exit_code == 2
    for expected in ("4 invalid parameter(s)", "format='xlsxx'", "limit='abc'", "filters[0]='email'", "dimension_scope[0]='de'"):
        assert expected in result.stderr, result.stderr

    result = ferry(
        "export",
        "events",
        "--workspace",
        "acme",
        "--fields",
        "nope",
        "--filename",
        "{oops}",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-01",
        "--dest",
        str(tmp_path),
    )
    assert result.exit_code == 2
    for expected in ("fields[0]='nope'", "unknown placeholder {oops}", "at most 31 days"):
        assert expected in result.stderr


def test_bad_filter_scope_and_labels_are_usage_errors(empty_store, tmp_path):
    assert ferry("export", "contacts", "--workspace", "acme", "--filter", "email").exit_code == 2
    assert ferry("export", "products", "--workspace", "acme", "--scope", "language").exit_code == 2
    assert ferry("export", "contacts", "--workspace", "acme", "--labels", str(tmp_path / "missing.json")).exit_code == 2
    (tmp_path / "bad.json").write_text("{not json")
    result = ferry("export", "contacts", "--workspace", "acme", "--labels", str(tmp_path / "bad.json"))
    assert result.exit_code == 2 and "--labels" in result.stderr
    (tmp_path / "list.json").write_text("[1, 2]")
    assert ferry("export", "contacts", "--workspace", "acme", "--labels", str(tmp_path / "list.json")).exit_code == 2


def test_a_window_that_matches_no_row_says_so_and_when_the_newest_row_is(empty_store, tmp_path):
    seeded(empty_store)
    with empty_store.engine.connect() as conn:
        newest = conn.execute(text("SELECT MAX(occurred_at) FROM events")).scalar_one()
    newest = datetime.fromisoformat(newest) if isinstance(newest, str) else newest  # SQLite answers text

    result = ferry(
        "export", "events", "--workspace", "acme", "--from", "2001-01-01", "--to", "2001-01-31", "--dest", str(tmp_path), "--json"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "success" and record["record_count"] == 0
    (warning,) = record["warnings"]
    assert (
        warning
        == f"0 rows between 2001-01-01 00:00:00 and 2001-02-01 00:00:00 (UTC, occurred_at); the newest is from {newest.isoformat(sep=' ')}."
    )

    shown = ferry("export", "events", "--workspace", "acme", "--from", "2001-01-01", "--to", "2001-01-31", "--dest", str(tmp_path))
    assert "Warning: 0 rows between 2001-01-01" in shown.stderr

    day = newest.date().isoformat()
    found = json.loads(
        ferry("export", "events", "--workspace", "acme", "--from", day, "--to", day, "--dest", str(tmp_path), "--json").stdout
    )
    assert found["record_count"] >= 1 and found["warnings"] == []  # a window with rows warns of nothing


def test_a_limit_prefect_cannot_list_a_bad_strftime_pattern_and_a_control_character_exit_2_before_any_run(empty_store, tmp_path):
    """Issue 15: ``--limit 10**20`` started a run that broke every Prefect run listing; ``%Q %`` wrote garbage."""
    result = ferry(
        "export",
        "contacts",
        "--workspace",
        "acme",
        "--limit",
        "100000000000000000000",
        "--date-format",
        "%Q %",
        "--filename",
        "x\n{run_id}.csv",
        "--dest",
        str(tmp_path),
    )

    assert result.exit_code == 2
    for expected in ("3 invalid parameter(s)", "limit=", "9007199254740991", "date_format='%Q %'", "%Q", "control characters"):
        assert expected in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["acme corp", "..", "../x", "Acme"])
def test_db_seed_refuses_a_new_workspace_name_that_is_not_a_slug(fresh_db, name):
    """Issue 15: ``acme corp`` and ``acme-corp`` rendered to one export path; ``..`` and ``../x`` were accepted."""
    result = ferry("db", "seed", "--workspace", name, "--contacts", "2", "--events", "0", "--products", "0")

    assert result.exit_code == 2, result.output
    assert "lower-case letters, digits and dashes" in result.stderr
    with sa.create_engine(fresh_db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM workspaces")).scalar_one() == 0


def test_db_seed_still_fills_a_workspace_of_an_older_name(fresh_db):
    """Stores made before the slug rule keep their workspaces: seeding one that exists is not refused."""
    assert ferry("db", "init").exit_code == 0
    with sa.create_engine(fresh_db).begin() as conn:  # as an older Ferry stored it
        conn.execute(sa.text("INSERT INTO workspaces (slug, name, created_at) VALUES ('Legacy Co', 'Legacy Co', '2026-01-01')"))

    result = ferry("db", "seed", "--workspace", "Legacy Co", "--contacts", "3", "--events", "0", "--products", "0")
    assert result.exit_code == 0, result.output
    assert "3 contacts" in result.stdout


def test_export_overwrite_replaces_a_file_that_exists_and_without_it_the_export_fails(empty_store, tmp_path):
    seeded(empty_store)
    common = ("export", "contacts", "--workspace", "acme", "--fields", "email", "--dest", str(tmp_path), "--filename", "c.{format}")
    (tmp_path / "c.csv").write_text("someone else's file\n")

    refused = ferry(*common)
    assert refused.exit_code == 1
    assert "already holds a file named 'c.csv'" in refused.stderr and "--overwrite" in refused.stderr
    assert (tmp_path / "c.csv").read_text() == "someone else's file\n"

    replaced = ferry(*common, "--overwrite", "--json")
    assert replaced.exit_code == 0, replaced.output
    assert (tmp_path / "c.csv").read_text().startswith('"email"\n')
