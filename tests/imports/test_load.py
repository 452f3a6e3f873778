"""Load stage on real SQLite and PostgreSQL: strategies x merge modes, in-file duplicates,
references, uniqueness, dry runs, exact rollback, workspace isolation and a killed load."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from imports.stages import ImportStore, load_errors, run_stages

from ferry.errors import RollbackError
from ferry.store import schema as s
from tasks.imports.merge import REFERENCE_VALUES_SHOWN
from tasks.imports.rollback import undo_import

ROUTES = {"Email": "email", "First": "first_name", "Last": "last_name", "Title": "job_title"}
EXISTING = {"Email": "ann@example.com", "First": "Ann", "Last": None, "Title": "CEO"}
INCOMING = {"Email": "ANN@example.com ", "First": "Anna", "Last": "Lee", "Title": None}


def seed(store: ImportStore, tmp_path, rows, routes=ROUTES, **options) -> str:
    ws = store.workspace(options.pop("accounts", ()))
    loaded, _, _ = run_stages(store, tmp_path, ws, rows, routes, **options)
    assert loaded.committed and loaded.rejected_rows == 0
    return ws


def person(rows: list[dict], email: str) -> dict:
    return next(r for r in rows if r["email"] == email)


# --- strategy x merge mode against a record in the store ---------------------------------------

EXPECTED = {
    ("update", "overwrite"): ("Anna", "Lee", None),
    ("update", "prefer_import"): ("Anna", "Lee", "CEO"),
    ("update", "fill_empty"): ("Ann", "Lee", "CEO"),
    ("skip", "overwrite"): ("Ann", None, "CEO"),
    ("skip", "prefer_import"): ("Ann", None, "CEO"),
    ("skip", "fill_empty"): ("Ann", None, "CEO"),
}


@pytest.mark.parametrize("merge", ["overwrite", "prefer_import", "fill_empty"])
@pytest.mark.parametrize("duplicates", ["skip", "update", "create"])
def test_strategy_and_merge_mode_against_the_store(istore, tmp_path, duplicates, merge):
    ws = seed(istore, tmp_path, [EXISTING])
    before = istore.rows(ws)
    loaded, _, run_id = run_stages(
        istore, tmp_path, ws, [INCOMING, {"Email": "new@example.com", "First": "Neu"}], ROUTES, duplicates=duplicates, merge=merge
    )
    after = istore.rows(ws)

    assert loaded.committed
    assert loaded.created_rows == 1 and person(after, "new@example.com")["first_name"] == "Neu"
    if duplicates == "create":  # e-mail is unique in the store: a second record cannot be created
        assert loaded.rejected_rows == 1 and loaded.updated_rows == 0
        [error] = load_errors(loaded)
        assert (error["row"], error["field"], error["value"], error["check"]) == (2, "email", "ann@example.com", "unique")
        assert "already used by another contacts record" in error["error"]
        assert person(after, "ann@example.com") == person(before, "ann@example.com")
        return
    ann = person(after, "ann@example.com")
    assert (ann["first_name"], ann["last_name"], ann["job_title"]) == EXPECTED[(duplicates, merge)]
    assert ann["id"] == person(before, "ann@example.com")["id"]
    if duplicates == "update":
        assert (loaded.updated_rows, loaded.skipped_rows) == (1, 0)
        assert loaded.samples["update"][0]["row"] == 2 and loaded.samples["update"][0]["record_id"] == ann["id"]
        assert ann["updated_at"] != person(before, "ann@example.com")["updated_at"]
    else:
        assert (loaded.updated_rows, loaded.skipped_rows) == (0, 1)
        assert loaded.samples["skip"] == [
            {"row": 2, "email": "ann@example.com", "record_id": ann["id"], "reason": "matches an existing record"}
        ]
        assert ann == person(before, "ann@example.com")


def test_update_that_changes_nothing_is_skipped_and_not_recorded(istore, tmp_path):
    ws = seed(istore, tmp_path, [EXISTING])
    before = istore.rows(ws)
    loaded, _, run_id = run_stages(istore, tmp_path, ws, [dict(EXISTING, Email=" Ann@Example.com")], ROUTES, duplicates="update")

    assert (loaded.updated_rows, loaded.skipped_rows) == (0, 1)
    assert loaded.samples["skip"][0]["reason"] == "matches an existing record; nothing changes"
    assert istore.rows(ws) == before


# --- duplicates inside the file: the same rules -------------------------------------------------

IN_FILE = [
    {"Email": "dup@example.com", "First": "A", "Title": None},
    {"Email": "DUP@example.com", "First": None, "Title": "X"},
    {"Email": "dup@example.com", "First": "C", "Title": None},
]


@pytest.mark.parametrize(
    ("duplicates", "merge", "expected"),
    [
        ("skip", "prefer_import", ("A", None)),
        ("update", "prefer_import", ("C", "X")),
        ("update", "fill_empty", ("A", "X")),
        ("update", "overwrite", ("C", None)),
    ],
)
def test_duplicates_inside_the_file_follow_the_strategy(istore, tmp_path, duplicates, merge, expected):
    ws = istore.workspace()
    loaded, _, _ = run_stages(istore, tmp_path, ws, IN_FILE, ROUTES, duplicates=duplicates, merge=merge)

    rows = istore.rows(ws)
    assert len(rows) == 1 and (rows[0]["first_name"], rows[0]["job_title"]) == expected
    assert (loaded.created_rows, loaded.updated_rows, loaded.skipped_rows, loaded.rejected_rows) == (1, 0, 2, 0)
    how = "merged into row 2" if duplicates == "update" else "repeats the match values of row 2"
    assert loaded.samples["skip"] == [{"row": 3, "reason": how}, {"row": 4, "reason": how}]


def test_keys_that_only_share_a_slot_with_a_repeated_key_are_not_folded(istore, tmp_path, monkeypatch):
    """Nine keys in eight slots: some share one. The grouping in SQL, not the slot, decides what repeats."""
    monkeypatch.setattr("tasks.imports.repeats.MIN_SLOT_BITS", 3)
    monkeypatch.setattr("tasks.imports.repeats.MAX_SLOT_BITS", 3)
    ws = istore.workspace()
    others = [{"Email": f"other{i}@example.com", "First": f"O{i}"} for i in range(6)]
    loaded, _, _ = run_stages(istore, tmp_path, ws, [*others[:3], *IN_FILE, *others[3:]], ROUTES, duplicates="update", merge="fill_empty")

    rows = istore.rows(ws)
    assert (loaded.created_rows, loaded.skipped_rows) == (7, 2)
    assert (person(rows, "dup@example.com")["first_name"], person(rows, "dup@example.com")["job_title"]) == ("A", "X")
    assert sorted(r["first_name"] for r in rows if r["email"].startswith("other")) == [f"O{i}" for i in range(6)]


TYPED_ROUTES = {"Email": "email", "Opt": "email_consent", "Tags": "tags", "LTV": "lifetime_value", "Since": "created_at"}
TYPED_IN_FILE = [
    {"Email": "t@example.com", "Opt": None, "Tags": '["a"]', "LTV": "1.5", "Since": None},
    {"Email": "T@example.com", "Opt": "no", "Tags": None, "LTV": None, "Since": "2024-01-02"},
    {"Email": "t@example.com", "Opt": "yes", "Tags": '["b", "c"]', "LTV": "2.25", "Since": None},
]


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        ("fill_empty", (False, ["a"], 1.5)),  # each column's first value
        ("prefer_import", (True, ["b", "c"], 2.25)),  # each column's last value
        ("overwrite", (True, ["b", "c"], 2.25)),  # the last row
    ],
)
def test_folding_repeats_in_the_file_keeps_booleans_json_numbers_and_dates(istore, tmp_path, merge, expected):
    """Each column's value is taken from its own picked row, whatever its type (PostgreSQL has no MAX of a boolean or JSON)."""
    ws = istore.workspace()
    loaded, _, _ = run_stages(istore, tmp_path, ws, TYPED_IN_FILE, TYPED_ROUTES, duplicates="update", merge=merge)

    [row] = istore.rows(ws)
    assert (loaded.created_rows, loaded.skipped_rows) == (1, 2)
    tags = row["tags"] if isinstance(row["tags"], list) else json.loads(row["tags"])
    assert (row["email_consent"], tags, row["lifetime_value"]) == expected
    assert (row["created_at"].date() == date(2024, 1, 2)) == (merge != "overwrite")  # overwrite: the last row has no date


