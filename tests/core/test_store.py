"""The seeded test store itself: what the export tests take for granted, checked once per backend.

If these fail, the export tests' oracles are wrong too: the schema must be what
the migrations build, the seed must give both workspaces the configured rows, and
seeded references must stay inside their workspace (else an isolation test
could pass or fail for the wrong reason).
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import SMALL
from sqlalchemy import text

from ferry.store.schema import metadata


def scalar(store, query: str, **params):
    with store.engine.connect() as conn:
        return conn.execute(text(query), params).scalar_one()


def test_migrations_build_exactly_the_schema_the_code_declares(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)

    assert diff == []


@pytest.mark.parametrize("workspace", ["acme", "globex"])
def test_both_workspaces_hold_the_configured_rows(store, workspace):
    def count(table: str) -> int:
        return scalar(store, f"SELECT count(*) FROM {table} t JOIN workspaces w ON w.id = t.workspace_id WHERE w.slug = :s", s=workspace)

    assert count("contacts") == SMALL["contacts"]
    assert count("events") == SMALL["events"]
    assert count("products") == SMALL["products"]
    assert count("accounts") == SMALL["contacts"] // 20
    assert count("lists") == 3 and count("segments") == 2 and count("catalogs") == 2 and count("schemas") == 2
    assert count("list_memberships") > 0 and count("variants") > 0 and count("localized_values") == SMALL["products"] * 6


REFERENCES = [
    ("contacts", "company_id", "accounts"),
    ("events", "contact_id", "contacts"),
    ("survey_responses", "contact_id", "contacts"),
    ("list_memberships", "list_id", "lists"),
    ("list_memberships", "contact_id", "contacts"),
    ("products", "catalog_id", "catalogs"),
    ("products", "schema_id", "schemas"),
    ("variants", "product_id", "products"),
    ("localized_values", "record_id", "products"),
]


@pytest.mark.parametrize(("table", "fk", "target"), REFERENCES, ids=[f"{t}.{f}" for t, f, _ in REFERENCES])
def test_seeded_references_stay_in_their_workspace(store, table, fk, target):
    total = scalar(store, f"SELECT count(*) FROM {table} WHERE {fk} IS NOT NULL")
    crossing = scalar(store, f"SELECT count(*) FROM {table} t JOIN {target} r ON r.id = t.{fk} WHERE r.workspace_id <> t.workspace_id")

    assert total > 0 and crossing == 0


def test_the_two_workspaces_share_list_and_segment_keys(store):
    # Same keys in both workspaces: an export that looked lists or segments up by key alone would mix them.
    shared = scalar(store, "SELECT count(*) FROM lists a JOIN lists b ON a.key = b.key AND a.workspace_id < b.workspace_id")
    assert shared == 3
    assert scalar(store, "SELECT count(*) FROM segments a JOIN segments b ON a.key = b.key AND a.workspace_id < b.workspace_id") == 2
