"""/compat/cordial against the live service (see conftest.py): Cordial's contactexports, its Jobs resource, rules and errors.

The four example bodies of the document are replayed as written, except that
servers, ports, buckets and credentials point at the loopback test servers
(SFTP, moto S3, the GCS emulator), and audience and list keys name what the
seeded store holds (each change is commented). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import uuid

import httpx
import pytest
from servers.api import start_api
from servers.prefect import ferry_env, flow_run_logs
from servers.s3 import ACCESS_KEY, SECRET_KEY
from sqlalchemy import text

BASE = "/compat/cordial"
RUN_TIMEOUT = 240
JOB_FIELDS = {
    "_id": str,
    "jobID": str,
    "jobName": str,
    "name": (str, type(None)),
    "status": str,
    "percentComplete": int,
    "times": dict,
    "totalItems": (int, type(None)),
    "completedItems": (int, type(None)),
    "recordCount": (int, type(None)),
    "fileSize": (int, type(None)),
    "fileName": (str, type(None)),
    "exportType": str,
    "showHeader": bool,
    "compress": bool,
    "destination": dict,
    "location": (str, type(None)),
    "error": (str, type(None)),
    "downloadUrl": (str, type(None)),
    "downloadUrlExpiresAt": (str, type(None)),
}
CONTACTS = 120  # per workspace, seeded by conftest.py (checked against the store below)


class Cordial:
    """A ``ferry api`` of the same service (Prefect, runner, store) whose server sends e-mail and pins SFTP host keys."""

    def __init__(self, url: str, service, smtp_block: str):
        self.url, self.service, self.smtp_block = url, service, smtp_block

    def client(self, key: str = "acme-admin") -> httpx.Client:
        """A client as Cordial's own: HTTP Basic, the API key as user name and an empty password."""
        return httpx.Client(base_url=self.url + BASE, auth=(self.service.keys[key], ""), timeout=60)


@pytest.fixture(scope="module")
def cordial(service, smtp_server, sftp_server, tmp_path_factory):
    from blocks.smtp import SmtpServer

    workdir = tmp_path_factory.mktemp("cordial-api")
    smtp = f"cordial-tests-{uuid.uuid4().hex[:6]}"
    SmtpServer(
        smtp_server=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_type="STARTTLS",
        username=smtp_server.username,
        password=smtp_server.password,
        ca_file=smtp_server.ca_file,
        sender="Ferry <ferry@example.com>",
        timeout=10,
    ).save(smtp)
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"# the operator's pins\n{sftp_server.host_key_line}\n")
    env = ferry_env(
        service.env["PREFECT_API_URL"],
        service.data_dir,
        service.store_url,
        FERRY_SMTP_BLOCK=f"smtp-server/{smtp}",
        FERRY_SSH_KNOWN_HOSTS=str(known_hosts),
    )
    process, url = start_api(workdir, env, name="ferry-api-cordial")
    try:
        yield Cordial(url, service, smtp)
    finally:
        process.stop()


def cordial_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] is True and isinstance(body["message"], str) and body["message"]
    if status == 422:
        assert isinstance(body["messages"], dict)
        assert all(isinstance(reasons, list) and all(isinstance(r, str) for r in reasons) for reasons in body["messages"].values())
    return body


def check_job(job: dict) -> None:
    assert set(job) == set(JOB_FIELDS), set(job) ^ set(JOB_FIELDS)
    for name, kind in JOB_FIELDS.items():
        assert isinstance(job[name], kind), (name, job[name])
    assert job["_id"] == job["jobID"] and job["jobName"] == "ExportContacts"
    assert job["status"] in ("Pending", "Processing", "Done", "Failed")
    assert set(job["times"]) == {"start", "end"} and all(isinstance(v, (str, type(None))) for v in job["times"].values())
    assert isinstance(job["destination"]["type"], str)


def created(http: httpx.Client, body: dict, **headers: str) -> dict:
    response = http.post("/contactexports", json=body, headers=headers)
    assert response.status_code == 200, response.text
    job = response.json()
    check_job(job)
    assert job["status"] in ("Pending", "Processing", "Done")
    assert response.headers["Location"] == f"{BASE}/jobs/{job['jobID']}"
    return job