def test_in_file_duplicates_with_create_are_unique_errors(istore, tmp_path):
    ws = istore.workspace()
    loaded, _, _ = run_stages(istore, tmp_path, ws, IN_FILE, ROUTES, duplicates="create")

    assert (loaded.created_rows, loaded.rejected_rows) == (1, 2)
    assert [(e["row"], e["field"], e["error"]) for e in load_errors(loaded)] == [
        (3, "email", "the same value is in row 2"),
        (4, "email", "the same value is in row 2"),
    ]


def test_more_rows_rejected_at_load_than_allowed_rolls_the_load_back(istore, tmp_path):
    ws = istore.workspace()
    loaded, _, _ = run_stages(istore, tmp_path, ws, IN_FILE, ROUTES, duplicates="create", max_rejected=1)

    assert loaded.over_error_rate and not loaded.committed and (loaded.created_rows, loaded.rejected_rows) == (1, 2)
    assert istore.rows(ws) == []
    within, _, _ = run_stages(istore, tmp_path, ws, IN_FILE, ROUTES, duplicates="create", max_rejected=2)
    assert within.committed and not within.over_error_rate and len(istore.rows(ws)) == 1


def test_rows_validation_rejected_count_toward_what_the_load_may_reject(istore, tmp_path):
    """The load stages rows while validation still runs: it learns how many rows validation kept back only at
    the end of the stream, and must still hold the run to one allowance for both."""
    ws = istore.workspace()
    rows = [{"Email": "not an e-mail"}, *IN_FILE]  # one row rejected by validation, two by the load

    over, _, _ = run_stages(istore, tmp_path, ws, rows, ROUTES, duplicates="create", max_rejected=2)
    assert over.over_error_rate and not over.committed and istore.rows(ws) == []
    invalid_only, _, _ = run_stages(istore, tmp_path, ws, rows[:2], ROUTES, max_rejected=0)
    assert invalid_only.over_error_rate and not invalid_only.committed and invalid_only.staged_rows == 1
    assert invalid_only.created_rows == 0 and istore.rows(ws) == []  # rolled back before the merge
    within, validation, _ = run_stages(istore, tmp_path, ws, rows, ROUTES, duplicates="create", max_rejected=3)
    assert within.committed and (validation.error_rows, within.rejected_rows) == (1, 2) and len(istore.rows(ws)) == 1


