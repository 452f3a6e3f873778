"""/v1/export-jobs end to end, over HTTP against the live service (see conftest.py): jobs, runs, secrets, errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from werkzeug import Request, Response

RUN_TIMEOUT = 240
SECRET = "whsec-" + uuid.uuid4().hex  # the webhook's signing secret: never in a response, parameter, log or artifact
RUN_FIELDS = {"id", "jobId", "status", "startedAt", "completedAt", "recordCount", "fileSize", "destinationPath", "error"}
JOB_FIELDS = {
    *("id", "name", "description", "destinationType", "destinationConfig", "format", "schemaId", "catalogId", "dimensionScope"),
    *("schedule", "includeVariants", "compress", "filenameTemplate", "active"),
    *("resource", "fields", "filters", "timezone", "incremental", "segment", "lists", "activityTypes", "notifications", "options"),
    *("createdAt", "updatedAt", "nextRunAt", "deployment"),
}


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"] and body["instance"] == response.headers["x-request-id"]
    return body


def nightly(name: str, url: str, **changes) -> dict:
    """The seed's nightly export, adapted: products of catalog `main` to a signed webhook instead of S3."""
    return {
        "name": name,
        "description": "Nightly product feed for the partner portal",
        "destinationType": "webhook",
        "destinationConfig": {"url": url, "secret": SECRET},
        "format": "csv",
        "catalogId": "main",
        "dimensionScope": {"language": "en"},
        "schedule": "0 2 * * *",
        "includeVariants": True,
        "compress": False,
        "filenameTemplate": "products-{date}.csv",
        "active": True,
        **changes,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deployment_parameters(job_id: str) -> dict:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment(uuid.UUID(job_id)).parameters


@pytest.fixture
def receiver(httpserver_ipv4):
    """A webhook receiver that checks Ferry's signature with SECRET and keeps each file by name."""
    files: dict[str, bytes] = {}

    def receive(request: Request) -> Response:
        body = request.get_data()
        parts = dict(item.split("=", 1) for item in request.headers["X-Ferry-Signature"].split(","))
        expected = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return Response("bad signature", status=401)
        files[request.headers["X-Ferry-Filename"]] = body
        return Response("ok")

    httpserver_ipv4.expect_request("/files", method="POST").respond_with_handler(receive)
    return httpserver_ipv4.url_for("/files"), files


def test_create_get_list_replace_and_secrets_stay_secret(service):
    from blocks.webhook import Webhook

    name = unique("nightly-products")
    with service.client("acme-operator") as http:
        created = http.post("/v1/export-jobs", json=nightly(name, "http://127.0.0.1:9/files"))
        assert created.status_code == 201, created.text
        job = created.json()
        assert created.headers["Location"] == f"/v1/export-jobs/{job['id']}" and set(job) == JOB_FIELDS
        assert job["destinationConfig"] == {"url": "http://127.0.0.1:9/files", "secret": "***"} and SECRET not in created.text
        assert {k: job[k] for k in ("name", "format", "catalogId", "schedule", "includeVariants", "compress", "active")} == {
            "name": name,
            "format": "csv",
            "catalogId": "main",
            "schedule": "0 2 * * *",
            "includeVariants": True,
            "compress": False,
            "active": True,
        }
        assert job["dimensionScope"] == {"language": "en"} and job["filenameTemplate"] == "products-{date}.csv"
        assert job["resource"] == "products" and job["timezone"] == "UTC" and job["deployment"] == f"export-data/{name}"
        assert job["nextRunAt"] and job["createdAt"] and job["schemaId"] is None

        parameters = deployment_parameters(job["id"])
        assert SECRET not in json.dumps(parameters)
        assert parameters["request"]["destination"] == f"webhook-endpoint/job-{name}" and parameters["request"]["workspace"] == "acme"
        assert Webhook.load(f"job-{name}").secret.get_secret_value() == SECRET  # saved at once, as a block

        with service.client("acme-viewer") as viewer:
            shown = viewer.get(f"/v1/export-jobs/{job['id']}")
            assert shown.status_code == 200 and shown.json() == {**job, "nextRunAt": shown.json()["nextRunAt"]}
            listed = viewer.get("/v1/export-jobs")
            assert listed.status_code == 200 and job["id"] in [j["id"] for j in listed.json()["jobs"]] and SECRET not in listed.text
        with service.client("globex-admin") as other:
            assert job["id"] not in [j["id"] for j in other.get("/v1/export-jobs").json()["jobs"]]

        # PUT is a full replace: the GET body sent back with changes; "***" keeps the saved secret, omitted fields go to defaults
        replaced = {k: v for k, v in shown.json().items() if k not in ("includeVariants", "filenameTemplate")}
        replaced |= {"description": "Twice a day", "schedule": "0 6,18 * * *", "timezone": "Europe/Berlin", "compress": True}
        put = http.put(f"/v1/export-jobs/{job['id']}", json=replaced)
        assert put.status_code == 200, put.text
        after = put.json()
        assert after["id"] == job["id"] and after["schedule"] == "0 6,18 * * *" and after["timezone"] == "Europe/Berlin"
        assert after["description"] == "Twice a day" and after["compress"] is True and after["includeVariants"] is False
        assert after["filenameTemplate"] == "{resource}-{workspace}-{date}-{run_id}.{format}" and SECRET not in put.text
        assert Webhook.load(f"job-{name}").secret.get_secret_value() == SECRET
        assert http.get(f"/v1/export-jobs/{name}").json()["id"] == job["id"]  # a job is also found by name

        moved = http.put(f"/v1/export-jobs/{job['id']}", json={**after, "destinationConfig": {"url": "http://127.0.0.1:8/in"}})
        assert moved.status_code == 200 and moved.json()["destinationConfig"] == {"url": "http://127.0.0.1:8/in"}
        assert Webhook.load(f"job-{name}").secret is None  # a new config without the secret: the secret is gone
        assert http.delete(f"/v1/export-jobs/{job['id']}").status_code == 204


def test_s3_credentials_become_blocks_and_are_masked(service):
    from prefect_aws import S3Bucket

    name = unique("s3-feed")
    secret_key = "aws-" + uuid.uuid4().hex
    config = {
        "bucket": "feeds",
        "path": "acme",
        "region": "eu-west-1",
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": secret_key,
    }
    with service.client("acme-admin") as http:
        created = http.post("/v1/export-jobs", json={"name": name, "destinationType": "s3", "destinationConfig": config, "schedule": None})
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["destinationConfig"] == {**config, "aws_secret_access_key": "***"} and secret_key not in created.text
        assert job["schedule"] is None and job["nextRunAt"] is None
        assert deployment_parameters(job["id"])["request"]["destination"] == f"s3-bucket/job-{name}"
        bucket = S3Bucket.load(f"job-{name}")
        assert bucket.bucket_name == "feeds" and bucket.credentials.aws_secret_access_key.get_secret_value() == secret_key
        assert http.delete(f"/v1/export-jobs/{job['id']}").status_code == 204
        with pytest.raises(ValueError):
            S3Bucket.load(f"job-{name}")  # the job's blocks go with it


def test_pause_and_resume_flip_active(service):
    name = unique("pausable")
    with service.client("acme-operator") as http:
        job = http.post("/v1/export-jobs", json=nightly(name, "http://127.0.0.1:9/files")).json()
        paused = http.post(f"/v1/export-jobs/{job['id']}/pause")
        assert paused.status_code == 200 and paused.json()["active"] is False and paused.json()["nextRunAt"] is None
        assert http.get(f"/v1/export-jobs/{job['id']}").json()["active"] is False
        resumed = http.post(f"/v1/export-jobs/{job['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["active"] is True and resumed.json()["nextRunAt"]
        with service.client("acme-viewer") as viewer:
            problem(viewer.post(f"/v1/export-jobs/{job['id']}/pause"), 403)
        http.delete(f"/v1/export-jobs/{job['id']}")


def test_run_now_delivers_and_the_run_is_in_the_history(service, receiver):
    from servers.prefect import flow_run_logs

    from ferry.runs import read_run

    url, files = receiver
    name = unique("feed-now")
    with service.client("acme-operator") as http:
        job = http.post("/v1/export-jobs", json=nightly(name, url)).json()
        with service.client("acme-viewer") as viewer:
            problem(viewer.post(f"/v1/export-jobs/{job['id']}/run-now"), 403)
        started = http.post(f"/v1/export-jobs/{job['id']}/run-now")
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["Location"] == f"/v1/runs/{run_id}" and started.json()["jobId"] == job["id"]
        run = service.poll(http, run_id, RUN_TIMEOUT)
        assert run["status"] == "succeeded", run

        history = http.get(f"/v1/export-jobs/{job['id']}/runs", params={"limit": 50})
        assert history.status_code == 200
        runs = history.json()["runs"]
        assert runs[0]["id"] == run_id and set(runs[0]) == RUN_FIELDS
        assert runs[0]["jobId"] == job["id"] and runs[0]["status"] == "success" and runs[0]["error"] is None
        assert runs[0]["recordCount"] > 0 and runs[0]["startedAt"] and runs[0]["completedAt"]
        (filename, content) = next(iter(files.items()))
        assert filename.startswith("products-") and runs[0]["fileSize"] == len(content)
        assert '"sku"' in content.decode().splitlines()[0]  # a CSV of products, header first

    shown = json.dumps(read_run(run_id), default=str)  # the run's parameters and artifacts
    logs = flow_run_logs(run_id)
    assert logs and SECRET not in shown and not [log for log in logs if SECRET in log.message]
    with service.client("acme-operator") as http:
        http.delete(f"/v1/export-jobs/{job['id']}")
    with service.client("acme-admin") as http:  # who created, ran and deleted the job is in the audit log, with no secret
        events = [e for e in http.get("/v1/audit-events").json()["events"] if (e["details"] or {}).get("job") == name]
        assert {e["action"] for e in events} == {"api.export_job.create", "api.export_job.run_now", "api.export_job.delete"}
        assert all(e["actor"].startswith("key:") and e["details"]["role"] == "operator" for e in events)
        assert next(e for e in events if e["action"] == "api.export_job.run_now")["runId"] == run_id
        assert SECRET not in json.dumps(events)


def test_recorded_runs_join_the_history(service):
    from ferry.runs import read_run

    name = unique("recorded")
    with service.client("acme-operator") as http:
        job = http.post("/v1/export-jobs", json={"name": name, "destinationType": "managed", "schedule": "0 3 * * *"}).json()
        started = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
        report = {
            "status": "success",
            "startedAt": started.isoformat(),
            "completedAt": (started + timedelta(seconds=42)).isoformat(),
            "recordCount": 1234,
            "fileSize": 56789,
            "destinationPath": "s3://feeds/acme/products-2026-12-04.csv",
        }
        recorded = http.post(f"/v1/export-jobs/{job['id']}/runs", json=report)
        assert recorded.status_code == 201, recorded.text
        run = recorded.json()
        assert set(run) == RUN_FIELDS and recorded.headers["Location"] == f"/v1/runs/{run['id']}"
        failed = http.post(
            f"/v1/export-jobs/{job['id']}/runs",
            json={"status": "failed", "startedAt": started.isoformat(), "error": "Partner SFTP refused"},
        )
        assert failed.status_code == 201, failed.text

        runs = http.get(f"/v1/export-jobs/{job['id']}/runs").json()["runs"]
        assert [r["id"] for r in runs] == [failed.json()["id"], run["id"]]  # newest first
        when = {k: datetime.fromisoformat(runs[1][k].replace("Z", "+00:00")) for k in ("startedAt", "completedAt")}
        assert when == {"startedAt": started, "completedAt": started + timedelta(seconds=42)}  # when it ran, not when recorded
        assert runs[1] | {"startedAt": None, "completedAt": None} == {
            "id": run["id"],
            "jobId": job["id"],
            "status": "success",
            "startedAt": None,
            "completedAt": None,
            "recordCount": 1234,
            "fileSize": 56789,
            "destinationPath": "s3://feeds/acme/products-2026-12-04.csv",
            "error": None,
        }
        record = read_run(run["id"])["record"]  # the persisted run record carries the posted fields as they were
        assert record["started_at"] == started.isoformat().replace("+00:00", "Z") and record["run_id"] == run["id"]
        assert record["completed_at"] == (started + timedelta(seconds=42)).isoformat().replace("+00:00", "Z")
        assert (record["record_count"], record["file_size"], record["workspace"]) == (1234, 56789, "acme")
        assert runs[1]["startedAt"] and runs[0]["completedAt"]
        assert runs[1]["completedAt"] and runs[0]["status"] == "failed" and runs[0]["error"] == "Partner SFTP refused"
        assert http.get(f"/v1/export-jobs/{job['id']}/runs", params={"limit": 1}).json()["runs"][0]["id"] == failed.json()["id"]
        assert http.get(f"/v1/runs/{run['id']}").json()["status"] == "succeeded"  # the run ledger shows it like any run

        bad = problem(
            http.post(
                f"/v1/export-jobs/{job['id']}/runs",
                json={"status": "running", "startedAt": "yesterday", "recordCount": -1, "id": "mine"},
            ),
            422,
        )
        assert {"status", "startedAt", "recordCount", "id"} <= {e["field"] for e in bad["errors"]}
        late = {"status": "success", "startedAt": started.isoformat(), "completedAt": (started - timedelta(hours=1)).isoformat()}
        assert "completedAt" in {e["field"] for e in problem(http.post(f"/v1/export-jobs/{job['id']}/runs", json=late), 422)["errors"]}
        with service.client("acme-viewer") as viewer:
            problem(viewer.post(f"/v1/export-jobs/{job['id']}/runs", json=report), 403)
            assert len(viewer.get(f"/v1/export-jobs/{job['id']}/runs").json()["runs"]) == 2

        assert http.delete(f"/v1/export-jobs/{job['id']}").status_code == 204  # the job and its whole history
        problem(http.get(f"/v1/export-jobs/{job['id']}"), 404)
        problem(http.get(f"/v1/runs/{run['id']}"), 404)


def test_errors_have_their_status(service):
    name = unique("taken")
    with service.client("acme-operator") as http:
        job = http.post("/v1/export-jobs", json=nightly(name, "http://127.0.0.1:9/files")).json()
        body = problem(
            http.post(
                "/v1/export-jobs",
                json={
                    "name": "no spaces allowed",
                    "destinationType": "webhook",
                    "destinationConfig": {"url": "ftp://partner", "secret": SECRET, "colour": "blue"},
                    "format": "xlsxx",
                    "schedule": "every night",
                    "includeVariants": "sometimes",
                },
            ),
            422,
        )
        fields = {e["field"] for e in body["errors"]}
        assert {"name", "format", "schedule", "includeVariants", "destinationConfig.url", "destinationConfig.colour"} <= fields
        assert SECRET not in json.dumps(body)
        body = problem(
            http.post("/v1/export-jobs", json=nightly(unique("x"), "http://127.0.0.1:9/f", resource="contacts", fields=["nope"])), 422
        )
        assert {"catalogId", "includeVariants", "dimensionScope"} <= {e["field"] for e in body["errors"]}
        problem(http.post("/v1/export-jobs", json=nightly(unique("x"), "http://h/f", destinationType="carrier-pigeon")), 422)
        unsupported = problem(http.post("/v1/export-jobs", json=nightly(unique("x"), "/tmp", destinationType="local")), 422)
        assert "managed" in unsupported["errors"][0]["reason"]
        problem(http.post("/v1/export-jobs", json={"destinationType": "managed"}), 422)  # name and schedule are required
        problem(http.post("/v1/export-jobs", content=b"name=x", headers={"content-type": "text/plain"}), 415)

        problem(http.post("/v1/export-jobs", json=nightly(name, "http://127.0.0.1:9/files")), 409)
        problem(http.post("/v1/export-jobs", json=nightly(unique("x"), "http://127.0.0.1:9/f", workspace="globex")), 404)
        missing = str(uuid.uuid4())
        for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("GET", "/runs"), ("POST", "/run-now")):
            problem(http.request(method, f"/v1/export-jobs/{missing}{path}", json=nightly(name, "http://h/f")), 404)
        problem(http.get("/v1/export-jobs/not-a-job"), 404)
        problem(http.get(f"/v1/export-jobs/{job['id']}/runs", params={"limit": 0}), 422)
        renamed = problem(http.put(f"/v1/export-jobs/{job['id']}", json=nightly(unique("other"), "http://127.0.0.1:9/files")), 422)
        assert renamed["errors"][0]["field"] == "name"

    with service.client("globex-admin") as other:  # another workspace's job: as if it did not exist
        for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"), ("GET", "/runs")):
            problem(other.request(method, f"/v1/export-jobs/{job['id']}{path}", json=nightly(name, "http://h/f")), 404)
        problem(other.post(f"/v1/export-jobs/{job['id']}/run-now"), 404)
        problem(other.get(f"/v1/export-jobs/{name}"), 404)
    with service.client("acme-viewer") as viewer:  # viewers read, never write or run
        assert viewer.get(f"/v1/export-jobs/{job['id']}").status_code == 200
        denied = problem(viewer.post("/v1/export-jobs", json=nightly(unique("v"), "http://h/f")), 403)
        assert "export_jobs.write needs operator" in denied["detail"]
        problem(viewer.put(f"/v1/export-jobs/{job['id']}", json=nightly(name, "http://h/f")), 403)
        problem(viewer.delete(f"/v1/export-jobs/{job['id']}"), 403)
        problem(viewer.post(f"/v1/export-jobs/{job['id']}/resume"), 403)
    with service.client() as anonymous:
        problem(anonymous.get("/v1/export-jobs"), 401)
    with service.client("acme-operator") as http:
        assert http.delete(f"/v1/export-jobs/{job['id']}").status_code == 204
        problem(http.delete(f"/v1/export-jobs/{job['id']}"), 404)
