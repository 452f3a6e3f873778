"""/compat/connectif against the live service (see conftest.py): Connectif's bulk exports, its rules, statuses and errors."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import httpx
from servers.api import start_api
from servers.prefect import ferry_env
from sqlalchemy import text

BASE = "/compat/connectif"
RUN_TIMEOUT = 240
EXPORT_FIELDS = {
    "id": str,
    "status": str,
    "dateFormat": str,
    "delimiter": str,
    "exportType": str,
    "filters": dict,
    "version": str,
    "createdAt": (str, type(None)),
    "finishedAt": (str, type(None)),
    "recordCount": (int, type(None)),
    "fileSize": (int, type(None)),
    "error": (str, type(None)),
    "downloadUrl": (str, type(None)),
}
#: The ExportCreation of the document, exactly as written there.
DOCUMENTED_BODY = {
    "dateFormat": "string",
    "delimiter": "string",
    "exportType": "string",
    "filters": {"activityTypes": ["string"], "fromDate": "date-time", "segmentId": "string", "toDate": "date-time"},
    "version": "string",
}


def connectif(service, key: str) -> httpx.Client:
    """A client as Connectif's own: ``Authorization: apiKey KEY``."""
    return httpx.Client(base_url=service.url + BASE, headers={"Authorization": f"apiKey {service.keys[key]}"}, timeout=60)


def http_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["statusCode"] == status and isinstance(body["message"], str) and body["message"]
    return body