def test_in_file_duplicate_of_a_stored_record_updates_it_once(istore, tmp_path):
    ws = seed(istore, tmp_path, [EXISTING])
    loaded, _, _ = run_stages(
        istore,
        tmp_path,
        ws,
        [dict(INCOMING, Title="CTO"), dict(INCOMING, First=None, Title="CFO")],
        ROUTES,
        duplicates="update",
        merge="prefer_import",
    )
    ann = istore.rows(ws)[0]
    assert (ann["first_name"], ann["last_name"], ann["job_title"]) == ("Anna", "Lee", "CFO")
    assert (loaded.created_rows, loaded.updated_rows, loaded.skipped_rows) == (0, 1, 1)


# --- uniqueness of other unique fields, required fields, ambiguous matches ---------------------------


def test_unique_fields_other_than_the_match_are_checked_in_the_file_and_the_store(istore, tmp_path):
    routes = {**ROUTES, "Ext": "external_id"}
    ws = seed(istore, tmp_path, [{"Email": "old@example.com", "Ext": "E-1"}], routes)
    rows = [
        {"Email": "a@example.com", "Ext": "E-2"},
        {"Email": "b@example.com", "Ext": "E-2"},  # same external id as row 2, another person
        {"Email": "c@example.com", "Ext": "E-1"},  # external id of the stored record
        {"Email": "a@example.com", "Ext": "E-2"},  # the same person as row 2 again: a duplicate, not an error
    ]
    loaded, _, _ = run_stages(istore, tmp_path, ws, rows, routes, duplicates="update")

    assert [(e["row"], e["field"], e["value"], e["check"]) for e in load_errors(loaded)] == [
        (3, "external_id", "E-2", "unique"),
        (4, "external_id", "E-1", "unique"),
    ]
    assert "already used by another contacts record" in load_errors(loaded)[1]["error"]
    assert (loaded.created_rows, loaded.skipped_rows, loaded.rejected_rows) == (1, 1, 2)
    assert sorted(r["email"] for r in istore.rows(ws)) == ["a@example.com", "old@example.com"]


IN_FILE_GROUPING = "the same value is in row"


@pytest.mark.parametrize("import_store", ["postgresql"], indirect=True)  # SQLite groups the file first, as before
@pytest.mark.parametrize("bulk", [True, False], ids=["unique indexes rebuilt", "unique indexes live"])
def test_a_files_own_unique_repeat_found_by_the_index_is_still_rejected_row_by_row(istore, tmp_path, bulk_threshold, bulk):
    """PostgreSQL leaves the file's own repeats of a unique field to the table's unique index; when the index refuses
    one (rebuilt after a bulk load, or live on insert), the merge runs again with the check and rejects the row."""
    routes = {"Email": "email", "Ext": "external_id"}
    ws = istore.workspace()

    def size() -> int:  # a bulk load must outnumber the whole table (every test's rows), a small one stays below the threshold
        return max(bulk_threshold, istore.count("contacts") + 1) if bulk else 20

    n = size()
    with statements_of(istore.engine) as statements:
        loaded, _, _ = run_stages(istore, tmp_path, ws, [{"Email": f"p{i}@example.com", "Ext": f"E-{i}"} for i in range(n)], routes)
    assert (loaded.created_rows, loaded.rejected_rows) == (n, 0)
    assert not any(IN_FILE_GROUPING in sql for sql in statements), "a file without repeats was grouped by external_id"

    m = size()
    repeating = [{"Email": f"q{i}@example.com", "Ext": f"F-{i}"} for i in range(m)]
    repeating[-1]["Ext"] = "F-7"  # another person with row 9's external id
    with statements_of(istore.engine) as statements:
        loaded, _, _ = run_stages(istore, tmp_path, ws, repeating, routes)
    assert any(sql.startswith("DROP INDEX") for sql in statements) == bulk
    assert any(IN_FILE_GROUPING in sql for sql in statements), "the merge did not run again with the check"
    assert [(e["row"], e["field"], e["value"], e["error"]) for e in load_errors(loaded)] == [
        (m + 1, "external_id", "F-7", "the same value is in row 9")
    ]
    assert (loaded.created_rows, loaded.rejected_rows) == (m - 1, 1)
    stored = {r["email"]: r["external_id"] for r in istore.rows(ws)}
    assert stored["q7@example.com"] == "F-7" and f"q{m - 1}@example.com" not in stored and len(stored) == n + m - 1


