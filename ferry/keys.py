"""API keys: create, list, revoke, rotate, and authenticate a presented key (the HTTP API's bearer tokens).

A key looks like GitHub's tokens, so secret scanners can recognise a leaked one:

    ferry_<key id: 12 of [0-9a-z]>_<secret: 33 of [0-9A-Za-z]><checksum: 6 of [0-9A-Za-z]>

* ``ferry_`` is a fixed prefix a scanner's pattern can anchor on.
* The key id is public (``ferry keys list`` shows it), so a presented key is
  looked up by id, not by scanning digests.
* The secret is 192 bits from :mod:`secrets`, in base62 (33 characters).
* The checksum is CRC32 of everything before it, in base62: a mistyped or
  truncated key is refused without touching the database, and a scanner can
  tell a real key from a random look-alike.

The store keeps only the SHA-256 of the whole key, compared with
:func:`hmac.compare_digest`; the key itself is shown once, when it is created
(or rotated in). ``last_used_at`` is written at most once a minute per key, so
a busy client costs no write per request.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from ferry.errors import KeyNotFoundError, ParameterError, Problem
from ferry.roles import ROLES, Role, is_role
from ferry.store.engine import workspace_id
from ferry.store.schema import api_keys, workspaces
from ferry.workspaces import store_errors, to_store, utc

PREFIX = "ferry_"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_ID_ALPHABET = string.digits + string.ascii_lowercase
KEY_ID_LENGTH = 12
SECRET_BITS = 192
SECRET_LENGTH = 33  # 62**33 > 2**192
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_PATTERN = re.compile(
    rf"{PREFIX}(?P<id>[0-9a-z]{{{KEY_ID_LENGTH}}})_(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<crc>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)

DEFAULT_EXPIRES_DAYS = 90
MAX_EXPIRES_DAYS = 3650
MAX_GRACE_HOURS = 720
NAME_MAX = 100
TOUCH_EVERY = timedelta(minutes=1)

KeyState = Literal["active", "expired", "revoked"]


@dataclass(frozen=True)
class Principal:
    """Who a presented key speaks for: the key, its workspace and its role (what the HTTP API authorises)."""

    key_id: str
    name: str
    workspace: str
    workspace_id: int
    role: Role


class ApiKey(BaseModel):
    """One API key as shown to people and scripts: never the secret or its digest. JSON names are camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    workspace: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def state(self, now: datetime | None = None) -> KeyState:
        """``revoked``, ``expired`` or ``active`` at ``now`` (the same rules :func:`authenticate` applies)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"


# --- the key format -------------------------------------------------------------------------


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, BASE62[0])


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_key() -> tuple[str, str]:
    """A fresh ``(key id, key)``."""
    key_id = "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    body = f"{PREFIX}{key_id}_{_base62(secrets.randbits(SECRET_BITS), SECRET_LENGTH)}"
    return key_id, body + _checksum(body)


def parse_key(presented: object) -> str | None:
    """The key id of a well-formed key whose checksum holds, else None (no database needed)."""
    if not isinstance(presented, str):
        return None
    match = KEY_PATTERN.fullmatch(presented)
    if match is None or not hmac.compare_digest(_checksum(presented[: match.start("crc")]), match["crc"]):
        return None
    return match["id"]


def digest(key: str) -> str:
    """What the store keeps of a key: the SHA-256 of all of it, in hex."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


# --- managing keys --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _check(role: object, name: object, expires_days: object) -> tuple[str, int | None]:
    """The name, stripped, and the lifetime in days; a ParameterError listing every problem at once."""
    problems = []
    if not isinstance(role, str) or not is_role(role):
        problems.append(Problem("role", role, f"use one of: {', '.join(ROLES)}"))
    clean = name.strip() if isinstance(name, str) else ""
    if not clean or len(clean) > NAME_MAX or any(ord(c) < 32 for c in clean):
        problems.append(Problem("name", name, f"give 1-{NAME_MAX} characters saying who or what uses the key, without control characters"))
    days_ok = expires_days is None or (
        isinstance(expires_days, int) and not isinstance(expires_days, bool) and 1 <= expires_days <= MAX_EXPIRES_DAYS
    )
    if not days_ok:
        problems.append(Problem("expires_days", expires_days, f"use whole days from 1 to {MAX_EXPIRES_DAYS}"))
    if problems:
        raise ParameterError(problems)
    return clean, expires_days


def _insert_key(conn, ws: int, role: str, name: str, created: datetime, expires_at: datetime | None) -> tuple[str, str]:
    """Store a new key's digest (a clash of 62-bit random ids fails on the primary key rather than sharing one)."""
    key_id, key = new_key()
    values = dict(id=key_id, workspace_id=ws, name=name, role=role, secret_sha256=digest(key), created_at=to_store(created))
    conn.execute(insert(api_keys).values(**values, expires_at=to_store(expires_at) if expires_at else None))
    return key_id, key


def create_key(engine: Engine, workspace: str, role: str, name: str, expires_days: int | None = DEFAULT_EXPIRES_DAYS) -> tuple[ApiKey, str]:
    """A new key of ``role`` for ``workspace``: the key as listed, and the key itself (shown once, never stored)."""
    name, expires_days = _check(role, name, expires_days)
    created = _now()
    expires_at = created + timedelta(days=expires_days) if expires_days is not None else None
    with store_errors(engine), engine.begin() as conn:
        key_id, key = _insert_key(conn, workspace_id(conn, workspace), role, name, created, expires_at)
    return ApiKey(id=key_id, workspace=workspace, name=name, role=role, created_at=created, expires_at=expires_at), key


