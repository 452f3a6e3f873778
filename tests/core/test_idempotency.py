"""Idempotency keys in the store: claimed once, the first answer replayed, another body refused, a dead claim taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry import idempotency
from ferry.store.engine import make_engine
from ferry.store.migrate import upgrade

BODY = b'{"resource": "events", "fields": ["type"]}'


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    return engine


def _print(body: bytes = BODY, path: str = "/v1/exports") -> str:
    return idempotency.fingerprint("POST", path, body)


def test_a_key_is_claimed_once_and_its_answer_replayed(engine):
    assert idempotency.claim(engine, "key:a", "k1", _print()).outcome == "new"
    assert idempotency.claim(engine, "key:a", "k1", _print()).outcome == "in_flight"
    idempotency.complete(engine, "key:a", "k1", 202, {"headers": {"location": "/v1/runs/1"}, "body": {"id": "1"}})
    replay = idempotency.claim(engine, "key:a", "k1", _print(b'{"fields":["type"],"resource":"events"}'))
    assert (replay.outcome, replay.status_code, replay.response["body"]) == ("replay", 202, {"id": "1"})


def test_another_body_or_path_with_the_same_key_is_a_mismatch(engine):
    idempotency.claim(engine, "key:a", "k1", _print())
    assert idempotency.claim(engine, "key:a", "k1", _print(b'{"resource": "contacts"}')).outcome == "mismatch"
    assert idempotency.claim(engine, "key:a", "k1", _print(path="/v1/imports")).outcome == "mismatch"


def test_keys_are_scoped_per_caller(engine):
    idempotency.claim(engine, "key:a", "k1", _print())
    assert idempotency.claim(engine, "key:b", "k1", _print()).outcome == "new"


def test_a_released_key_runs_again(engine):
    idempotency.claim(engine, "key:a", "k1", _print())
    idempotency.release(engine, "key:a", "k1")
    assert idempotency.claim(engine, "key:a", "k1", _print(b"{}")).outcome == "new"


def test_an_abandoned_claim_is_taken_over_and_old_answers_expire(engine):
    then = datetime.now(UTC) - timedelta(minutes=11)
    idempotency.claim(engine, "key:a", "running", _print(), now=then)
    assert idempotency.claim(engine, "key:a", "running", _print()).outcome == "new"
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    idempotency.claim(engine, "key:a", "done", _print(), now=long_ago)
    idempotency.complete(engine, "key:a", "done", 202, {"body": {"id": "old"}})
    assert idempotency.claim(engine, "key:a", "done", _print(b"{}")).outcome == "new"  # kept 24 h, then forgotten
