"""Uploads straight into an S3 bucket, end to end: a ``ferry api`` whose managed storage is a bucket on the moto server.

``POST /v1/uploads`` answers with a presigned S3 POST; the file is posted to
moto as a multipart form; the first look at the upload fetches it into the
upload folder (then the bucket's copy goes), and the import steps and an
import run use it like any other upload. The API process shares the module's
``ferry serve``, store and data folder (tests/api/conftest.py), so the import
run reads the fetched file where the API left it.

Moto 5.2 checks neither the policy's ``content-length-range`` nor its
expiry (a POST of another size is stored, answered 204): the tests assert the
signed policy itself, and that Ferry's own fetch refuses an object of the wrong
size, as real S3 would have refused the POST (400 EntityTooLarge / EntityTooSmall).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from servers.api import start_api
from servers.prefect import ferry_env
from servers.s3 import ACCESS_KEY, SECRET_KEY, MotoServer
from sqlalchemy import text

RUN_TIMEOUT = 240
FOLDER = "managed"


@dataclass
class BucketService:
    """The API with managed storage in ``bucket`` (folder ``managed``) on ``moto``."""

    service: object  # conftest.Service, its url that of this API
    moto: MotoServer
    bucket: str

    def objects(self) -> list[str]:
        return [o["Key"] for o in self.moto.client().list_objects_v2(Bucket=self.bucket).get("Contents", [])]


@pytest.fixture(scope="module")
def bucket_api(service, moto_server, tmp_path_factory):
    """A second ``ferry api`` (same Prefect server, ``ferry serve``, store and data folder) with FERRY_MANAGED_DESTINATION on moto."""
    from prefect_aws import S3Bucket

    bucket = moto_server.new_bucket()
    tag = uuid.uuid4().hex[:8]
    credentials = moto_server.credentials()
    credentials.save(f"aws-uploads-{tag}", overwrite=True)
    S3Bucket(bucket_name=bucket, bucket_folder=FOLDER, credentials=credentials).save(f"uploads-{tag}", overwrite=True)
    env = ferry_env(
        service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_MANAGED_DESTINATION=f"s3-bucket/uploads-{tag}"
    )
    process, url = start_api(tmp_path_factory.mktemp("api-s3"), env, name="ferry-api-s3-uploads")
    try:
        yield BucketService(replace(service, url=url, env=env), moto_server, bucket)
    finally:
        process.stop()


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def contacts_csv(tag: str) -> tuple[bytes, list[str]]:
    emails = [f"api-s3-{tag}-{n}@example.com" for n in range(3)]
    rows = ["Email,First Name,Last Name", f"{emails[0]},Ada,Lovelace", f"{emails[1]},Grace,Hopper", f"{emails[2]},Alan,Turing"]
    return ("\n".join(rows) + "\n").encode(), emails


def policy(target: dict) -> dict:
    return json.loads(base64.b64decode(target["fields"]["policy"]))


def post_to_bucket(target: dict, content: bytes, filename: str = "contacts.csv") -> httpx.Response:
    """The browser's way: a multipart form of the presigned fields, the file last."""
    return httpx.post(target["url"], data=target["fields"], files={"file": (filename, content, "text/csv")}, timeout=30)


