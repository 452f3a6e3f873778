"""Idempotency keys for the POSTs that start work: the first answer is kept and replayed for 24 hours.

A client that retries ``POST /v1/exports`` with the same ``Idempotency-Key``
(after a timeout, a dropped connection) must not start a second run. The
HTTP API claims the key before it does anything (:func:`claim`):

* a new key is claimed (``running``) and the request goes ahead; its answer is
  kept (:func:`complete`) when it succeeded (2xx JSON), else the claim is
  released (:func:`release`), so a retry of a failed request runs again;
* the same key with the same request replays the kept answer;
* the same key with another request (method, path or body) is a mismatch (422);
* the same key while the first request is still being answered is in flight
  (409), unless that claim is older than ``ABANDONED_AFTER`` (its process died):
  then it is taken over; Prefect's own idempotency key, which the API passes
  to ``run_deployment``, still stops a second run of the same key.

Keys are scoped per caller (the digest of the API key presented, never the
key), so two callers cannot collide or read each other's answers. Rows older
than ``KEEP_FOR`` are ignored and purged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ferry.store.schema import api_idempotency
from ferry.workspaces import to_store, utc

KEEP_FOR = timedelta(hours=24)
#: A claim still ``running`` after this long belonged to a process that died.
ABANDONED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    """What :func:`claim` found: go ahead (``new``), ``replay`` the kept answer, ``in_flight`` (409) or ``mismatch`` (422)."""

    outcome: Literal["new", "replay", "in_flight", "mismatch"]
    status_code: int | None = None
    response: dict[str, Any] | None = None


def fingerprint(method: str, path: str, body: bytes) -> str:
    """The request's identity: method, path and body (JSON compared by value, so key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def claim(engine: Engine, scope: str, key: str, request_fingerprint: str, now: datetime | None = None) -> Claim:
    """Claim ``key`` for this request, or say why not (see the module docstring)."""
    now = now or datetime.now(UTC)
    row = {"scope": scope, "idempotency_key": key, "fingerprint": request_fingerprint, "state": "running", "created_at": to_store(now)}
    with engine.begin() as conn:
        conn.execute(delete(api_idempotency).where(api_idempotency.c.created_at < to_store(now - KEEP_FOR)))
    try:
        with engine.begin() as conn:
            conn.execute(insert(api_idempotency).values(**row))
        return Claim("new")
    except IntegrityError:
        pass
    with engine.begin() as conn:
        found = conn.execute(select(api_idempotency).where(_this(scope, key))).mappings().first()
        if found is None:  # purged between the insert and the read: try once more
            conn.execute(insert(api_idempotency).values(**row))
            return Claim("new")
        if found["fingerprint"] != request_fingerprint:
            return Claim("mismatch")
        if found["state"] == "done":
            return Claim("replay", found["status_code"], found["response"])
        if now - utc(found["created_at"]) < ABANDONED_AFTER:
            return Claim("in_flight")
        conn.execute(update(api_idempotency).where(_this(scope, key)).values(created_at=to_store(now)))
        return Claim("new")


def complete(engine: Engine, scope: str, key: str, status_code: int, response: dict[str, Any]) -> None:
    """Keep the answer to a claimed key (``response``: the headers and JSON body to replay)."""
    with engine.begin() as conn:
        conn.execute(
            update(api_idempotency)
            .where(_this(scope, key))
            .values(state="done", status_code=status_code, response=response, completed_at=to_store(datetime.now(UTC)))
        )


def release(engine: Engine, scope: str, key: str) -> None:
    """Give a claimed key up (its request failed): a retry runs again."""
    with engine.begin() as conn:
        conn.execute(delete(api_idempotency).where(_this(scope, key), api_idempotency.c.state == "running"))


def _this(scope: str, key: str):
    return (api_idempotency.c.scope == scope) & (api_idempotency.c.idempotency_key == key)
