"""API keys on both backends (create, authenticate, revoke, expire, rotate, last use) and the role table.

Keys are checked against a real store per backend; the root conftest's seeded
stores are read-only, so each test gets a fresh workspace in a migrated store
of this module. "No database hit" is observed, not assumed: every statement
the engine runs is counted.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ferry import keys, roles
from ferry.errors import KeyNotFoundError, ParameterError, StoreError, UnknownWorkspaceError
from ferry.keys import ApiKey, Principal, authenticate, create_key, list_keys, revoke_key, rotate_key
from ferry.store.schema import api_keys
from ferry.workspaces import create_workspace

KEY = re.compile(r"ferry_[0-9a-z]{12}_[0-9A-Za-z]{39}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory) -> sa.Engine:
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('keys') / 'ferry.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = get_engine(url)
    upgrade(engine)
    return engine


@pytest.fixture
def workspace(engine) -> str:
    slug = f"keys-{uuid.uuid4().hex[:8]}"
    create_workspace(engine, slug)
    return slug


class Statements:
    """The SQL statements an engine runs while counting."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.seen = engine, []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def updates(self) -> int:
        return sum(1 for s in self.seen if s.lstrip().upper().startswith("UPDATE"))


def _row(engine, key_id: str):
    with engine.connect() as conn:
        return conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()


def _with_secret(key: str, secret: str) -> str:
    """Same id, another secret, a valid checksum: passes every check but the digest."""
    body = key[: len("ferry_") + 13] + secret
    return body + keys._checksum(body)


# --- format and storage -----------------------------------------------------------------------


def test_a_key_has_the_scannable_format_and_only_its_digest_is_stored(engine, workspace):
    key, secret = create_key(engine, workspace, "viewer", "crm-sync")

    assert KEY.fullmatch(secret) and secret.startswith(f"ferry_{key.id}_")
    assert keys.parse_key(secret) == key.id
    row = _row(engine, key.id)
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    secret_part = secret.split("_")[2][: keys.SECRET_LENGTH]
    assert not any(isinstance(v, str) and (secret_part in v or secret in v) for v in row)
    assert 62**keys.SECRET_LENGTH >= 2**keys.SECRET_BITS >= 2**190
    assert key.workspace == workspace and key.role == "viewer" and key.name == "crm-sync"
    assert key.expires_at - key.created_at == timedelta(days=90) and key.created_at.tzinfo is not None


def test_keys_are_random():
    drawn = {keys.new_key()[1] for _ in range(200)}
    assert len(drawn) == 200 and len({k.split("_")[1] for k in drawn}) == 200


def test_a_valid_key_authenticates_as_its_workspace_and_role(engine, workspace):
    key, secret = create_key(engine, workspace, "operator", "nightly")

    principal = authenticate(engine, secret)

    with engine.connect() as conn:
        ws_id = conn.execute(sa.text("SELECT id FROM workspaces WHERE slug = :s"), {"s": workspace}).scalar_one()
    assert principal == Principal(key_id=key.id, name="nightly", workspace=workspace, workspace_id=ws_id, role="operator")


def test_a_wrong_secret_or_an_unknown_id_is_refused(engine, workspace):
    _, secret = create_key(engine, workspace, "admin", "ops")
    forged = _with_secret(secret, "A" * keys.SECRET_LENGTH)

    assert keys.parse_key(forged) is not None  # well-formed, checksum holds
    assert authenticate(engine, forged) is None
    assert authenticate(engine, keys.new_key()[1]) is None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "ferry_",
        "Bearer x",
        None,
        12,
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    ],
)
def test_malformed_keys_are_refused_without_asking_the_store(engine, presented):
    with Statements(engine) as statements:
        assert authenticate(engine, presented) is None
    assert statements.seen == []


def test_a_typo_fails_the_checksum_without_asking_the_store(engine, workspace):
    _, secret = create_key(engine, workspace, "viewer", "typo")
    position = len("ferry_") + 20
    typo = secret[:position] + ("b" if secret[position] != "b" else "c") + secret[position + 1 :]
    swapped_id = secret[:6] + secret[7] + secret[6] + secret[8:]

    with Statements(engine) as statements:
        assert authenticate(engine, typo) is None
        assert authenticate(engine, secret[:-1]) is None
        assert swapped_id == secret or authenticate(engine, swapped_id) is None
    assert statements.seen == []


def test_a_bad_key_needs_no_store_at_all_but_a_good_one_says_the_store_is_down():
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    _, candidate = keys.new_key()

    assert authenticate(unreachable, candidate[:-1] + ("0" if candidate[-1] != "0" else "1")) is None
    with pytest.raises(StoreError):
        authenticate(unreachable, candidate)


