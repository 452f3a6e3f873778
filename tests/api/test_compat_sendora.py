"""/compat/sendora against the live service (see conftest.py): data-io export, jobs, download, upload and import."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

ORG = "/compat/sendora/api/v1/orgs/{org}/data-io"
RUN_TIMEOUT = 240
JOB_FIELDS = {"jobId": str, "type": str, "resource": str, "status": str, "progress": int}


def sendora(service, key: str, org: str = "acme") -> httpx.Client:
    """A client as Sendora's own: ``x-api-key``, the org in the path."""
    return httpx.Client(base_url=service.url + ORG.format(org=org), headers={"x-api-key": service.keys[key]}, timeout=60)


def sendora_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"] and isinstance(error["details"], list)
    return error


def ended(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(1)


def check_job(job: dict) -> None:
    for name, kind in JOB_FIELDS.items():
        assert isinstance(job[name], kind), (name, job)
    assert 0 <= job["progress"] <= 100
    assert job["status"] in ("queued", "running", "completed", "failed", "cancelled")


def count(service, sql: str, **params) -> int:
    with service.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_the_documented_export_polls_to_completed_and_downloads_through_a_30_minute_url(service):
    documented = {"resource": "events", "format": "csv", "filters": {"from": "2026-04-01", "to": "2026-04-30"}}
    with sendora(service, "acme-admin") as http:
        started = http.post("/export", json=documented)  # as written in the document
        assert started.status_code == 202 and set(started.json()) == {"jobId"}, started.text
        assert ended(http, started.json()["jobId"])["status"] == "completed"

        first = count(service, "SELECT MIN(e.occurred_at) FROM events e JOIN workspaces w ON w.id = e.workspace_id WHERE w.slug = 'acme'")
        window = {"from": first.date().isoformat(), "to": (first + timedelta(days=29)).date().isoformat()}
        expected = count(
            service,
            "SELECT COUNT(*) FROM events e JOIN workspaces w ON w.id = e.workspace_id "
            "WHERE w.slug = 'acme' AND e.occurred_at >= :since AND e.occurred_at < :until",
            since=first.replace(hour=0, minute=0, second=0, microsecond=0),
            until=first.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=30),
        )
        job_id = http.post("/export", json={**documented, "filters": window}).json()["jobId"]
        job = ended(http, job_id)
        check_job(job)
        assert job["status"] == "completed" and job["progress"] == 100 and job["type"] == "export" and job["recordCount"] == expected
        expires = datetime.fromisoformat(job["downloadUrlExpiresAt"])
        assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
        rows = list(csv.DictReader(io.StringIO(httpx.get(job["downloadUrl"], timeout=60).text)))
        assert len(rows) == expected and "occurred_at" in rows[0]

        again = http.get(f"/jobs/{job_id}/download")
        assert again.status_code == 200 and set(again.json()) == {"downloadUrl", "expiresAt"}
        assert datetime.fromisoformat(again.json()["expiresAt"]) >= expires  # re-issued: valid 30 minutes from now
        assert len(list(csv.DictReader(io.StringIO(httpx.get(again.json()["downloadUrl"], timeout=60).text)))) == expected

    with service.client("acme-admin") as native:
        events = [e for e in native.get("/v1/audit-events").json()["events"] if e["runId"] == job_id]
        start = next(e for e in events if e["action"] == "api.export.start")
        assert start["details"]["adapter"] == "sendora" and start["details"]["filters"] == window and start["payloadBytes"] > 0


def test_workflows_and_audiences_export_as_json_and_profiles_filter_by_field(service):
    with sendora(service, "acme-admin") as http:
        workflows = ended(http, http.post("/export", json={"resource": "workflows", "format": "json"}).json()["jobId"])
        assert workflows["status"] == "completed", workflows
        keys = {w["key"] for w in json.loads(httpx.get(workflows["downloadUrl"], timeout=60).text)}
        assert keys == {"welcome", "win-back", "nps"}

        audiences = ended(http, http.post("/export", json={"resource": "audiences"}).json()["jobId"])
        assert {r["key"] for r in csv.DictReader(io.StringIO(httpx.get(audiences["downloadUrl"], timeout=60).text))} == {
            "customers",
            "high-value",
        }

        customers = ended(
            http, http.post("/export", json={"resource": "profiles", "filters": {"lifecycle_stage": "customer"}}).json()["jobId"]
        )
    expected = count(
        service,
        "SELECT COUNT(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme' AND c.lifecycle_stage = 'customer'",
    )
    assert customers["status"] == "completed" and customers["recordCount"] == expected


def _upload(http: httpx.Client, content: bytes, filename: str) -> str:
    target = http.post("/uploads", json={"filename": filename, "sizeBytes": len(content)})
    assert target.status_code == 201, target.text
    assert httpx.put(target.json()["url"], content=content, headers=target.json()["headers"], timeout=30).status_code == 200
    return target.json()["uploadId"]