def test_required_field_not_mapped_rejects_only_rows_that_would_create(istore, tmp_path):
    ws = seed(istore, tmp_path, [{"Email": "x@example.com", "Ext": "E-1", "First": "X"}], {**ROUTES, "Ext": "external_id"})
    loaded, _, _ = run_stages(
        istore,
        tmp_path,
        ws,
        [{"Ext": "E-1", "First": "Xavier"}, {"Ext": "E-9", "First": "Nobody"}],
        {"Ext": "external_id", "First": "first_name"},
        duplicates="update",
        match=["external_id"],
    )

    assert (loaded.updated_rows, loaded.created_rows, loaded.rejected_rows) == (1, 0, 1)
    [error] = load_errors(loaded)
    assert (error["row"], error["field"], error["check"]) == (3, "email", "required")
    assert istore.rows(ws)[0]["first_name"] == "Xavier"


def test_match_on_a_non_unique_field_rejects_ambiguous_rows(istore, tmp_path):
    ws = seed(
        istore,
        tmp_path,
        [
            {"Email": "p1@example.com", "Last": "Smith"},
            {"Email": "p2@example.com", "Last": "Smith"},
            {"Email": "p3@example.com", "Last": "Jones"},
        ],
    )
    loaded, _, _ = run_stages(
        istore,
        tmp_path,
        ws,
        [{"Last": "Smith", "Title": "Dr"}, {"Last": "Jones", "Title": "Prof"}],
        {"Last": "last_name", "Title": "job_title"},
        duplicates="update",
        match=["last_name"],
    )

    [error] = load_errors(loaded)
    assert (error["row"], error["check"]) == (2, "match") and "matches 2 existing records" in error["error"]
    assert loaded.updated_rows == 1 and person(istore.rows(ws), "p3@example.com")["job_title"] == "Prof"


# --- references -------------------------------------------------------------------------