_COLUMNS = (
    api_keys.c.id,
    workspaces.c.slug,
    api_keys.c.workspace_id,
    api_keys.c.name,
    api_keys.c.role,
    api_keys.c.secret_sha256,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)
_QUERY = select(*_COLUMNS).join(workspaces, workspaces.c.id == api_keys.c.workspace_id)


def _api_key(row) -> ApiKey:
    return ApiKey(
        id=row.id,
        workspace=row.slug,
        name=row.name,
        role=row.role,
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at),
        last_used_at=utc(row.last_used_at),
        revoked_at=utc(row.revoked_at),
    )


def _read(conn, key_id: str):
    row = conn.execute(_QUERY.where(api_keys.c.id == key_id)).first()
    if row is None:
        raise KeyNotFoundError(f"No API key with id {key_id!r}.", "List the workspace's keys with `ferry keys list --workspace W`.")
    return row


def list_keys(engine: Engine, workspace: str) -> list[ApiKey]:
    """The workspace's keys, oldest first, revoked and expired ones included (their times say so)."""
    with store_errors(engine), engine.connect() as conn:
        ws = workspace_id(conn, workspace)
        rows = conn.execute(_QUERY.where(api_keys.c.workspace_id == ws).order_by(api_keys.c.created_at, api_keys.c.id)).all()
    return [_api_key(row) for row in rows]


def revoke_key(engine: Engine, key_id: str) -> ApiKey:
    """Revoke key ``key_id`` at once (again: nothing changes, the first revocation's time stays)."""
    with store_errors(engine), engine.begin() as conn:
        _read(conn, key_id)
        conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=to_store(_now())))
        return _api_key(_read(conn, key_id))


def rotate_key(engine: Engine, key_id: str, grace_hours: float = 24) -> tuple[ApiKey, str]:
    """Replace key ``key_id``: a new key of the same workspace, role and name, and the old one expiring after ``grace_hours``.

    The grace period lets every client switch to the new key before the old
    one stops working (an old key that expires sooner keeps its expiry). The
    new key lives as long as the old one was given (its expiry minus its
    creation, in whole days), or forever if the old one never expired.
    """
    if isinstance(grace_hours, bool) or not isinstance(grace_hours, int | float) or not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise ParameterError([Problem("grace_hours", grace_hours, f"use 0 to {MAX_GRACE_HOURS} hours")])
    now = _now()
    with store_errors(engine), engine.begin() as conn:
        old = _read(conn, key_id)
        if old.revoked_at is not None:
            raise ParameterError([Problem("key_id", key_id, "the key is revoked; create a new one with `ferry keys create`")])
        old_expiry = utc(old.expires_at)
        new_expiry = None
        if old_expiry is not None:
            new_expiry = now + timedelta(days=max(1, math.ceil((old_expiry - utc(old.created_at)) / timedelta(days=1))))
        grace_end = now + timedelta(hours=grace_hours)
        if old_expiry is None or grace_end < old_expiry:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(expires_at=to_store(grace_end)))
        new_id, key = _insert_key(conn, old.workspace_id, old.role, old.name, now, new_expiry)
    return ApiKey(id=new_id, workspace=old.slug, name=old.name, role=old.role, created_at=now, expires_at=new_expiry), key


# --- authenticating a request ---------------------------------------------------------------


def authenticate(engine: Engine, presented: str, now: datetime | None = None) -> Principal | None:
    """Who ``presented`` speaks for, or None: malformed, bad checksum, unknown id, wrong secret, revoked or expired.

    A bad key never raises (an unreachable store does: that is no answer
    about the key). A malformed key or a bad checksum is refused before the
    store is asked. ``now`` (aware) is for tests and replays.
    """
    key_id = parse_key(presented)
    if key_id is None:
        return None
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with store_errors(engine), engine.connect() as conn:
        row = conn.execute(_QUERY.where(api_keys.c.id == key_id)).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, digest(presented)):
        return None
    if row.revoked_at is not None or not is_role(row.role):
        return None
    expires_at = utc(row.expires_at)
    if expires_at is not None and expires_at <= now:
        return None
    last_used = utc(row.last_used_at)
    if last_used is None or now - last_used >= TOUCH_EVERY:
        _touch(engine, key_id, now)
    return Principal(key_id=row.id, name=row.name, workspace=row.slug, workspace_id=row.workspace_id, role=row.role)


def _touch(engine: Engine, key_id: str, now: datetime) -> None:
    """Record the use; the condition keeps concurrent requests from writing more than once a minute.

    On SQLite a long import holds the one write lock for minutes: rather than
    keep a request waiting (or fail it), the use is then recorded next time.
    """
    stale = to_store(now - TOUCH_EVERY)
    statement = (
        update(api_keys)
        .where(api_keys.c.id == key_id, or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= stale))
        .values(last_used_at=to_store(now))
    )
    with store_errors(engine), engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        patience = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() if sqlite else None
        try:
            if sqlite:
                conn.exec_driver_sql("PRAGMA busy_timeout=250")
            conn.execute(statement)
            conn.commit()
        except OperationalError:
            if not sqlite:
                raise
            conn.rollback()  # the store is locked by a long write: the use is recorded on a later request
        finally:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(patience)}")
                conn.commit()