def finished(http: httpx.Client, export_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        export = http.get(f"/exports/{export_id}").json()
        if export["status"] in ("finished", "error") or time.monotonic() > deadline:
            return export
        time.sleep(1)


def check_fields(export: dict) -> None:
    assert set(export) == set(EXPORT_FIELDS)
    for name, kind in EXPORT_FIELDS.items():
        assert isinstance(export[name], kind), (name, export[name])


def test_an_activities_export_is_created_followed_and_downloaded(service):
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with service.engine.connect() as conn:
        since = conn.execute(
            text("SELECT MIN(e.occurred_at) FROM events e JOIN workspaces w ON w.id = e.workspace_id WHERE w.slug = 'acme'")
        ).scalar_one()
        until = since + timedelta(days=31)
        expected = conn.execute(
            text(
                "SELECT COUNT(*) FROM events e JOIN workspaces w ON w.id = e.workspace_id "
                "WHERE w.slug = 'acme' AND e.occurred_at >= :since AND e.occurred_at < :until"
            ),
            {"since": since, "until": until},
        ).scalar_one()
    body = {
        "dateFormat": "ISO",
        "delimiter": ";",
        "exportType": "activities",
        "filters": {"fromDate": since.isoformat() + "Z", "toDate": until.isoformat() + "Z"},
    }
    with connectif(service, "acme-admin") as http:
        created = http.post("/exports/", json=body)
        assert created.status_code == 201, created.text
        export = created.json()
        check_fields(export)
        assert export["exportType"] == "activities" and export["delimiter"] == ";" and export["version"] == "v1"
        assert export["status"] in ("pending", "inProgress", "finished")
        assert created.headers["Location"] == f"{BASE}/exports/{export['id']}"
        done = finished(http, export["id"])
        check_fields(done)
        assert done["status"] == "finished", done
        assert done["recordCount"] == expected
        rows = list(csv.reader(io.StringIO(httpx.get(done["downloadUrl"], timeout=60).text), delimiter=";"))
        assert {"id", "type", "occurred_at"} <= set(rows[0])  # v1: field keys
        assert len(rows) - 1 == expected
    with connectif(service, "acme-viewer") as viewer:
        seen = viewer.get(f"/exports/{export['id']}").json()
        assert seen["status"] == "finished" and seen["downloadUrl"] is None  # downloads are admin-only


def test_a_v2_contacts_export_of_a_segment_has_label_headers_and_the_date_format(service):
    with service.engine.connect() as conn:
        expected = conn.execute(
            text(
                "SELECT COUNT(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id "
                "WHERE w.slug = 'acme' AND c.lifecycle_stage = 'customer'"
            )
        ).scalar_one()
    body = {"dateFormat": "L", "delimiter": ",", "exportType": "contacts", "filters": {"segmentId": "customers"}, "version": "v2"}
    with connectif(service, "acme-admin") as http:
        created = http.post("/exports", json=body)  # without the trailing slash too
        assert created.status_code == 201, created.text
        done = finished(http, created.json()["id"])
        assert done["status"] == "finished" and done["filters"] == {"segmentId": "customers"} and done["version"] == "v2"
        rows = list(csv.DictReader(io.StringIO(httpx.get(done["downloadUrl"], timeout=60).text)))
    assert len(rows) == expected
    assert "E-mail" in rows[0] and "email" not in rows[0]  # v2: the catalog's labels
    created_at = next(value for label, value in rows[0].items() if label.lower().startswith("created"))
    assert datetime.strptime(created_at, "%m/%d/%Y")  # moment.js L


def test_every_validation_error_at_once_with_connectif_names(service):
    with connectif(service, "acme-admin") as http:
        documented = http_error(http.post("/exports/", json=DOCUMENTED_BODY), 422)
        fields = {e["field"] for e in documented["errors"]}
        assert {"dateFormat", "delimiter", "exportType", "version"} <= fields
        assert {"filters.fromDate", "filters.toDate"} <= fields  # "date-time" is no date-time

        rules = http_error(
            http.post(
                "/exports/",
                json={"dateFormat": "ISO", "delimiter": ",", "exportType": "activities", "filters": {"activityTypes": ["purchase"]}},
            ),
            422,
        )
        assert {e["field"] for e in rules["errors"]} == {"filters.fromDate", "filters.toDate"}
        assert all("required" in e["message"] for e in rules["errors"])

        span = {"fromDate": "2026-01-01T00:00:00Z", "toDate": "2026-02-15T00:00:00Z"}
        too_long = http_error(
            http.post("/exports/", json={"dateFormat": "ISO", "delimiter": ",", "exportType": "activities", "filters": span}), 422
        )
        assert [e["field"] for e in too_long["errors"]] == ["filters.toDate"] and "31 days" in too_long["errors"][0]["message"]

        contacts = {"dateFormat": "ISO", "delimiter": ",", "exportType": "contacts", "filters": {"activityTypes": ["x"], **span}}
        only_activities = http_error(http.post("/exports/", json=contacts), 422)
        assert {e["field"] for e in only_activities["errors"]} == {"filters.activityTypes", "filters.fromDate", "filters.toDate"}

        segment = {"dateFormat": "ISO", "delimiter": ",", "exportType": "contacts", "filters": {"segmentId": "no-such-segment"}}
        assert [e["field"] for e in http_error(http.post("/exports/", json=segment), 422)["errors"]] == ["filters.segmentId"]


def test_its_status_codes(service, tmp_path):
    body = {"dateFormat": "ISO", "delimiter": ",", "exportType": "contacts"}
    with connectif(service, "acme-admin") as http:
        http_error(http.post("/exports/", content=b'{"dateFormat": ', headers={"content-type": "application/json"}), 400)
        http_error(http.post("/exports/", content=b"dateFormat=ISO", headers={"content-type": "text/plain"}), 415)
        http_error(http.get("/exports/not-an-id"), 404)
    anonymous = http_error(httpx.post(f"{service.url}{BASE}/exports/", json=body, timeout=30), 401)
    assert "key" in anonymous["message"]
    with connectif(service, "acme-viewer") as viewer:
        http_error(viewer.post("/exports/", json=body), 403)

    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_RUN_RATE_LIMIT="1/minute")
    process, url = start_api(tmp_path, env, name="ferry-api-connectif-limited")
    try:
        with httpx.Client(base_url=url + BASE, headers={"Authorization": f"apiKey {service.keys['acme-admin']}"}, timeout=60) as http:
            assert http.post("/exports/", json=body).status_code == 201
            limited = http.post("/exports/", json=body)
            assert "Rate limit 'runs'" in http_error(limited, 429)["message"] and int(limited.headers["Retry-After"]) >= 1
            assert limited.headers["RateLimit-Policy"] == '"runs";q=1;w=60'
            assert http.get("/exports/not-an-id").status_code == 404  # reading spends the default budget only
        with httpx.Client(base_url=url, headers={"x-api-key": service.keys["acme-admin"]}, timeout=60) as native:
            assert native.post("/v1/exports", json={"resource": "contacts"}).status_code == 429  # one run budget for every front end
    finally:
        process.stop()


def test_another_workspace_sees_nothing(service):
    body = {"dateFormat": "ISO", "delimiter": ",", "exportType": "contacts"}
    with connectif(service, "acme-admin") as http:
        export_id = http.post("/exports/", json=body).json()["id"]
    with connectif(service, "globex-admin") as other:
        assert "acme" not in http_error(other.get(f"/exports/{export_id}"), 404)["message"]
    with service.client("acme-admin") as native:  # the same run, natively
        assert native.get(f"/v1/runs/{export_id}").json()["kind"] == "export"
        events = [e for e in native.get("/v1/audit-events").json()["events"] if e["runId"] == export_id]
        assert events and events[0]["details"]["adapter"] == "connectif"