# --- revoke, expire, rotate ------------------------------------------------------------------------


def test_a_revoked_key_is_refused_and_revoking_again_keeps_the_first_time(engine, workspace):
    key, secret = create_key(engine, workspace, "admin", "leaked")

    revoked = revoke_key(engine, key.id)
    again = revoke_key(engine, key.id)

    assert authenticate(engine, secret) is None
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at and again.state() == "revoked"


def test_a_key_works_until_it_expires(engine, workspace):
    key, secret = create_key(engine, workspace, "viewer", "short", expires_days=1)

    assert authenticate(engine, secret, now=key.expires_at - timedelta(seconds=1)) is not None
    assert authenticate(engine, secret, now=key.expires_at) is None
    assert authenticate(engine, secret, now=key.expires_at + timedelta(days=30)) is None
    assert key.state(now=key.expires_at) == "expired"


def test_a_key_without_expiry_never_expires(engine, workspace):
    key, secret = create_key(engine, workspace, "viewer", "forever", expires_days=None)

    assert key.expires_at is None
    assert authenticate(engine, secret, now=datetime.now(UTC) + timedelta(days=3650)) is not None


def test_rotation_issues_a_like_key_and_the_old_one_works_until_the_grace_ends(engine, workspace):
    old, old_secret = create_key(engine, workspace, "operator", "etl", expires_days=30)

    new, new_secret = rotate_key(engine, old.id, grace_hours=24)

    assert new.id != old.id and new_secret != old_secret and KEY.fullmatch(new_secret)
    assert (new.workspace, new.role, new.name) == (workspace, "operator", "etl")
    assert new.expires_at - new.created_at == timedelta(days=30)
    assert authenticate(engine, new_secret).key_id == new.id
    rotated_at = new.created_at
    assert authenticate(engine, old_secret, now=rotated_at + timedelta(hours=23)).key_id == old.id
    assert authenticate(engine, old_secret, now=rotated_at + timedelta(hours=24, seconds=1)) is None
    assert authenticate(engine, new_secret, now=rotated_at + timedelta(hours=25)).key_id == new.id
    listed = {k.id: k for k in list_keys(engine, workspace)}
    assert listed[old.id].expires_at == rotated_at + timedelta(hours=24) and listed[new.id].revoked_at is None


def test_rotation_keeps_an_old_key_that_expires_sooner_than_the_grace(engine, workspace):
    old, _ = create_key(engine, workspace, "viewer", "soon", expires_days=1)

    rotate_key(engine, old.id, grace_hours=48)

    assert {k.id: k for k in list_keys(engine, workspace)}[old.id].expires_at == old.expires_at


def test_a_revoked_key_cannot_be_rotated_back_to_life(engine, workspace):
    key, _ = create_key(engine, workspace, "admin", "gone")
    revoke_key(engine, key.id)

    with pytest.raises(ParameterError) as info:
        rotate_key(engine, key.id)

    assert [p.field for p in info.value.problems] == ["key_id"]
    assert [k.id for k in list_keys(engine, workspace)] == [key.id]


# --- last use -----------------------------------------------------------------------------


def test_last_use_is_written_at_most_once_a_minute(engine, workspace):
    key, secret = create_key(engine, workspace, "viewer", "busy")
    t0 = key.created_at + timedelta(minutes=5)

    with Statements(engine) as statements:
        for seconds in (0, 1, 30, 59):
            assert authenticate(engine, secret, now=t0 + timedelta(seconds=seconds)) is not None
    assert statements.updates() == 1
    assert list_keys(engine, workspace)[0].last_used_at == t0

    with Statements(engine) as statements:
        authenticate(engine, secret, now=t0 + timedelta(seconds=61))
        authenticate(engine, secret, now=t0 + timedelta(seconds=90))
    assert statements.updates() == 1
    assert list_keys(engine, workspace)[0].last_used_at == t0 + timedelta(seconds=61)