def test_an_upload_imports_with_mapping_dry_run_and_skip_duplicates(service):
    emails = [f"sendora-{uuid.uuid4().hex[:8]}-{n}@example.com" for n in range(3)]
    content = ("Email Address,Given Name,Notes\n" + "".join(f"{e},Name{n},x\n" for n, e in enumerate(emails))).encode()
    stored = "SELECT COUNT(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme' AND c.email = ANY(:emails)"
    mapping = {"Email Address": "email", "Given Name": "first_name", "Notes": None}
    with sendora(service, "acme-admin") as http:
        upload_id = _upload(http, content, "profiles.csv")
        body = {"resource": "profiles", "format": "csv", "uploadId": upload_id, "mapping": mapping}

        dry = ended(http, http.post("/import", json={**body, "dryRun": True}).json()["jobId"])
        assert dry["status"] == "completed" and dry["type"] == "import" and dry["createdRows"] == 3, dry
        assert count(service, stored, emails=emails) == 0  # a dry run changes nothing

        done = ended(http, http.post("/import", json=body).json()["jobId"])
        check_job(done)
        assert done["status"] == "completed" and done["createdRows"] == 3 and done["recordCount"] == 3, done
        assert count(service, stored, emails=emails) == 3

        skipped = ended(http, http.post("/import", json=body).json()["jobId"])  # skipDuplicates defaults to true
        assert skipped["createdRows"] == 0 and skipped["updatedRows"] == 0, skipped
        renamed = content.replace(b",Name", b",Renamed")
        changed = {**body, "uploadId": _upload(http, renamed, "profiles.csv"), "skipDuplicates": False}
        updated = ended(http, http.post("/import", json=changed).json()["jobId"])
        assert updated["createdRows"] == 0 and updated["updatedRows"] == 3, updated

        mismatch = sendora_error(http.post("/import", json={**body, "format": "jsonl"}), 422, "validation_error")
        assert mismatch["details"][0]["field"] == "format"

        jsonl = b"".join(
            json.dumps({"type": "page_view", "contact": emails[0], "occurred_at": "2026-11-01T10:00:00Z"}).encode() + b"\n"
            for _ in range(2)
        )
        events = {"resource": "events", "format": "jsonl", "uploadId": _upload(http, jsonl, "events.jsonl")}
        imported = ended(http, http.post("/import", json=events).json()["jobId"])
        assert imported["status"] == "completed" and imported["createdRows"] == 2, imported


def test_a_source_url_on_loopback_is_refused_inside_the_run(service):
    with sendora(service, "acme-admin") as http:
        job_id = http.post(
            "/import", json={"resource": "profiles", "format": "csv", "sourceUrl": "http://127.0.0.1:9/profiles.csv"}
        ).json()["jobId"]
        job = ended(http, job_id)
    assert job["status"] == "failed" and "loopback" in job["error"]


def test_errors_roles_and_isolation(service):
    with sendora(service, "acme-admin") as http:
        problems = sendora_error(http.post("/export", json={"resource": "invoices", "format": "xml", "extra": 1}), 422, "validation_error")
        assert {d["field"] for d in problems["details"]} == {"resource", "format", "extra"}
        bad_window = sendora_error(
            http.post("/export", json={"resource": "events", "filters": {"from": "yesterday"}}), 422, "validation_error"
        )
        assert bad_window["details"][0]["field"] == "filters.from"
        bad_field = sendora_error(http.post("/export", json={"resource": "profiles", "filters": {"shoe_size": 9}}), 422, "validation_error")
        assert bad_field["details"][0]["field"] == "filters.shoe_size"
        neither = sendora_error(http.post("/import", json={"resource": "profiles", "format": "csv"}), 422, "validation_error")
        assert neither["details"][0]["field"] == "sourceUrl"
        sendora_error(http.post("/export", content=b"{", headers={"content-type": "application/json"}), 400, "bad_request")
        sendora_error(http.get(f"/jobs/{uuid.uuid4()}"), 404, "not_found")
        job_id = http.post("/export", json={"resource": "profiles"}).json()["jobId"]
    with sendora(service, "acme-admin", org="globex") as wrong_org:  # an org that is not the key's
        sendora_error(wrong_org.post("/export", json={"resource": "profiles"}), 404, "not_found")
        sendora_error(wrong_org.get(f"/jobs/{job_id}"), 404, "not_found")
    with sendora(service, "globex-admin", org="globex") as other:  # another workspace's job, by its own org
        sendora_error(other.get(f"/jobs/{job_id}"), 404, "not_found")
        sendora_error(other.get(f"/jobs/{job_id}/download"), 404, "not_found")
    with sendora(service, "acme-operator") as operator:  # ADMIN-gated
        sendora_error(operator.post("/export", json={"resource": "profiles"}), 403, "forbidden")
        sendora_error(operator.get(f"/jobs/{job_id}"), 403, "forbidden")
    anonymous = httpx.post(service.url + ORG.format(org="acme") + "/export", json={"resource": "profiles"}, timeout=30)
    sendora_error(anonymous, 401, "unauthorized")
    assert "WWW-Authenticate" in anonymous.headers