def test_presigned_post_to_the_bucket_then_preview_and_import(bucket_api):
    service = bucket_api.service
    content, emails = contacts_csv(uuid.uuid4().hex[:8])
    with service.client("acme-admin") as http:
        created = http.post("/v1/uploads", json={"filename": "contacts.csv", "sizeBytes": len(content)})
        assert created.status_code == 201, created.text
        target = created.json()
        upload_id = target["uploadId"]
        key = f"{FOLDER}/uploads/acme/{upload_id}/contacts.csv"
        assert created.headers["Location"] == f"/v1/uploads/{upload_id}"
        assert target["method"] == "POST" and target["url"] == f"{bucket_api.moto.url}/{bucket_api.bucket}"
        assert target["headers"] == {} and target["maxBytes"] == 100 * 1024 * 1024
        fields = target["fields"]
        assert fields["key"] == key and fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and fields["x-amz-signature"]
        assert fields["x-amz-credential"].startswith(f"{ACCESS_KEY}/") and SECRET_KEY not in created.text
        signed = policy(target)
        assert ["content-length-range", len(content), len(content)] in signed["conditions"]  # exactly the announced size
        assert {"bucket": bucket_api.bucket} in signed["conditions"] and {"key": key} in signed["conditions"]
        expires = datetime.fromisoformat(target["expiresAt"])
        assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15, seconds=5)
        assert abs(datetime.fromisoformat(signed["expiration"].replace("Z", "+00:00")) - expires) <= timedelta(seconds=2)

        meta = json.loads((service.data_dir / "uploads" / "acme" / f"{upload_id}.json").read_text())
        assert meta["bucketKey"] == f"uploads/acme/{upload_id}/contacts.csv"
        assert meta["bucketLocation"] == f"s3://{bucket_api.bucket}/{key}"
        assert http.get(f"/v1/uploads/{upload_id}").json()["status"] == "pending"  # nothing in the bucket yet
        assert "S3 url" in problem(http.post("/v1/imports/preview", json={"uploadId": upload_id}), 409)["detail"]

        posted = post_to_bucket(target, content)
        assert posted.status_code in (201, 204), posted.text
        assert bucket_api.objects() == [key]

        status = http.get(f"/v1/uploads/{upload_id}")
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "completed" and status.json()["sizeBytes"] == len(content)
        folder = service.data_dir / "uploads" / "acme" / upload_id
        assert sorted(p.name for p in folder.iterdir()) == ["contacts.csv"]  # whole, no partial file left
        assert (folder / "contacts.csv").read_bytes() == content
        assert bucket_api.objects() == []  # fetched once, the bucket's copy is gone
        audit = [e for e in http.get("/v1/audit-events").json()["events"] if e["action"] == "api.upload"]
        assert audit[0]["details"]["uploadId"] == upload_id and audit[0]["details"]["via"] == "s3-post"

        preview = http.post("/v1/imports/preview", json={"uploadId": upload_id})
        assert preview.status_code == 200, preview.text
        assert preview.json()["columns"] == ["Email", "First Name", "Last Name"] and preview.json()["totalRows"] == 3
        validated = http.post("/v1/imports/validate", json={"uploadId": upload_id, "resource": "contacts", "autoMap": True})
        assert validated.status_code == 200 and validated.json()["validRows"] == 3, validated.text

        started = http.post("/v1/imports", json={"uploadId": upload_id, "resource": "contacts", "autoMap": True})
        assert started.status_code == 202, started.text
        run = service.poll(http, started.json()["id"], RUN_TIMEOUT)
        assert run["status"] == "succeeded" and run["createdRows"] == 3, run
    query = text("SELECT c.email FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme' AND c.email = ANY(:e)")
    with service.engine.connect() as conn:
        assert {row[0] for row in conn.execute(query, {"e": emails})} == set(emails)

    with service.client("globex-admin") as other:  # another workspace: as if it did not exist
        problem(other.get(f"/v1/uploads/{upload_id}"), 404)


def test_an_object_of_another_size_is_refused_and_the_form_can_be_posted_again(bucket_api):
    service = bucket_api.service
    content, _ = contacts_csv("sizes")
    with service.client("acme-admin") as http:
        target = http.post("/v1/uploads", json={"filename": "contacts.csv", "sizeBytes": len(content)}).json()
        upload_id = target["uploadId"]
        folder = service.data_dir / "uploads" / "acme" / upload_id

        larger = post_to_bucket(target, content + b"extra@example.com,Eve,Extra\n")
        if larger.status_code in (400, 403):  # an S3 that enforces the policy refuses it itself
            assert "EntityTooLarge" in larger.text
        else:  # moto stores it regardless: Ferry's fetch refuses it, as a PUT of too many bytes is refused
            assert larger.status_code in (201, 204), larger.text
            assert "sizeBytes" in problem(http.get(f"/v1/uploads/{upload_id}"), 413)["detail"]
        assert bucket_api.objects() == [] and list(folder.iterdir()) == []  # nothing kept, here or there
        assert http.get(f"/v1/uploads/{upload_id}").json()["status"] == "pending"

        smaller = post_to_bucket(target, content[:-5])
        if smaller.status_code in (400, 403):
            assert "EntityTooSmall" in smaller.text
        else:
            assert smaller.status_code in (201, 204), smaller.text
            assert "fewer than" in problem(http.post("/v1/imports/preview", json={"uploadId": upload_id}), 400)["detail"]
        assert bucket_api.objects() == [] and list(folder.iterdir()) == []

        assert post_to_bucket(target, content).status_code in (201, 204)  # the same form, within its 15 minutes
        preview = http.post("/v1/imports/preview", json={"uploadId": upload_id})
        assert preview.status_code == 200 and preview.json()["totalRows"] == 3, preview.text
        assert http.get(f"/v1/uploads/{upload_id}").json()["status"] == "completed"

        odd = http.post("/v1/uploads", json={"filename": "contacts${filename}", "sizeBytes": 3}).json()
        assert odd["fields"]["key"] == f"{FOLDER}/uploads/acme/{odd['uploadId']}/content"  # no starts-with key condition
        assert {"key": odd["fields"]["key"]} in policy(odd)["conditions"]