def test_references_resolve_and_missing_ones_are_warnings(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    rows = [
        {"Email": "a@example.com", "Company": "Acme"},
        {"Email": "b@example.com", "Company": "Newco"},
        {"Email": "c@example.com", "Company": "Newco"},
    ]
    loaded, _, _ = run_stages(istore, tmp_path, ws, rows, {"Email": "email", "Company": "company"})

    accounts = {a["name"]: a["id"] for a in istore.rows(ws, "accounts")}
    assert list(accounts) == ["Acme"]
    assert [r["company_id"] for r in istore.rows(ws)] == [accounts["Acme"], None, None]
    assert loaded.reference_warnings == [
        {
            "field": "company",
            "resource": "accounts",
            "key": "name",
            "rows": 2,
            "unresolved_count": 1,
            "values": [{"value": "Newco", "rows": 2}],
            "action": "loaded as empty",
        }
    ]
    assert loaded.created_rows == 3 and loaded.rejected_rows == 0


def test_unresolved_references_count_every_value_and_show_the_first_ones(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    names = [f"Newco {i:02d}" for i in range(25)]
    rows = [{"Email": f"r{i}@example.com", "Company": name} for i, name in enumerate(names)]
    rows.append({"Email": "again@example.com", "Company": names[3]})
    loaded, _, _ = run_stages(istore, tmp_path, ws, rows, {"Email": "email", "Company": "company"})

    (found,) = loaded.reference_warnings
    assert (found["rows"], found["unresolved_count"]) == (26, 25)  # all of them, not only those shown
    shown = [{"value": name, "rows": 2 if name == names[3] else 1} for name in names[:REFERENCE_VALUES_SHOWN]]
    assert found["values"] == shown


def test_create_missing_references_creates_them_once_and_rollback_removes_them(istore, tmp_path):
    ws = istore.workspace(accounts=("Acme",))
    rows = [
        {"Email": "a@example.com", "Company": "Acme"},
        {"Email": "b@example.com", "Company": "Newco"},
        {"Email": "c@example.com", "Company": " Newco "},
    ]
    loaded, _, run_id = run_stages(istore, tmp_path, ws, rows, {"Email": "email", "Company": "company"}, create_missing_references=True)

    accounts = {a["name"]: a["id"] for a in istore.rows(ws, "accounts")}
    assert sorted(accounts) == ["Acme", "Newco"] and loaded.created_references == {"accounts": 1}
    assert [r["company_id"] for r in istore.rows(ws)] == [accounts["Acme"], accounts["Newco"], accounts["Newco"]]
    assert loaded.reference_warnings == []

    done = undo_import(istore.engine, run_id, "tester")
    assert (done.deleted_rows, done.deleted_references) == (3, {"accounts": 1})
    assert [a["name"] for a in istore.rows(ws, "accounts")] == ["Acme"] and istore.rows(ws) == []


def test_a_required_reference_that_does_not_resolve_rejects_the_row(istore, tmp_path):
    ws = istore.workspace()
    with istore.engine.begin() as conn:
        wid = conn.execute(sa.select(sa.text("id")).select_from(sa.text("workspaces")).where(sa.text("slug = :s")), {"s": ws}).scalar_one()
        conn.execute(sa.text("INSERT INTO catalogs (workspace_id, key, name) VALUES (:w, 'main', 'Main')"), {"w": wid})
    rows = [{"SKU": "S-1", "Name": "Tent", "Catalog": "main"}, {"SKU": "S-2", "Name": "Cup", "Catalog": "nope"}]
    loaded, _, _ = run_stages(istore, tmp_path, ws, rows, {"SKU": "sku", "Name": "name", "Catalog": "catalog"}, resource="products")

    assert (loaded.created_rows, loaded.rejected_rows) == (1, 1)
    [error] = load_errors(loaded)
    assert (error["row"], error["field"], error["value"], error["check"]) == (3, "catalog", "nope", "reference")
    assert loaded.reference_warnings[0]["action"] == "rejected (required)"


# --- dry run, rollback, isolation ---------------------------------------------------------------


def test_dry_run_reports_exact_counts_and_changes_nothing(istore, tmp_path):
    ws = seed(istore, tmp_path, [EXISTING, {"Email": "keep@example.com", "First": "K"}])
    before = istore.rows(ws)
    ledger = ("import_runs", "import_created_ranges", "import_images_contacts")
    ledger_before = [istore.count(t) for t in ledger]
    rows = [INCOMING, {"Email": "new@example.com"}, {"Email": "keep@example.com", "First": "K"}, {"Email": "new@example.com", "First": "N"}]
    dry, _, dry_id = run_stages(istore, tmp_path, ws, rows, ROUTES, duplicates="update", dry_run=True)

    assert not dry.committed
    assert istore.rows(ws) == before
    assert [istore.count(t) for t in ledger] == ledger_before
    with pytest.raises(RollbackError, match="No committed import"):
        undo_import(istore.engine, dry_id, "tester")
    real, _, _ = run_stages(istore, tmp_path, ws, rows, ROUTES, duplicates="update")
    assert (dry.created_rows, dry.updated_rows, dry.skipped_rows) == (real.created_rows, real.updated_rows, real.skipped_rows) == (1, 1, 2)
    assert dry.samples == real.samples


def test_rollback_restores_updated_rows_exactly_and_deletes_created_ones(istore, tmp_path):
    routes = {
        **ROUTES,
        "Mobile": "phone.mobile",
        "City": "address.city",
        "LTV": "lifetime_value",
        "Born": "lifecycle_stage",
        "Opt": "email_consent",
        "Tags": "tags",
    }
    ws = seed(
        istore,
        tmp_path,
        [
            {
                "Email": "a@example.com",
                "First": "A",
                "Mobile": "+15551230001",
                "City": "Berlin",
                "LTV": "0.1",
                "Born": "lead",
                "Opt": "yes",
                "Tags": '["vip", "beta"]',
            },
            {"Email": "b@example.com", "First": "B", "LTV": "12.3456789012345"},
        ],
        routes,
    )
    before = istore.rows(ws)
    loaded, _, run_id = run_stages(
        istore,
        tmp_path,
        ws,
        [
            {
                "Email": "a@example.com",
                "First": "Zed",
                "Mobile": None,
                "City": "Paris",
                "LTV": "0.30000000000000004",
                "Born": "customer",
                "Opt": "no",
                "Tags": "x, y",
            },
            {"Email": "c@example.com", "First": "C"},
        ],
        routes,
        duplicates="update",
        merge="overwrite",
    )
    assert (loaded.updated_rows, loaded.created_rows) == (1, 1)
    assert person(istore.rows(ws), "a@example.com")["address_city"] == "Paris"

    done = undo_import(istore.engine, run_id, "tester")

    assert (done.restored_rows, done.deleted_rows) == (1, 1)
    assert istore.rows(ws) == before
    with pytest.raises(RollbackError, match="already rolled back"):
        undo_import(istore.engine, run_id, "tester")


def test_rollback_refuses_when_a_record_changed_since(istore, tmp_path):
    ws = seed(istore, tmp_path, [EXISTING])
    _, _, first = run_stages(istore, tmp_path, ws, [INCOMING, {"Email": "new@example.com"}], ROUTES, duplicates="update")
    snapshot = istore.rows(ws)
    _, _, second = run_stages(istore, tmp_path, ws, [dict(INCOMING, Title="Boss")], ROUTES, duplicates="update")

    with pytest.raises(RollbackError, match="1 updated contacts record") as refused:
        undo_import(istore.engine, first, "tester")
    assert "Nothing was changed" in str(refused.value)
    undo_import(istore.engine, second, "tester")  # undo the later import first ...
    assert istore.rows(ws) == snapshot
    undo_import(istore.engine, first, "tester")  # ... then the earlier one is exact again
    assert [(r["email"], r["first_name"], r["job_title"]) for r in istore.rows(ws)] == [("ann@example.com", "Ann", "CEO")]


def test_a_migration_keeps_the_source_dates_and_rollback_still_sees_later_edits(istore, tmp_path):
    from datetime import datetime

    dated = {**ROUTES, "Date Added": "created_at", "Last Changed": "updated_at"}
    rows = [
        {"Email": "old@example.com", "First": "Old", "Date Added": "2019-03-01T09:30:00Z", "Last Changed": "2021-07-04 12:00"},
        {"Email": "new@example.com", "First": "New", "Date Added": None, "Last Changed": None},  # no source date: the import's
    ]
    ws = istore.workspace()
    loaded, _, run_id = run_stages(istore, tmp_path, ws, rows, dated)
    old, new = person(istore.rows(ws), "old@example.com"), person(istore.rows(ws), "new@example.com")
    assert (old["created_at"], old["updated_at"]) == (datetime(2019, 3, 1, 9, 30), datetime(2021, 7, 4, 12, 0))
    assert new["created_at"] == new["updated_at"] == loaded.stamp
    undo_import(istore.engine, run_id, "tester")  # source dates are no "later edit"
    assert istore.rows(ws) == []

    loaded, _, first = run_stages(istore, tmp_path, ws, rows, dated)
    again = [dict(rows[0], First="Olga", **{"Date Added": "2020-01-01", "Last Changed": "2020-01-01"})]
    updated, _, second = run_stages(istore, tmp_path, ws, again, dated, duplicates="update")
    olga = person(istore.rows(ws), "old@example.com")
    assert updated.updated_rows == 1 and olga["first_name"] == "Olga"
    assert (olga["created_at"], olga["updated_at"]) == (datetime(2019, 3, 1, 9, 30), updated.stamp)  # kept; changed now
    with pytest.raises(RollbackError, match="1 created contacts record"):
        undo_import(istore.engine, first, "tester")  # the later update is an edit of a record it created


@pytest.mark.parametrize("import_store", ["postgresql"], indirect=True)  # SQLite has one writer at a time: ids never interleave
def test_rollback_deletes_only_the_ids_the_import_created_when_other_writers_take_ids_in_between(istore, tmp_path):
    """PostgreSQL hands out ids to every session at once, so a concurrent writer can take ids between
    an import's ids: the ledger keeps runs of ids, and rollback must leave the other writer's record."""
    ws = istore.workspace()
    with istore.engine.begin() as conn:  # every other id goes to "another session"
        conn.exec_driver_sql("ALTER SEQUENCE contacts_id_seq INCREMENT BY 2")
    try:
        loaded, _, run_id = run_stages(istore, tmp_path, ws, [{"Email": f"n{i}@example.com"} for i in range(5)], ROUTES)
    finally:
        with istore.engine.begin() as conn:
            conn.exec_driver_sql("ALTER SEQUENCE contacts_id_seq INCREMENT BY 1")
    ids = [r["id"] for r in istore.rows(ws)]
    assert loaded.created_rows == 5 and ids == list(range(ids[0], ids[0] + 10, 2))
    with istore.engine.begin() as conn:
        ws_id = conn.execute(sa.select(s.workspaces.c.id).where(s.workspaces.c.slug == ws)).scalar_one()
        conn.execute(sa.insert(s.contacts).values(id=ids[0] + 1, workspace_id=ws_id, email="other@example.com"))
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(s.import_created).where(s.import_created.c.run_id == run_id)).scalar_one()
            == 5
        )

    done = undo_import(istore.engine, run_id, "tester")

    assert done.deleted_rows == 5
    assert [(r["id"], r["email"]) for r in istore.rows(ws)] == [(ids[0] + 1, "other@example.com")]


