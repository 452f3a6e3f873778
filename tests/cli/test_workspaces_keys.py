"""``ferry workspaces`` and ``ferry keys`` end to end through typer's CliRunner, on both backends.

The JSON printed is a contract users' scripts read: shapes are compared
exactly. Bad parameters exit 2 with every problem on stderr; a key is printed
once, and never by ``list``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from conftest import Store
from ferry_cli import ferry, ferry_json

from ferry.keys import authenticate


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cli_store(request, tmp_path_factory) -> Store:
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('cli-ws') / 'ferry.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = get_engine(url)
    upgrade(engine)
    return Store(request.param, url, engine)


@pytest.fixture
def active(cli_store) -> Store:
    cli_store.activate()
    return cli_store


def fresh(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_workspaces_create_list_delete(active):
    slug = fresh()

    created = ferry_json("workspaces", "create", slug, "--display-name", "Acme Corp")
    listed = ferry_json("workspaces", "list")

    assert set(created) == {"slug", "displayName", "createdAt"}
    assert created["slug"] == slug and created["displayName"] == "Acme Corp"
    assert datetime.fromisoformat(created["createdAt"]).tzinfo is not None
    assert created in listed
    plain = ferry("workspaces", "list")
    assert plain.exit_code == 0 and slug in plain.stdout

    refused = ferry("workspaces", "delete", slug)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert created in ferry_json("workspaces", "list")

    deleted = ferry("workspaces", "delete", slug, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert f"Deleted workspace {slug}" in deleted.stdout
    assert slug not in {w["slug"] for w in ferry_json("workspaces", "list")}


def test_workspace_delete_json_counts_rows_per_table(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)
    ferry_json("keys", "create", "--workspace", slug, "--role", "viewer", "--name", "x")

    result = ferry_json("workspaces", "delete", slug, "--yes")

    assert result["workspace"] == slug and result["deleted"]["api_keys"] == 1 and result["deleted"]["workspaces"] == 1


def test_bad_workspace_names_exit_2_naming_the_rule(active):
    result = ferry("workspaces", "create", "Not_A_Slug")

    assert result.exit_code == 2 and result.stdout == ""
    assert "slug='Not_A_Slug'" in result.stderr and "lower-case letters, digits and dashes" in result.stderr


def test_an_existing_workspace_exits_2(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)

    result = ferry("workspaces", "create", slug)

    assert result.exit_code == 2 and "exists already" in result.stderr


def test_deleting_an_unknown_workspace_names_the_command_that_creates_one(active):
    result = ferry("workspaces", "delete", fresh("nope"), "--yes")

    assert result.exit_code == 2 and "ferry workspaces create NAME" in result.stderr and "ferry db seed --workspace NAME" in result.stderr


def test_a_busy_workspace_is_refused_and_kept(active):
    from prefect import get_client
    from prefect.states import Running

    from flows.export import export_data

    slug = fresh()
    ferry_json("workspaces", "create", slug)
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(export_data, parameters={"request": {"workspace": slug, "resource": "contacts"}}, state=Running())
        try:
            result = ferry("workspaces", "delete", slug, "--yes")
        finally:
            client.delete_flow_run(run.id)

    assert result.exit_code == 2 and "in flight" in result.stderr
    assert slug in {w["slug"] for w in ferry_json("workspaces", "list")}


def test_keys_create_prints_the_key_once_in_the_contracts_shape(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)

    created = ferry_json("keys", "create", "--workspace", slug, "--role", "operator", "--name", "crm-sync", "--expires-days", "30")

    assert set(created) == {"id", "key", "workspace", "role", "expiresAt"}
    assert (created["workspace"], created["role"]) == (slug, "operator")
    assert created["key"].startswith(f"ferry_{created['id']}_")
    principal = authenticate(active.engine, created["key"])
    assert principal.key_id == created["id"] and principal.workspace == slug and principal.role == "operator"
    listed = ferry("keys", "list", "--workspace", slug, "--json")
    assert created["key"] not in listed.stdout
    (shown,) = json.loads(listed.stdout)
    assert set(shown) == {"id", "workspace", "name", "role", "createdAt", "expiresAt", "lastUsedAt", "revokedAt"}
    assert shown["id"] == created["id"] and shown["expiresAt"] == created["expiresAt"] and shown["lastUsedAt"] is not None


def test_keys_create_without_json_prints_only_the_key_on_stdout(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)

    result = ferry("keys", "create", "--workspace", slug, "--role", "viewer", "--name", "shell")

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert authenticate(active.engine, key).role == "viewer"
    assert "not shown again" in result.stderr and key not in result.stderr
    table = ferry("keys", "list", "--workspace", slug)
    assert table.exit_code == 0 and key.split("_")[1] in table.stdout and key not in table.stdout


def test_bad_key_parameters_exit_2_listing_every_problem(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)

    result = ferry("keys", "create", "--workspace", slug, "--role", "owner", "--name", " ", "--expires-days", "0", "--json")

    assert result.exit_code == 2 and result.stdout == ""
    assert "3 invalid parameter(s)" in result.stderr
    assert "role='owner'" in result.stderr and "name=' '" in result.stderr and "expires_days=0" in result.stderr
    assert ferry_json("keys", "list", "--workspace", slug) == []
    unknown = ferry("keys", "create", "--workspace", fresh("nope"), "--role", "viewer", "--name", "n")
    assert unknown.exit_code == 2 and "ferry workspaces create NAME" in unknown.stderr


def test_keys_rotate_and_revoke(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)
    old = ferry_json("keys", "create", "--workspace", slug, "--role", "admin", "--name", "ops")

    new = ferry_json("keys", "rotate", old["id"], "--grace-hours", "2")

    assert set(new) == {"id", "key", "workspace", "role", "expiresAt"}
    assert (new["workspace"], new["role"]) == (slug, "admin") and new["id"] != old["id"]
    assert authenticate(active.engine, new["key"]) is not None and authenticate(active.engine, old["key"]) is not None  # grace
    listed = {k["id"]: k for k in ferry_json("keys", "list", "--workspace", slug)}
    assert {k["name"] for k in listed.values()} == {"ops"}
    old_expiry = datetime.fromisoformat(listed[old["id"]]["expiresAt"])
    assert (old_expiry - datetime.fromisoformat(listed[new["id"]]["createdAt"])).total_seconds() == 2 * 3600

    revoked = ferry("keys", "revoke", old["id"])
    assert revoked.exit_code == 0 and f"Revoked key {old['id']}" in revoked.stdout
    assert authenticate(active.engine, old["key"]) is None and authenticate(active.engine, new["key"]) is not None
    assert ferry_json("keys", "revoke", new["id"])["revokedAt"] is not None
    assert authenticate(active.engine, new["key"]) is None


def test_unknown_key_ids_exit_2(active):
    for command in (("keys", "revoke", "nosuchkey000"), ("keys", "rotate", "nosuchkey000")):
        result = ferry(*command)
        assert result.exit_code == 2 and "No API key with id 'nosuchkey000'" in result.stderr


def test_a_negative_grace_exits_2(active):
    slug = fresh()
    ferry_json("workspaces", "create", slug)
    key = ferry_json("keys", "create", "--workspace", slug, "--role", "viewer", "--name", "g")

    result = ferry("keys", "rotate", key["id"], "--grace-hours", "-1")

    assert result.exit_code == 2 and "grace_hours=-1" in result.stderr


@pytest.mark.parametrize("name", ["acme corp", "..", "../x", "a/b", "Acme", "acme\n"])
def test_names_that_would_collide_or_climb_out_are_refused(active, name):
    """Issue 15: ``acme corp`` would render to ``acme-corp``'s export path, ``..`` out of it."""
    result = ferry("workspaces", "create", name)

    assert result.exit_code == 2 and "lower-case letters, digits and dashes" in result.stderr