def test_a_store_locked_by_a_long_sqlite_write_still_authenticates(tmp_path):
    """SQLite has one write lock (an import's transaction holds it): authenticating must not wait for it."""
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'ferry.db'}")
    upgrade(engine)
    workspace = "locked"
    create_workspace(engine, workspace)
    key, secret = create_key(engine, workspace, "viewer", "during-import")
    writer = sqlite3.connect(engine.url.database, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert authenticate(engine, secret) is not None
        assert time.monotonic() - started < 5
    finally:
        writer.rollback()
        writer.close()
    assert list_keys(engine, workspace)[0].last_used_at is None  # recorded on a later request instead
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


# --- listing and parameters ------------------------------------------------------------------------


def test_listing_never_shows_a_key_or_its_digest(engine, workspace):
    made = [create_key(engine, workspace, role, f"k-{role}") for role in ("viewer", "operator", "admin")]
    revoke_key(engine, made[0][0].id)

    listed = list_keys(engine, workspace)

    text = json.dumps([k.to_json() for k in listed])
    assert {k.id for k in listed} == {k.id for k, _ in made}
    for _, secret in made:
        assert secret not in text and secret.split("_")[2][:20] not in text and hashlib.sha256(secret.encode()).hexdigest() not in text
    assert set(listed[0].to_json()) == {"id", "workspace", "name", "role", "createdAt", "expiresAt", "lastUsedAt", "revokedAt"}
    assert set(ApiKey.model_fields) == {"id", "workspace", "name", "role", "created_at", "expires_at", "last_used_at", "revoked_at"}
    assert {k.id: k.state() for k in listed} == {made[0][0].id: "revoked", made[1][0].id: "active", made[2][0].id: "active"}


def test_every_problem_with_a_new_key_is_listed_at_once(engine, workspace):
    with pytest.raises(ParameterError) as info:
        create_key(engine, workspace, "root", "  ", expires_days=0)

    assert [p.field for p in info.value.problems] == ["role", "name", "expires_days"]
    assert "viewer, operator, admin" in str(info.value)
    assert list_keys(engine, workspace) == []


def test_unknown_workspaces_and_key_ids_are_named(engine):
    with pytest.raises(UnknownWorkspaceError, match="ferry workspaces create NAME"):
        create_key(engine, "no-such-workspace", "viewer", "x")
    with pytest.raises(UnknownWorkspaceError):
        list_keys(engine, "no-such-workspace")
    with pytest.raises(KeyNotFoundError):
        revoke_key(engine, "nosuchkey000")
    with pytest.raises(KeyNotFoundError):
        rotate_key(engine, "nosuchkey000")


@pytest.mark.parametrize("grace", [-1, 721, True, "24"])
def test_the_grace_period_is_checked(engine, workspace, grace):
    key, _ = create_key(engine, workspace, "viewer", "g")

    with pytest.raises(ParameterError) as info:
        rotate_key(engine, key.id, grace_hours=grace)

    assert [p.field for p in info.value.problems] == ["grace_hours"]


# --- roles ------------------------------------------------------------------------------------


def test_each_role_may_do_everything_the_roles_below_it_may():
    assert roles.ROLES == ("viewer", "operator", "admin")
    for action in roles.PERMISSIONS:
        allowed = [roles.allows(role, action) for role in roles.ROLES]
        assert allowed == sorted(allowed), action  # once allowed, allowed for every higher role
        assert roles.allows("admin", action)
    for lower, higher in zip(roles.ROLES, roles.ROLES[1:]):
        assert all(roles.allows(higher, a) for a in roles.PERMISSIONS if roles.allows(lower, a))


def test_the_role_table_covers_the_issue():
    expected = {
        "admin": ["exports.create", "imports.create", "runs.rollback", "runs.download", "keys.manage", "audit.read"],
        "operator": ["export_jobs.write", "export_jobs.run"],
        "viewer": ["export_jobs.read", "runs.read"],
    }
    for role, actions in expected.items():
        for action in actions:
            assert roles.PERMISSIONS[action] == role
    assert not roles.allows("operator", "keys.manage") and roles.allows("operator", "runs.read")
    assert not roles.allows("viewer", "export_jobs.run") and roles.allows("viewer", "export_jobs.read")
    assert not roles.allows("admin", "no.such.action") and not roles.allows("root", "runs.read")


def test_the_role_matrix_renders_every_action():
    matrix = roles.role_matrix_markdown()
    lines = matrix.strip().splitlines()

    assert lines[0] == "| action | what it allows | viewer | operator | admin |"
    assert len(lines) == 2 + len(roles.PERMISSIONS)
    assert "| `runs.read` | list runs and read their records | ✓ | ✓ | ✓ |" in lines
    assert "| `keys.manage` | create, list, revoke and rotate API keys | – | – | ✓ |" in lines


def test_the_readme_shows_the_current_role_matrix():
    from ferry.docs import README

    assert roles.role_matrix_markdown() in README.read_text(), "README's role matrix is out of date: paste role_matrix_markdown()"
