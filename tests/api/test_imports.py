"""Uploads and the import steps over HTTP, end to end against the live service (see conftest.py).

upload (signed PUT, multipart) -> preview -> suggest-mapping -> validate -> import
(a run of import-data/default, polled) -> rollback; limits, signed URLs, roles,
workspace isolation, every problem of a bad body, and the SSRF guard.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
from servers.api import start_api
from servers.prefect import ferry_env, flow_run_logs
from sqlalchemy import text

RUN_TIMEOUT = 240


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"] and body["instance"] == response.headers["x-request-id"]
    return body


def contacts_csv(tag: str) -> tuple[bytes, list[str]]:
    emails = [f"api-import-{tag}-{n}@example.com" for n in range(3)]
    rows = ["Email,First Name,Last Name", f"{emails[0]},Ada,Lovelace", f"{emails[1]},Grace,Hopper", f"{emails[2]},Alan,Turing"]
    return ("\n".join(rows) + "\n").encode(), emails


def new_upload(http: httpx.Client, content: bytes, filename: str = "contacts.csv", size: int | None = None) -> dict:
    created = http.post("/v1/uploads", json={"filename": filename, "sizeBytes": len(content) if size is None else size})
    assert created.status_code == 201, created.text
    return created.json()


def uploaded(http: httpx.Client, content: bytes) -> str:
    """A complete upload of ``content`` through its signed URL; its id."""
    target = new_upload(http, content)
    assert httpx.put(target["url"], content=content, headers=target["headers"], timeout=30).status_code == 200
    return target["uploadId"]


def stored_emails(service, workspace: str, emails: list[str]) -> set[str]:
    query = text("SELECT c.email FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = :ws AND c.email = ANY(:emails)")
    with service.engine.connect() as conn:
        return {row[0] for row in conn.execute(query, {"ws": workspace, "emails": emails})}


def test_uploads_older_than_the_retention_period_are_removed(service):
    with service.client("acme-admin") as http:
        old = uploaded(http, b"email\nold@example.com\n")
        meta_path = service.data_dir / "uploads" / "acme" / f"{old}.json"
        meta = json.loads(meta_path.read_text())
        meta["createdAt"] = (datetime.now(UTC) - timedelta(days=8)).isoformat()
        meta_path.write_text(json.dumps(meta))
        recent = uploaded(http, b"email\nrecent@example.com\n")  # creating an upload sweeps the old ones
        problem(http.get(f"/v1/uploads/{old}"), 404)
        assert not (service.data_dir / "uploads" / "acme" / old).exists() and not meta_path.exists()
        assert http.get(f"/v1/uploads/{recent}").json()["status"] == "completed"


def test_upload_preview_map_validate_import_and_roll_back(service):
    content, emails = contacts_csv(uuid.uuid4().hex[:8])
    with service.client("acme-admin") as http:
        target = new_upload(http, content)
        upload_id = target["uploadId"]
        assert target["method"] == "PUT" and urlsplit(target["url"]).path == f"/v1/uploads/{upload_id}/content"
        assert target["maxBytes"] == 100 * 1024 * 1024 and target["headers"] == {"Content-Type": "application/octet-stream"}
        expires = datetime.fromisoformat(target["expiresAt"])
        assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15, seconds=5)
        assert http.get(f"/v1/uploads/{upload_id}").json()["status"] == "pending"

        put = httpx.put(target["url"], content=content, headers=target["headers"], timeout=30)  # no key: the URL is the permission
        assert put.status_code == 200 and put.json()["status"] == "completed" and put.json()["sizeBytes"] == len(content)
        folder = service.data_dir / "uploads" / "acme"
        assert (folder / upload_id / "contacts.csv").read_bytes() == content
        meta = json.loads((folder / f"{upload_id}.json").read_text())
        assert meta["workspace"] == "acme" and meta["filename"] == "contacts.csv" and meta["completedAt"]
        problem(httpx.put(target["url"], content=content, timeout=30), 409)  # the content arrives once

        preview = http.post("/v1/imports/preview", json={"uploadId": upload_id})
        assert preview.status_code == 200, preview.text
        assert preview.json()["fileType"] == "csv" and preview.json()["columns"] == ["Email", "First Name", "Last Name"]
        assert preview.json()["totalRows"] == 3 and preview.json()["sampleRows"][0]["Email"] == emails[0]

        suggested = http.post("/v1/imports/suggest-mapping", json={"uploadId": upload_id, "resource": "contacts"})
        assert suggested.status_code == 200, suggested.text
        mapping = suggested.json()["mapping"]
        assert {m["sourceColumn"]: m["targetFieldSlug"] for m in mapping} == {
            "Email": "email",
            "First Name": "first_name",
            "Last Name": "last_name",
        }
        assert set(mapping[0]) == {"sourceColumn", "targetFieldSlug", "valueType", "addressPart", "confidence", "reason"}
        assert "email" in {f["slug"] for f in suggested.json()["targetFields"]}

        report = http.post("/v1/imports/validate", json={"uploadId": upload_id, "resource": "contacts", "mapping": mapping})
        assert report.status_code == 200, report.text
        assert report.json()["totalRows"] == 3 and report.json()["validRows"] == 3 and report.json()["errorRows"] == 0
        assert str(service.data_dir) not in report.text  # no path of this machine

        body = {
            "uploadId": upload_id,
            "resource": "contacts",
            "mapping": mapping,
            "duplicateStrategy": "skip",
            "staticValues": {"source": "api"},
        }
        started = http.post("/v1/imports", json=body)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["Location"] == f"/v1/runs/{run_id}" and started.json()["status"] == "queued"
        run = service.poll(http, run_id, RUN_TIMEOUT)
        assert run["status"] == "succeeded" and run["kind"] == "import" and run["createdRows"] == 3, run
        assert stored_emails(service, "acme", emails) == set(emails) and not stored_emails(service, "globex", emails)

    with service.client("globex-admin") as other:  # another workspace: as if neither existed
        problem(other.get(f"/v1/uploads/{upload_id}"), 404)
        problem(other.post("/v1/imports/preview", json={"uploadId": upload_id}), 404)
        problem(other.post("/v1/imports", json={"uploadId": upload_id, "resource": "contacts", "autoMap": True}), 404)
        problem(other.post(f"/v1/uploads/{upload_id}/content", files={"file": ("c.csv", content)}), 404)
        problem(other.get(f"/v1/runs/{run_id}"), 404)
        problem(other.post(f"/v1/runs/{run_id}/rollback"), 404)
    with service.client("acme-viewer") as viewer:
        for path, payload in (
            ("/v1/uploads", {"filename": "c.csv", "sizeBytes": 3}),
            ("/v1/imports", body),
            ("/v1/imports/preview", {"uploadId": upload_id}),
        ):
            assert "imports.create needs admin" in problem(viewer.post(path, json=payload), 403)["detail"]
        problem(viewer.post(f"/v1/runs/{run_id}/rollback"), 403)
        assert viewer.get(f"/v1/runs/{run_id}").json()["createdRows"] == 3  # but sees the run

    with service.client("acme-admin") as http:
        rolled = http.post(f"/v1/runs/{run_id}/rollback")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["deletedRows"] == 3 and rolled.json()["importRunId"] == run_id and rolled.json()["status"] == "succeeded"
        assert not stored_emails(service, "acme", emails)
        assert http.get(rolled.headers["Location"]).json()["kind"] == "rollback"
        problem(http.post(f"/v1/runs/{run_id}/rollback"), 409)  # undone already: refused, nothing changed
        problem(http.post(f"/v1/runs/{rolled.json()['id']}/rollback"), 404)  # only imports roll back
        actions = [(e["action"], e["runId"]) for e in http.get("/v1/audit-events").json()["events"]]
        assert ("api.import.start", run_id) in actions and ("api.import.rollback", rolled.json()["id"]) in actions
        assert {"api.upload", "api.import.preview", "api.import.suggest_mapping", "api.import.validate"} <= {a for a, _ in actions}


def test_multipart_and_raw_body_uploads_with_a_key(service):
    content, emails = contacts_csv("multipart")
    with service.client("acme-admin") as http:
        upload_id = new_upload(http, content)["uploadId"]
        sent = http.post(f"/v1/uploads/{upload_id}/content", files={"file": ("ignored-name.csv", content, "text/csv")}, data={"note": "hi"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["status"] == "completed" and sent.json()["filename"] == "contacts.csv"
        assert (service.data_dir / "uploads" / "acme" / upload_id / "contacts.csv").read_bytes() == content
        preview = http.post("/v1/imports/preview", json={"uploadId": upload_id, "sampleRows": 1})
        assert preview.json()["totalRows"] == 3 and len(preview.json()["sampleRows"]) == 1
        problem(http.post(f"/v1/uploads/{upload_id}/content", files={"file": ("c.csv", content)}), 409)

        raw = new_upload(http, content, filename="raw.csv")["uploadId"]
        assert http.post(f"/v1/uploads/{raw}/content", content=content, headers={"content-type": "text/csv"}).status_code == 200
        missing = new_upload(http, content)["uploadId"]
        assert (
            problem(http.post(f"/v1/uploads/{missing}/content", files={"other": ("c.csv", content)}), 422)["errors"][0]["field"] == "file"
        )
        problem(http.post("/v1/imports/preview", json={"uploadId": missing}), 409)  # no content yet
        assert http.get(f"/v1/uploads/{missing}").json()["status"] == "pending"


def test_uploads_over_the_limit_are_413_and_leave_nothing(service, tmp_path):
    content = b"email\n" + b"".join(f"limit-{n}@example.com\n".encode() for n in range(40))
    assert len(content) > 500
    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_MAX_UPLOAD_BYTES="500")
    process, limited_url = start_api(tmp_path, env, name="ferry-api-small-uploads")
    try:
        with httpx.Client(base_url=limited_url, headers={"x-api-key": service.keys["acme-admin"]}, timeout=30) as limited:
            announced = limited.post("/v1/uploads", json={"filename": "big.csv", "sizeBytes": 501})
            assert "FERRY_API_MAX_UPLOAD_BYTES" in problem(announced, 413)["detail"]
            assert limited.post("/v1/uploads", json={"filename": "small.csv", "sizeBytes": 500}).json()["maxBytes"] == 500
            with service.client("acme-admin") as http:  # announced where the limit is 100 MB, sent where it is 500 bytes
                target = new_upload(http, content)
            folder = service.data_dir / "uploads" / "acme" / target["uploadId"]
            signed = limited_url + urlsplit(target["url"]).path + "?" + urlsplit(target["url"]).query
            problem(httpx.put(signed, content=content, timeout=30), 413)  # by its Content-Length
            problem(httpx.put(signed, content=iter([content[:300], content[300:]]), timeout=30), 413)  # chunked: counted
            problem(limited.post(f"/v1/uploads/{target['uploadId']}/content", files={"file": ("big.csv", content)}), 413)
            assert list(folder.iterdir()) == []  # no partial file left
            assert limited.get(f"/v1/uploads/{target['uploadId']}").json()["status"] == "pending"
    finally:
        process.stop()
    assert httpx.put(target["url"], content=content, timeout=30).status_code == 200  # the upload still takes its content
    with service.client("acme-admin") as http:
        small = new_upload(http, b"email\na@example.com\n", size=10)
        assert "sizeBytes" in problem(httpx.put(small["url"], content=b"email\na@example.com\n", timeout=30), 413)["detail"]
        problem(httpx.put(small["url"], content=b"email\n", timeout=30), 400)  # fewer bytes than announced
        assert list((service.data_dir / "uploads" / "acme" / small["uploadId"]).iterdir()) == []


def test_tampered_and_expired_upload_urls_are_403(service):
    with service.client("acme-admin") as http:
        target = new_upload(http, b"email\n")
        other = new_upload(http, b"email\n")
    url = target["url"]
    query = parse_qs(urlsplit(url).query)
    signature, expires = query["signature"][0], int(query["expires"][0])
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for bad in (
        url.replace(signature, flipped),
        url.replace(f"expires={expires}", f"expires={expires + 60}"),
        url.replace(target["uploadId"], other["uploadId"]),
        url.replace(signature, "x"),
        url.split("?")[0] + f"?expires=soon&signature={signature}",
    ):
        problem(httpx.put(bad, content=b"email\n", timeout=30), 403)
    key = (service.data_dir / "secrets" / "url-signing.key").read_text().strip().encode()
    path, past = urlsplit(url).path, int(time.time()) - 5
    expired = hmac.new(key, f"{path}\n{past}".encode(), hashlib.sha256).hexdigest()  # signed right, but past its expiry
    assert (
        "expired"
        in problem(httpx.put(f"{service.url}{path}?expires={past}&signature={expired}", content=b"email\n", timeout=30), 403)["detail"]
    )
    assert httpx.put(url, content=b"email\n", timeout=30).status_code == 200  # the untouched URL works


def test_bad_bodies_list_every_problem(service):
    with service.client("acme-admin") as http:
        upload_id = uploaded(http, contacts_csv("bad")[0])
        body = {
            "uploadId": upload_id,
            "sourceUrl": "https://example.com/contacts.csv",
            "resource": "contacts",
            "duplicateStrategy": "sometimes",
            "mergeMode": "blend",
            "dryRun": "maybe",
            "bogus": 1,
        }
        fields = {e["field"] for e in problem(http.post("/v1/imports", json=body), 422)["errors"]}
        assert {"sourceUrl", "duplicateStrategy", "mergeMode", "dryRun", "bogus"} <= fields
        fields = {e["field"] for e in problem(http.post("/v1/imports", json={"resource": "nope", "autoMap": True}), 422)["errors"]}
        assert fields == {"uploadId", "resource"}
        body = {"uploadId": upload_id, "resource": "contacts", "duplicateMatchFields": ["nope"], "staticValues": {"nope": 1}}
        fields = {e["field"] for e in problem(http.post("/v1/imports", json=body), 422)["errors"]}
        assert {"duplicateMatchFields[0]", "staticValues.nope", "mapping"} <= fields
        for url in ("file:///etc/passwd", "sftp://block/contacts.csv", "/etc/passwd"):
            problem(http.post("/v1/imports", json={"sourceUrl": url, "resource": "contacts", "autoMap": True}), 422)
        problem(
            http.post("/v1/imports/validate", json={"uploadId": upload_id, "resource": "contacts", "dryRun": True, "autoMap": True}), 422
        )
        problem(http.post("/v1/imports/preview", json={"uploadId": upload_id, "encoding": "rot13"}), 422)
        problem(http.post("/v1/imports/preview", json={"uploadId": uuid.uuid4().hex}), 404)
        problem(http.post("/v1/imports", json={"uploadId": "../../etc", "resource": "contacts", "autoMap": True}), 404)
        problem(http.post("/v1/imports", content=b"uploadId=x", headers={"content-type": "text/plain"}), 415)
        for name in ("../contacts.csv", "a/b.csv", "c\\d.csv", "..", "", ".hidden.csv", "bell\x07.csv", "rtl\u202ecsv.exe"):
            errors = problem(http.post("/v1/uploads", json={"filename": name, "sizeBytes": 10}), 422)["errors"]
            assert [e["field"] for e in errors] == ["filename"], name
        fields = {e["field"] for e in problem(http.post("/v1/uploads", json={"sizeBytes": 0, "extra": True}), 422)["errors"]}
        assert fields == {"filename", "sizeBytes", "extra"}


class _Counting(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # the http.server hook
        type(self).requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"email\nssrf@example.com\n")

    def log_message(self, *args):
        pass


def test_a_source_url_on_loopback_is_refused_by_the_ssrf_guard(service):
    listener = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.server_address[1]}/contacts.csv?token=secret"
        with service.client("acme-admin", **{"Idempotency-Key": f"ssrf-{uuid.uuid4().hex}"}) as http:
            started = http.post("/v1/imports", json={"sourceUrl": url, "resource": "contacts", "autoMap": True})
            assert started.status_code == 202, started.text
            again = http.post("/v1/imports", json={"sourceUrl": url, "resource": "contacts", "autoMap": True})
            assert again.json()["id"] == started.json()["id"]  # one run per Idempotency-Key
            run = service.poll(http, started.json()["id"], RUN_TIMEOUT)
            assert run["status"] == "failed", run
            assert "Refusing to fetch" in run["error"] and "loopback" in run["error"] and "secret" not in run["error"]
            logs = "\n".join(log.message for log in flow_run_logs(run["id"]))
            assert "Unexpected result for failed state" not in logs  # a clean Failed state
            events = [e for e in http.get("/v1/audit-events").json()["events"] if e["runId"] == started.json()["id"]]
            assert events and "secret" not in json.dumps(events)
        assert _Counting.requests == []  # neither the API nor the run asked it for anything
    finally:
        listener.shutdown()
        listener.server_close()
