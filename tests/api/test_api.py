"""The native /v1 API end to end, over HTTP against the live service (see conftest.py)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from servers.api import start_api
from servers.prefect import ferry_env
from sqlalchemy import text

RUN_TIMEOUT = 240


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["instance"] == response.headers["x-request-id"]
    return body


def test_health_openapi_and_docs_need_no_key(service):
    with service.client() as http:
        health = http.get("/v1/health")
        assert health.status_code == 200 and health.json()["prefect"]["ok"] and health.json()["store"]["ok"]
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/v1/exports", "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/download", "/v1/audit-events"} <= set(paths)
        assert http.get("/docs").status_code == 200
        assert "RateLimit" in health.headers and "RateLimit-Policy" in health.headers


def test_missing_bad_revoked_and_expired_keys_are_401(service):
    from ferry.keys import create_key, revoke_key

    revoked, revoked_secret = create_key(service.engine, "acme", "admin", "to revoke")
    revoke_key(service.engine, revoked.id)
    _, expiring_secret = create_key(service.engine, "acme", "admin", "to expire")
    with service.engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET expires_at = :t WHERE name = 'to expire'"),
            {"t": datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)},
        )
    for headers in ({}, {"x-api-key": "not-a-key"}, {"x-api-key": revoked_secret}, {"Authorization": f"Bearer {expiring_secret}"}):
        with service.client(**headers) as http:
            body = problem(http.get("/v1/runs"), 401)
            assert "WWW-Authenticate" in http.get("/v1/runs").headers
            assert revoked_secret not in str(body) and expiring_secret not in str(body)
    with service.client(Authorization=f"Bearer {service.keys['acme-viewer']}") as http:
        assert http.get("/v1/runs").status_code == 200


def test_roles_viewer_and_operator_cannot_export_or_read_the_audit_log(service):
    for role in ("viewer", "operator"):
        with service.client(f"acme-{role}") as http:
            body = problem(http.post("/v1/exports", json={"resource": "contacts"}), 403)
            assert "exports.create needs admin" in body["detail"]
            problem(http.get("/v1/audit-events"), 403)


def test_bad_requests_get_their_status_and_every_problem(service):
    with service.client("acme-admin") as http:
        problem(http.post("/v1/exports", content=b"{not json", headers={"content-type": "application/json"}), 400)
        problem(http.post("/v1/exports", content=b"resource=contacts", headers={"content-type": "text/plain"}), 415)
        body = problem(
            http.post("/v1/exports", json={"resource": "contacts", "format": "xlsxx", "fields": ["email", "nope"], "password": "hunter2"}),
            422,
        )
        fields = {e["field"] for e in body["errors"]}
        assert {"format", "password"} <= fields
        assert "hunter2" not in str(body)  # a secret-looking value is never echoed
        body = problem(http.post("/v1/exports", json={"resource": "contacts", "fields": ["email", "nope"]}), 422)
        assert any(e["field"].startswith("fields") and e["value"] == "nope" for e in body["errors"])
        problem(http.post("/v1/exports", json={"resource": "contacts", "workspace": "globex"}), 404)
        problem(http.get("/v1/runs/00000000-0000-0000-0000-000000000000"), 404)
        problem(http.get("/v1/runs/not-a-run"), 404)
        problem(http.get("/v1/runs", params={"cursor": "garbage"}), 422)


def test_export_poll_download_isolation_and_audit(service):
    with service.client("acme-admin") as http:
        started = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email", "first_name"], "format": "csv"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["Location"] == f"/v1/runs/{run_id}" and started.json()["links"]["self"] == f"/v1/runs/{run_id}"
        run = service.poll(http, run_id, RUN_TIMEOUT)
        assert run["status"] == "succeeded" and run["progress"] == 100 and run["kind"] == "export", run
        assert run["recordCount"] == 120 and run["fileSize"] > 0 and run["destinationPath"].endswith(".csv")
        assert run["downloadUrl"] and run["downloadUrlExpiresAt"]

        link = http.get(f"/v1/runs/{run_id}/download", params={"redirect": "false"}).json()
        downloaded = httpx.get(link["url"], timeout=30)  # no key: the signed URL is the permission
        assert downloaded.status_code == 200 and downloaded.content == Path(run["destinationPath"]).read_bytes()
        assert downloaded.content.decode().splitlines()[0] == '"email","first_name"'
        redirected = http.get(f"/v1/runs/{run_id}/download", follow_redirects=False)
        assert redirected.status_code == 302 and urlsplit(redirected.headers["location"]).path == f"/v1/files/{run_id}"

        tampered = link["url"].replace("signature=", "signature=0")[: len(link["url"])]
        assert httpx.get(tampered, timeout=30).status_code in (403, 422)
        query = parse_qs(urlsplit(link["url"]).query)
        expired = f"{service.url}/v1/files/{run_id}?expires={int(time.time()) - 5}&signature={query['signature'][0]}"
        problem(httpx.get(expired, timeout=30), 403)

        listed = http.get("/v1/runs", params={"kind": "export"}).json()["runs"]
        assert run_id in [r["id"] for r in listed]
        events = http.get("/v1/audit-events").json()["events"]
        starts = [e for e in events if e["action"] == "api.export.start" and e["runId"] == run_id]
        assert starts and starts[0]["actor"].startswith("key:") and starts[0]["details"]["role"] == "admin"
        assert starts[0]["payloadBytes"] > 0 and any(e["action"] == "api.export.download" for e in events)

    with service.client("acme-viewer") as http:  # a viewer sees the run, but gets no download
        seen = http.get(f"/v1/runs/{run_id}").json()
        assert seen["status"] == "succeeded" and seen["downloadUrl"] is None
        problem(http.get(f"/v1/runs/{run_id}/download"), 403)
    with service.client("globex-admin") as http:  # another workspace: as if the run did not exist
        problem(http.get(f"/v1/runs/{run_id}"), 404)
        problem(http.get(f"/v1/runs/{run_id}/download"), 404)
        assert run_id not in [r["id"] for r in http.get("/v1/runs").json()["runs"]]
        theirs = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"]}).json()["id"]
        assert service.poll(http, theirs, RUN_TIMEOUT)["status"] == "succeeded"
        file = Path(http.get(f"/v1/runs/{theirs}").json()["destinationPath"]).read_text()
    acme_emails = {
        r[0]
        for r in service.engine.connect().execute(
            text("SELECT c.email FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme'")
        )
    }
    assert not acme_emails & set(file.splitlines()[1:])  # globex's export holds no acme row


def test_the_same_idempotency_key_starts_one_run(service):
    with service.client("acme-admin", **{"Idempotency-Key": "nightly-2026-12-04"}) as http:
        first = http.post("/v1/exports", json={"resource": "events", "fields": ["type"]})
        again = http.post(
            "/v1/exports", content=b'{ "fields": ["type"], "resource": "events" }', headers={"content-type": "application/json"}
        )
        assert first.status_code == again.status_code == 202 and again.json() == first.json()  # the same JSON, in another order
        assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == first.headers["Location"]
        other = problem(http.post("/v1/exports", json={"resource": "events", "fields": ["occurred_at"]}), 422)
        assert other["errors"][0]["field"] == "Idempotency-Key"
    with service.client("globex-admin", **{"Idempotency-Key": "nightly-2026-12-04"}) as http:  # keys are namespaced per caller
        assert http.post("/v1/exports", json={"resource": "events", "fields": ["type"]}).json()["id"] != first.json()["id"]


def test_an_idempotency_key_in_flight_is_409_and_prefect_still_starts_one_run(service):
    from api.ratelimit import caller_identity
    from ferry.store.schema import api_idempotency

    key, body = f"in-flight-{uuid.uuid4().hex}", {"resource": "events", "fields": ["type"]}
    scope = caller_identity(service.keys["acme-admin"], None)
    with service.client("acme-admin", **{"Idempotency-Key": key}) as http:
        first = http.post("/v1/exports", json=body)
        assert first.status_code == 202
        # As if the API process died after starting the run, before it kept the answer: the claim is running.
        with service.engine.begin() as conn:
            this = (api_idempotency.c.scope == scope) & (api_idempotency.c.idempotency_key == key)
            conn.execute(api_idempotency.update().where(this).values(state="running", response=None))
        busy = problem(http.post("/v1/exports", json=body), 409)
        assert "still being answered" in busy["detail"]
        # Ten minutes on, the claim counts as abandoned: the retry goes ahead and Prefect's key hands back the same run.
        with service.engine.begin() as conn:
            stale = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=11)
            conn.execute(api_idempotency.update().where(this).values(created_at=stale))
        retried = http.post("/v1/exports", json=body)
        assert retried.status_code == 202 and retried.json()["id"] == first.json()["id"]
        assert "Idempotent-Replayed" not in retried.headers


def test_rate_limit_is_hit_and_recovers(service, tmp_path):
    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_RATE_LIMIT="3/2 seconds")
    process, url = start_api(tmp_path, env, name="ferry-api-limited")
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": service.keys["acme-viewer"]}, timeout=30) as http:
            time.sleep(2.1)  # the readiness probe spent part of the anonymous budget, not this key's
            answers = [http.get("/v1/runs", params={"limit": 1}) for _ in range(4)]
            assert [a.status_code for a in answers[:3]] == [200, 200, 200]
            limited = problem(answers[3], 429)
            assert "default" in limited["detail"]
            assert int(answers[3].headers["Retry-After"]) >= 1
            assert answers[0].headers["RateLimit-Policy"] == '"default";q=3;w=2'
            assert answers[0].headers["RateLimit"].startswith('"default";r=2;')
            time.sleep(int(answers[3].headers["Retry-After"]) + 0.5)
            assert http.get("/v1/runs", params={"limit": 1}).status_code == 200
            with httpx.Client(base_url=url, headers={"x-api-key": service.keys["globex-viewer"]}, timeout=30) as other:
                assert other.get("/v1/runs", params={"limit": 1}).status_code == 200  # a budget per key
    finally:
        process.stop()


def test_api_processes_share_one_rate_limit_budget_through_redis(service, tmp_path):
    from ferry.keys import create_key

    storage = f"redis://127.0.0.1:6379/{uuid.uuid4().int % 16}"
    env = ferry_env(
        service.env["PREFECT_API_URL"],
        service.data_dir,
        service.store_url,
        FERRY_API_RATE_LIMIT="4/30 seconds",
        FERRY_RATE_LIMIT_STORAGE=storage,
    )
    first, first_url = start_api(tmp_path, env, name="ferry-api-redis-1")
    second, second_url = start_api(tmp_path, env, name="ferry-api-redis-2")
    key = create_key(service.engine, "acme", "viewer", f"redis {uuid.uuid4().hex[:8]}")[1]  # a budget no other test spent
    try:
        answers = [
            httpx.get(f"{url}/v1/runs", params={"limit": 1}, headers={"x-api-key": key}, timeout=30) for url in [first_url, second_url] * 3
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]  # four in all, wherever they landed
        assert answers[3].headers["RateLimit"].startswith('"default";r=0;')
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/audit-events"])
def test_pages_are_bounded(service, path):
    with service.client("acme-admin") as http:
        problem(http.get(path, params={"limit": 0}), 422)


def test_small_exports_answer_in_the_body_when_asked(service, tmp_path):
    with service.client("acme-admin", Prefer="respond=sync") as http:
        answer = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"], "format": "csv"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Preference-Applied"] == "respond=sync" and answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"] and ".csv" in answer.headers["content-disposition"]
        lines = answer.text.splitlines()
        assert lines[0] == '"email"' and len(lines) == 121
        run = http.get(f"/v1/runs/{answer.headers['X-Ferry-Run-Id']}").json()  # the same stages, in the run history
        assert run["status"] == "succeeded" and run["recordCount"] == 120
        problem(http.post("/v1/exports", json={"resource": "contacts", "format": "nope"}), 422)  # errors before any byte
    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_SYNC_MAX_ROWS="50")
    process, url = start_api(tmp_path, env, name="ferry-api-small-sync")
    try:
        headers = {"x-api-key": service.keys["acme-admin"], "Prefer": "respond=sync"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            too_big = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"]})
            assert too_big.status_code == 202 and "Preference-Applied" not in too_big.headers
            small = http.post("/v1/exports", json={"resource": "contacts", "fields": ["email"], "limit": 10})
            assert small.status_code == 200 and len(small.text.splitlines()) == 11
    finally:
        process.stop()