def finished(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        response = http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in ("Done", "Failed") or time.monotonic() > deadline:
            check_job(job)
            assert job["status"] == "Done", job
            assert job["percentComplete"] == 100 and job["times"]["start"] and job["times"]["end"]
            assert job["totalItems"] == job["completedItems"] == job["recordCount"]
            return job
        time.sleep(1)


def scalar(service, sql: str, **params):
    with service.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def acme(where: str = "TRUE") -> str:
    return f"SELECT COUNT(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.slug = 'acme' AND {where}"


def members(service, list_key: str) -> set[str]:
    with service.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.email FROM list_memberships m JOIN lists l ON l.id = m.list_id JOIN contacts c ON c.id = m.contact_id "
                "JOIN workspaces w ON w.id = l.workspace_id WHERE w.slug = 'acme' AND l.key = :key"
            ),
            {"key": list_key},
        )
        return {r[0] for r in rows}


def run_traces(job_id: str) -> tuple[dict, str]:
    """The Prefect flow run's parameters, and its logs and artifacts as one text."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    logs = flow_run_logs(job_id)
    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(uuid.UUID(job_id)).parameters
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(job_id)])))
    return parameters, "\n".join([log.message for log in logs] + [json.dumps(a.data, default=str) for a in artifacts])


def audit_details(service, job_id: str) -> dict:
    with service.client("acme-admin") as native:
        events = [e for e in native.get("/v1/audit-events").json()["events"] if e["runId"] == job_id and e["action"] == "api.export.start"]
    assert len(events) == 1, events
    return events[0]["details"]


def mail_to(mailbox, address: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _from, recipients, message in mailbox.messages:
            if address in recipients:
                return message["Subject"]
        time.sleep(0.5)
    raise AssertionError(f"no e-mail to {address}: {[m[1] for m in mailbox.messages]}")


def test_documented_aws_example_is_downloaded_through_its_download_url(cordial, mailbox):
    body = {
        "exportType": "csv",
        "name": "contactExport",
        "destination": {"type": "aws"},
        "showHeader": True,
        "confirmEmail": "msmith@example.com",
    }
    with cordial.client() as http:
        job = created(http, body)
        assert job["name"] == "contactExport" and job["destination"] == {"type": "aws"} and job["downloadUrl"] is None
        done = finished(http, job["jobID"])
        assert done["recordCount"] == CONTACTS and done["fileSize"] > 0 and done["fileName"] == "contactExport.csv"
        assert done["exportType"] == "csv" and done["showHeader"] is True and done["compress"] is False and done["location"] is None
        assert done["downloadUrl"] and done["downloadUrlExpiresAt"]
        rows = list(csv.reader(io.StringIO(httpx.get(done["downloadUrl"], timeout=60).text)))
        time.sleep(1.1)
        again = http.get(f"/jobs/{job['jobID']}").json()
    assert again["downloadUrl"] != done["downloadUrl"]  # a fresh signed URL on every call
    header = rows[0]  # showHeader true: the column names come first
    assert header[:3] == ["id", "external_id", "email"] and header[-3:] == ["newsletter", "vip", "beta"]  # every field, every list
    assert len(rows) - 1 == CONTACTS
    assert {row[header.index("vip")] for row in rows[1:]} <= {"0", "1"}
    vip = {row[header.index("email")] for row in rows[1:] if row[header.index("vip")] == "1"}
    assert vip == members(cordial.service, "vip")
    assert mail_to(mailbox, "msmith@example.com").startswith("Ferry export succeeded: contacts of workspace acme")
    with cordial.client("acme-viewer") as viewer:
        seen = viewer.get(f"/jobs/{job['jobID']}").json()
    assert seen["status"] == "Done" and seen["downloadUrl"] is None  # downloads are admin-only


def test_documented_sftp_example_uploads_the_two_fields(cordial, sftp_server, mailbox):
    body = {
        "exportType": "csv",
        "name": "contactExport",
        # as written but for the test server: "server": "example.com", "port": "21", "username": "username", "password": "password"
        "destination": {
            "type": "sftp",
            "server": sftp_server.host,
            "port": str(sftp_server.port),
            "username": sftp_server.username,
            "password": sftp_server.password,
            "path": "/",
        },
        "showHeader": True,
        "fields": ["channels.email.address", "first_name"],
        "confirmEmail": "msmith@example.com",
    }
    (sftp_server.root / "contactExport.csv").unlink(missing_ok=True)
    with cordial.client() as http:
        response = http.post("/contactexports", json=body)
        assert sftp_server.password not in response.text
        job = response.json()
        check_job(job)
        done = finished(http, job["jobID"])
    assert done["destination"] == {"type": "sftp"} and done["downloadUrl"] is None
    assert done["location"] == f"sftp://127.0.0.1:{sftp_server.port}/contactExport.csv" and done["fileName"] == "contactExport.csv"
    rows = list(csv.reader(io.StringIO((sftp_server.root / "contactExport.csv").read_text())))
    assert rows[0] == ["channels.email.address", "first_name"]  # headed by the names asked for
    assert len(rows) - 1 == CONTACTS == done["recordCount"]
    assert all("@" in row[0] for row in rows[1:])

    parameters, traces = run_traces(job["jobID"])
    reference = parameters["request"]["destination"]
    assert reference.startswith("sftp/cordial-contactexport-")  # the run names the block, never the credentials
    assert sftp_server.password not in json.dumps(parameters) and sftp_server.password not in traces
    from blocks.sftp import SftpServer

    saved = SftpServer.load(reference.partition("/")[2])
    assert saved.password.get_secret_value() == sftp_server.password and saved.host_key == sftp_server.host_key_line
    details = audit_details(cordial.service, job["jobID"])
    assert details["adapter"] == "cordial" and details["destinationType"] == "sftp" and details["block"] == reference
    assert sftp_server.password not in json.dumps(details)
    assert CONTACTS == scalar(cordial.service, acme())
    mail_to(mailbox, "msmith@example.com")


def test_documented_s3_example_with_audience_fields_and_lists(cordial, moto_server, mailbox):
    bucket = moto_server.new_bucket()  # "my_bucket" is no valid bucket name: a fresh one on the test server
    body = {
        "exportType": "csv",
        "name": "myExportFilename",
        "destination": {
            "type": "s3",
            "aws_access_key_id": ACCESS_KEY,  # the test server's keys instead of A1234567890 / B1234567890
            "aws_secret_access_key": SECRET_KEY,
            "aws_bucket": bucket,
            "aws_region": "us-west-2",
            "path": "folder",
            "aws_endpoint_url": moto_server.url,  # Ferry's addition: the S3-compatible test server
        },
        "showHeader": True,
        "audience-key": "customers",  # the seeded store's audience instead of 30_day_engaged
        "fields": ["channels.email.address", "channels.email.subscribeStatus"],
        "lists": ["newsletter", "vip"],  # seeded list keys instead of monthly_newsletter and first_name (a field, not a list)
        "confirmEmail": "msmith@example.com",
    }
    with cordial.client() as http:
        response = http.post("/contactexports", json=body)
        assert response.status_code == 200, response.text
        assert SECRET_KEY not in response.text
        job = response.json()
        done = finished(http, job["jobID"])
        assert SECRET_KEY not in http.get(f"/jobs/{job['jobID']}").text
    expected = scalar(cordial.service, acme("c.lifecycle_stage = 'customer'"))
    assert done["recordCount"] == expected and done["destination"] == {"type": "s3"}
    assert done["location"] == f"s3://{bucket}/folder/myExportFilename.csv"
    data = moto_server.client().get_object(Bucket=bucket, Key="folder/myExportFilename.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(data)))
    assert list(rows[0]) == ["channels.email.address", "channels.email.subscribeStatus", "newsletter", "vip"]
    assert len(rows) == expected
    newsletter = members(cordial.service, "newsletter")
    assert all(row["newsletter"] == ("1" if row["channels.email.address"] in newsletter else "0") for row in rows)
    parameters, traces = run_traces(job["jobID"])
    request = parameters["request"]
    assert request["segment"] == "customers" and request["lists"] == ["newsletter", "vip"]
    assert request["destination"].startswith("s3-bucket/cordial-myexportfilename-")
    assert SECRET_KEY not in json.dumps(parameters) and SECRET_KEY not in traces
    assert SECRET_KEY not in json.dumps(audit_details(cordial.service, job["jobID"]))
    mail_to(mailbox, "msmith@example.com")


def test_documented_gcs_example_uses_the_workspace_integration(cordial, gcs_server, mailbox):
    from prefect_gcp.cloud_storage import GcsBucket

    from blocks.gcs import GcsDestination

    # The operator's GCS integration for acme (Cordial: "enabled in the Cordial Marketplace").
    GcsDestination(bucket=GcsBucket(bucket="integration", gcp_credentials=gcs_server.credentials()), emulator_host=gcs_server.url).save(
        "cordial-gcs-acme", overwrite=True
    )
    bucket = gcs_server.new_bucket()  # instead of "bucketname"
    body = {
        "exportType": "csv",
        "name": "contactExport",
        "destination": {"type": "gcs", "gcs_bucket": bucket, "path": "/contactexports"},
        "showHeader": True,
        "audience-key": "high-value",  # the seeded store's audience instead of engaged-march
        "confirmEmail": "emsmith@example.com",
    }
    with cordial.client() as http:
        done = finished(http, created(http, body)["jobID"])
    expected = scalar(cordial.service, acme("c.lifetime_value >= 500"))
    assert done["recordCount"] == expected and done["destination"] == {"type": "gcs"}
    assert done["location"] == f"gs://{bucket}/contactexports/contactExport.csv"
    blob = gcs_server.client().bucket(bucket).blob("contactexports/contactExport.csv").download_as_bytes().decode()
    rows = list(csv.reader(io.StringIO(blob)))
    assert rows[0][-3:] == ["newsletter", "vip", "beta"] and len(rows) - 1 == expected
    assert mail_to(mailbox, "emsmith@example.com").startswith("Ferry export succeeded")


def test_defaults_no_header_and_compress_on_managed_storage(cordial):
    from ferry.catalog import get_resource

    with cordial.client() as http:
        job = created(http, {"name": "everything", "compress": True})  # no fields, no lists, no showHeader, no destination
        assert job["showHeader"] is False and job["compress"] is True and job["destination"] == {"type": "aws"}
        done = finished(http, job["jobID"])
    assert done["fileName"] == "everything.csv.gz"
    rows = list(csv.reader(io.StringIO(gzip.decompress(httpx.get(done["downloadUrl"], timeout=60).content).decode())))
    assert len(rows) == CONTACTS  # showHeader defaults to false: no header row
    assert rows[0][0].isdigit() and "@" in rows[0][2]  # id, external_id, email, ...: a contact, not column names
    assert len(rows[0]) == len(get_resource("contacts").columns()) + 3  # every contact column and one per list


def test_lists_only_give_the_email_and_the_lists_by_key_or_id_over_ftp(cordial, ftp_server):
    beta = scalar(
        cordial.service, "SELECT l.id FROM lists l JOIN workspaces w ON w.id = l.workspace_id WHERE w.slug = 'acme' AND l.key = 'beta'"
    )
    folder = f"in-{uuid.uuid4().hex[:6]}"
    body = {
        "name": "lists-only",
        "showHeader": "true",
        "lists": ["vip", beta],
        "destination": {
            "type": "ftp",
            "server": ftp_server.host,
            "port": ftp_server.port,
            "username": ftp_server.username,
            "password": ftp_server.password,
            "path": f"{folder}/",
        },
    }
    with cordial.client() as http:
        done = finished(http, created(http, body)["jobID"])
    assert done["destination"] == {"type": "ftp"} and done["location"].startswith(f"ftp://127.0.0.1:{ftp_server.port}/")
    rows = list(csv.reader(io.StringIO((ftp_server.root / folder / "lists-only.csv").read_text())))
    assert rows[0] == ["email", "vip", "beta"]  # list columns headed by key, whether asked by key or id
    assert len(rows) - 1 == CONTACTS
    assert {r[0] for r in rows[1:] if r[2] == "1"} == members(cordial.service, "beta")


def test_a_saved_key_logs_in_to_sftp(cordial, sftp_server):
    from blocks.sftp import SftpServer

    # The operator saves the workspace's key "myKeyName" (Cordial's savedKey) as an sftp block.
    SftpServer(
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.username,
        private_key=sftp_server.client_key_pem,
        host_key=sftp_server.host_key_line,
    ).save("cordial-key-acme-mykeyname", overwrite=True)
    body = {
        "name": "keyed",
        "exportType": "JSON",
        "fields": ["email", "last_name"],
        "destination": {
            "type": "sftp",
            "server": sftp_server.host,
            "port": sftp_server.port,
            "username": sftp_server.username,
            "savedKey": "myKeyName",
            "path": "/keyed/",
        },
    }
    with cordial.client() as http:
        done = finished(http, created(http, body)["jobID"])
    assert done["exportType"] == "json" and done["fileName"] == "keyed.json"
    records = json.loads((sftp_server.root / "keyed" / "keyed.json").read_text())
    assert len(records) == CONTACTS and set(records[0]) == {"email", "last_name"}
    with cordial.client("globex-admin") as other:  # another workspace cannot use acme's saved key
        body["destination"]["path"] = "/stolen/"
        refused = cordial_error(other.post("/contactexports", json=body), 422)
        assert list(refused["messages"]) == ["destination.savedKey"]


def test_every_problem_at_once_in_cordial_names(cordial, service):
    with cordial.client() as http:
        typed = cordial_error(
            http.post(
                "/contactexports",
                json={
                    "exportType": "xml",
                    "showHeader": "maybe",
                    "fields": [1],
                    "destination": {"type": "dropbox", "port": "x"},
                    "colour": 1,
                },
            ),
            422,
        )
        assert set(typed["messages"]) == {"exportType", "showHeader", "fields[0]", "destination.type", "destination.port", "colour"}

        secret = "pw-NEVER-SHOWN-4711"
        rules = cordial_error(
            http.post(
                "/contactexports",
                json={
                    "name": "my export!",
                    "fields": ["first_name", "no_such_field"],
                    "lists": ["newsletter", "nope", 999999],
                    "destination": {"type": "sftp", "password": secret, "aws_bucket": "b"},
                },
            ),
            422,
        )
        assert set(rules["messages"]) == {
            "name",
            "fields[1]",
            "lists[1]",
            "lists[2]",
            "destination.server",
            "destination.port",
            "destination.username",
            "destination.aws_bucket",
        }
        assert rules["messages"]["name"] == ["may only contain letters, numbers, and dashes"]
        assert secret not in json.dumps(rules)

        store = cordial_error(
            http.post(
                "/contactexports",
                json={
                    "audience-key": "30_day_engaged",
                    "destination": {
                        "type": "s3",
                        "aws_access_key_id": "A1",
                        "aws_secret_access_key": secret,
                        "aws_bucket": "b",
                        "path": "x.json",
                    },
                },
            ),
            422,
        )
        assert set(store["messages"]) == {"audience-key", "destination.aws_region", "destination.path"}
        assert secret not in json.dumps(store)

    with httpx.Client(base_url=service.url, auth=(service.keys["acme-admin"], ""), timeout=60) as plain:
        # the main API: no SMTP block and no known_hosts on that server
        unknown_host = {"type": "sftp", "server": "127.0.0.1", "port": 2222, "username": "u", "password": secret}
        answer = cordial_error(
            plain.post(f"{BASE}/contactexports", json={"confirmEmail": "m@example.com", "destination": unknown_host}), 422
        )
        assert set(answer["messages"]) == {"confirmEmail", "destination.server"}
        assert "known_hosts" in answer["messages"]["destination.server"][0]
    with httpx.Client(base_url=service.url, auth=(service.keys["globex-admin"], ""), timeout=60) as globex:
        gcs = cordial_error(globex.post(f"{BASE}/contactexports", json={"destination": {"type": "gcs", "gcs_bucket": "b"}}), 422)
        assert list(gcs["messages"]) == ["destination.type"] and "cordial-gcs-globex" in gcs["messages"]["destination.type"][0]


def test_statuses_auth_and_isolation(cordial):
    url = cordial.url + BASE
    with cordial.client() as http:
        cordial_error(http.post("/contactexports", content=b'{"name": ', headers={"content-type": "application/json"}), 400)
        cordial_error(http.post("/contactexports", content=b"name=x", headers={"content-type": "text/plain"}), 415)
        cordial_error(http.get("/jobs/not-a-job"), 404)
        cordial_error(http.get(f"/jobs/{uuid.uuid4()}"), 404)
        job = created(http, {"name": "isolated", "fields": ["email"]}, **{"Idempotency-Key": "cordial-isolation-1"})
        replay = http.post(
            "/contactexports", json={"name": "isolated", "fields": ["email"]}, headers={"Idempotency-Key": "cordial-isolation-1"}
        )
        assert replay.status_code == 200 and replay.json()["jobID"] == job["jobID"] and replay.headers["Idempotent-Replayed"] == "true"
    anonymous = cordial_error(httpx.post(f"{url}/contactexports", json={}, timeout=30), 401)
    assert "key" in anonymous["message"]
    wrong = httpx.post(f"{url}/contactexports", json={}, auth=("not-a-key", ""), timeout=30)
    cordial_error(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    with cordial.client("acme-viewer") as viewer:
        cordial_error(viewer.post("/contactexports", json={}), 403)
        assert viewer.get(f"/jobs/{job['jobID']}").status_code == 200
    with cordial.client("globex-admin") as other:
        hidden = cordial_error(other.get(f"/jobs/{job['jobID']}"), 404)
        assert "acme" not in hidden["message"]
    with cordial.service.client("acme-admin") as native:  # the same run, natively
        assert native.get(f"/v1/runs/{job['jobID']}").json()["kind"] == "export"
    assert audit_details(cordial.service, job["jobID"])["adapter"] == "cordial"