def test_workspaces_are_isolated(istore, tmp_path):
    one = seed(istore, tmp_path, [EXISTING])
    two = istore.workspace()
    loaded, _, _ = run_stages(istore, tmp_path, two, [INCOMING], ROUTES, duplicates="update")

    assert loaded.created_rows == 1 and loaded.updated_rows == 0
    assert person(istore.rows(one), "ann@example.com")["first_name"] == "Ann"
    assert person(istore.rows(two), "ann@example.com")["first_name"] == "Anna"


# --- a killed load leaves nothing -----------------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from imports.stages import ImportStore, run_stages
    from ferry.store.engine import make_engine
    store = ImportStore(sys.argv[1], sys.argv[2], make_engine(sys.argv[2]))
    rows = [{"Email": f"p{i}@example.com", "First": "Crash", "Company": "Crashco"} for i in range(2000)]
    rows.append({"Email": "ann@example.com", "First": "Overwritten", "Company": "Crashco"})
    run_stages(store, Path(sys.argv[3]), sys.argv[5], rows, {"Email": "email", "First": "first_name", "Company": "company"},
               duplicates="update", merge="overwrite", create_missing_references=True)
""")


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row indexes", "indexes rebuilt"])
def test_a_load_killed_mid_transaction_changes_nothing_and_can_be_retried(istore, tmp_path, bulk):
    ws = seed(istore, tmp_path, [EXISTING])
    before = {t: istore.rows(ws, t) for t in ("contacts", "accounts")}
    ledger_before = [istore.count(t) for t in ("import_runs", "import_created_ranges", "import_images_contacts")]
    schema_before = table_schema(istore.engine, "contacts")
    marker = tmp_path / "paused"
    env = {**os.environ, "FERRY_IMPORT_PAUSE_AT": "merged", "FERRY_IMPORT_PAUSE_FILE": str(marker)}
    if bulk:  # paused after the indexes and foreign keys were dropped and rebuilt, before the commit
        env["FERRY_IMPORT_BULK_MIN_ROWS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, istore.kind, istore.url, str(tmp_path), str(Path(__file__).parents[1]), ws],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "the load never reached its pause point"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # after every INSERT and UPDATE of the load, before its COMMIT
    proc.wait(timeout=30)

    assert {t: istore.rows(ws, t) for t in ("contacts", "accounts")} == before
    assert [istore.count(t) for t in ("import_runs", "import_created_ranges", "import_images_contacts")] == ledger_before
    assert table_schema(istore.engine, "contacts") == schema_before

    rows = [{"Email": f"p{i}@example.com", "First": "Crash", "Company": "Crashco"} for i in range(2000)]
    rows.append({"Email": "ann@example.com", "First": "Overwritten", "Company": "Crashco"})
    retried, _, _ = run_stages(
        istore,
        tmp_path,
        ws,
        rows,
        {"Email": "email", "First": "first_name", "Company": "company"},
        duplicates="update",
        merge="overwrite",
        create_missing_references=True,
    )
    assert (retried.created_rows, retried.updated_rows, retried.created_references) == (2000, 1, {"accounts": 1})


# --- large first loads: indexes rebuilt, not maintained row by row ------------------------------------------


def table_schema(engine: sa.Engine, table: str) -> dict:
    """What the database says ``table``'s indexes, unique constraints and foreign keys are."""
    found = sa.inspect(engine)
    return {
        "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)),
        "unique": sorted((u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)),
        "foreign": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"]) for f in found.get_foreign_keys(table)),
    }


@pytest.fixture
def bulk_threshold(monkeypatch):
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_IMPORT_BULK_MIN_ROWS", "300")
    reload_settings()
    yield 300
    monkeypatch.delenv("FERRY_IMPORT_BULK_MIN_ROWS")
    reload_settings()


@contextlib.contextmanager
def statements_of(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL ``engine`` runs while the ``with`` body runs."""
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_rest) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def test_a_large_first_load_rebuilds_the_indexes_and_every_constraint_still_holds(istore, tmp_path, bulk_threshold):
    schema_before = table_schema(istore.engine, "contacts")
    ws = istore.workspace(("Acme",))
    rows = [{"Email": f"bulk{i}@example.com", "First": "B", "Company": "Acme"} for i in range(bulk_threshold + istore.count("contacts"))]
    rows.append({"Email": "Bulk1@example.com ", "First": "Again", "Company": "Acme"})  # an in-file duplicate, folded
    with statements_of(istore.engine) as statements:
        loaded, _, run_id = run_stages(
            istore, tmp_path, ws, rows, {"Email": "email", "First": "first_name", "Company": "company"}, duplicates="update"
        )
    assert any(sql.startswith("DROP INDEX") for sql in statements), "the bulk path did not run"
    assert (loaded.created_rows, loaded.skipped_rows) == (len(rows) - 1, 1)
    assert table_schema(istore.engine, "contacts") == schema_before
    loaded_rows = istore.rows(ws)
    acme = istore.rows(ws, "accounts")[0]["id"]
    assert {r["company_id"] for r in loaded_rows} == {acme}
    with pytest.raises(sa.exc.IntegrityError), istore.engine.begin() as conn:  # the rebuilt unique constraint holds
        conn.execute(sa.insert(s.contacts).values(workspace_id=loaded_rows[0]["workspace_id"], email="bulk0@example.com"))

    done = undo_import(istore.engine, run_id, "tester")
    assert done.deleted_rows == len(rows) - 1 and istore.rows(ws) == []


def test_a_large_load_into_a_fuller_table_keeps_its_indexes(istore, tmp_path, bulk_threshold):
    seed(istore, tmp_path, [{"Email": f"held{i}@example.com"} for i in range(bulk_threshold * 2)], {"Email": "email"})
    ws = istore.workspace()
    with statements_of(istore.engine) as statements:
        loaded, _, _ = run_stages(istore, tmp_path, ws, [{"Email": f"n{i}@example.com"} for i in range(bulk_threshold)], {"Email": "email"})
    assert loaded.created_rows == bulk_threshold
    assert not any(sql.startswith("DROP INDEX") for sql in statements)


def test_a_re_sync_of_most_of_the_table_rebuilds_the_indexes_and_rolls_back_exactly(istore, tmp_path, bulk_threshold):
    schema_before = table_schema(istore.engine, "contacts")
    n = max(bulk_threshold, istore.count("contacts") + 1)  # then these records are over half the table
    ws = seed(
        istore, tmp_path, [{"Email": f"sync{i}@example.com", "First": "Old"} for i in range(n)], {"Email": "email", "First": "first_name"}
    )
    before = istore.rows(ws)
    with statements_of(istore.engine) as statements:
        loaded, _, run_id = run_stages(
            istore,
            tmp_path,
            ws,
            [{"Email": f"SYNC{i}@example.com", "First": "New"} for i in range(n)],
            {"Email": "email", "First": "first_name"},
            duplicates="update",
            merge="overwrite",
        )
    assert any(sql.startswith("DROP INDEX") for sql in statements), "the bulk path did not run"
    assert loaded.updated_rows == n and {r["first_name"] for r in istore.rows(ws)} == {"New"}
    assert table_schema(istore.engine, "contacts") == schema_before

    undo_import(istore.engine, run_id, "tester")
    assert istore.rows(ws) == before


@pytest.mark.parametrize("work_mem", ["64MB", "8MB", ""])
def test_the_load_transaction_sorts_in_the_work_mem_ferry_is_given(istore, tmp_path, monkeypatch, work_mem):
    """PostgreSQL: FERRY_IMPORT_WORK_MEM for the import's own transaction (empty: the server's); other sessions keep theirs."""
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_IMPORT_WORK_MEM", work_mem)
    reload_settings()
    seen: list[str] = []

    def during_load(_conn, cursor, statement, *_rest) -> None:
        if statement.lstrip().startswith("INSERT INTO import_runs"):  # the load's first write, inside its transaction
            seen.append(cursor.connection.execute("SHOW work_mem").fetchone()[0])

    ws = istore.workspace(("Acme",))
    if istore.engine.dialect.name == "postgresql":
        sa.event.listen(istore.engine, "after_cursor_execute", during_load)
    try:
        loaded, _, _ = run_stages(istore, tmp_path, ws, [{"Email": "mem@example.com"}], {"Email": "email"})
    finally:
        if istore.engine.dialect.name == "postgresql":
            sa.event.remove(istore.engine, "after_cursor_execute", during_load)
        monkeypatch.delenv("FERRY_IMPORT_WORK_MEM")
        reload_settings()
    assert loaded.created_rows == 1
    if istore.engine.dialect.name == "postgresql":
        with istore.engine.connect() as conn:
            server = conn.exec_driver_sql("SHOW work_mem").scalar_one()
        assert seen == [work_mem or server]
        assert server != "64MB"  # the setting ended with the transaction


def test_a_work_mem_that_is_not_a_size_is_refused():
    from pydantic import ValidationError

    from ferry.settings import FerrySettings

    with pytest.raises(ValidationError, match="import_work_mem"):
        FerrySettings(import_work_mem="64MB'; DROP TABLE contacts; --")
