"""Object storage end to end against real servers: exports to S3 / Azure / GCS blocks, download URLs,
reissued URLs, error classes (terminal vs transient), bounded memory, managed storage and its cleanup,
and secrets that never reach logs, artifacts, results or parameters.

The shared contract itself is checked by tests/blocks/test_conformance.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import tracemalloc
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import free_port
from servers.azurite import make_azure_destination
from servers.gcs import make_gcs_destination, service_account_info
from servers.s3 import SECRET_KEY, make_s3_destination, start_moto
from typer.testing import CliRunner

from ferry.errors import DestinationError, FerryError, TransientDestinationError
from ferry.runs import run_result

MIB = 1 << 20
# The leak checks route the cloud SDKs' debug logs to the Prefect API; calls made outside a run only warn.
pytestmark = pytest.mark.filterwarnings("ignore:Logger .* attempted to send logs to the API:UserWarning")
WRONG_AZURE_KEY = "V3JvbmdLZXlGb3JGZXJyeVRlc3RzLVNFQ1JFVC1uZXZlci1sb2dnZWQtMDEyMzQ1Njc4OQ=="


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Chunks(io.RawIOBase):
    """``total`` bytes generated on the fly (no buffer holds them all), optionally failing after ``fail_after``."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.total, self.fail_after, self.pos = total, fail_after, 0
        self.block = hashlib.sha256(b"ferry").digest() * 2048  # 64 KiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError("disk read failed")
        n = min(len(buffer), len(self.block), self.total - self.pos)
        buffer[:n] = self.block[:n]
        self.pos += n
        return n


@pytest.fixture
def prefect_info_logs():
    """Ship every run log (INFO and up) and the cloud SDKs' own DEBUG logs to the Prefect API during this test.

    The session keeps only warnings (conftest), which would make a leak check over logs nearly empty.
    """
    import prefect.main  # noqa: F401 - configures logging now; a later first import would reset the levels set here
    from prefect.logging.handlers import APILogHandler

    handler = APILogHandler()
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs", "botocore", "azure", "google", "urllib3")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG if not lg.name.startswith("prefect") else logging.INFO)
        if not any(isinstance(h, APILogHandler) for h in lg.handlers):
            lg.addHandler(handler)
    yield
    APILogHandler().flush()
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


def run_traces(run_id: str) -> str:
    """Everything Prefect keeps about a flow run and its task runs, as one string: logs, artifacts,
    parameters, state messages, the persisted result."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    run_uuid = uuid.UUID(run_id)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_uuid])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_uuid])))
        run = client.read_flow_run(run_uuid)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_uuid])))
    result = run_result(run.state)
    parts = [f"{log.name}: {log.message}" for log in logs] + [json.dumps(a.data, default=str) + str(a.description) for a in artifacts]
    parts += [json.dumps(run.parameters, default=str), str(run.state.message), repr(result)]
    parts += [f"{t.state.message} {t.task_inputs}" for t in task_runs if t.state]
    assert logs, "the run's logs were not captured: the leak check would be empty"
    return "\n".join(parts)


def save_s3_bucket_block(server, bucket: str, folder: str = "exports", credentials=None) -> str:
    from prefect_aws import S3Bucket

    credentials = credentials or server.credentials()
    credentials.save(_name("aws"), overwrite=True)
    name = _name("exports")
    S3Bucket(bucket_name=bucket, bucket_folder=folder, credentials=credentials).save(name, overwrite=True)
    return name


# --- S3 end to end through the CLI ------------------------------------------------------------


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_cli_export_to_s3_bucket_then_reissue_url(store, moto_server, prefect_info_logs):
    from cli.main import app

    bucket = moto_server.new_bucket()
    block = save_s3_bucket_block(moto_server, bucket)
    runner = CliRunner()

    exported = runner.invoke(
        app,
        [
            "export",
            "contacts",
            "--workspace",
            "acme",
            "--fields",
            "email,first_name",
            "--limit",
            "40",
            "--gzip",
            "--dest",
            f"s3-bucket/{block}",
            "--json",
        ],
    )
    assert exported.exit_code == 0, exported.output
    record = json.loads(exported.stdout)
    assert record["status"] == "success"
    assert record["destination_path"].startswith(f"s3://{bucket}/exports/contacts-acme-")
    stored = moto_server.client().get_object(Bucket=bucket, Key=record["destination_path"].split("/", 3)[3])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == record["sha256"] and len(stored) == record["file_size"]

    query = parse_qs(urlsplit(record["url"]).query)
    assert query["X-Amz-Expires"] == ["900"]  # default lifetime: 15 minutes
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"]
    with urllib.request.urlopen(record["url"], timeout=30) as answer:
        assert answer.read() == stored

    reissued = runner.invoke(app, ["export", "url", record["run_id"], "--expires", "5", "--json"])
    assert reissued.exit_code == 0, reissued.output
    link = json.loads(reissued.stdout)
    assert link["location"] == record["destination_path"]
    assert parse_qs(urlsplit(link["url"]).query)["X-Amz-Expires"] == ["300"]
    with urllib.request.urlopen(link["url"], timeout=30) as answer:
        assert answer.read() == stored

    moto_server.client().delete_object(Bucket=bucket, Key=record["destination_path"].split("/", 3)[3])
    gone = runner.invoke(app, ["export", "url", record["run_id"]])
    assert gone.exit_code == 1
    assert "is gone" in gone.output and record["destination_path"] in gone.output

    traces = run_traces(record["run_id"])
    assert "Exporting contacts of workspace acme" in traces  # INFO run logs were captured
    assert "botocore.endpoint:" in traces  # and the SDK's own debug logs
    assert f"s3-bucket/{block}" in traces  # the parameters name the block, never its contents
    assert SECRET_KEY not in traces


def test_reissue_refuses_unknown_runs_and_local_files(store, tmp_path):
    from ferry.params import ExportRequest
    from flows.export import export_data
    from flows.reissue_url import fresh_link

    with pytest.raises(FerryError, match="No run"):
        fresh_link(str(uuid.uuid4()))
    with pytest.raises(FerryError, match="run_id='nope'"):
        fresh_link("nope")
    state = export_data(ExportRequest(workspace="acme", resource="contacts", limit=5, destination=str(tmp_path)), return_state=True)
    record = state.result()
    with pytest.raises(DestinationError, match="cannot give download URLs"):
        fresh_link(record.run_id)


# --- Azure: a wrong key fails at once, names the block, leaks nothing -----------------------------


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_azure_wrong_key_fails_once_naming_the_block_and_leaks_nothing(store, azurite_server, prefect_info_logs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect_azure import AzureBlobStorageContainer

    from ferry.params import ExportRequest
    from flows.export import export_data

    container = azurite_server.new_container()
    credentials = azurite_server.credentials(WRONG_AZURE_KEY)
    credentials_name = _name("azure-creds")
    credentials.save(credentials_name)
    block = _name("azure-exports")
    AzureBlobStorageContainer(container_name=container, base_folder="exports", credentials=credentials).save(block)

    state = export_data(
        ExportRequest(workspace="acme", resource="contacts", limit=5, destination=f"azure-blob-storage-container/{block}"),
        return_state=True,
    )
    record = run_result(state)
    assert state.is_failed() and record.status == "failed"
    assert f"azure-blob-storage-container block {block!r}" in record.error
    assert "permission denied" in record.error and "403" in record.error
    assert f"azure-blob-storage-credentials block {credentials_name!r}" in record.error
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(record.run_id)])))
    deliver = [t for t in task_runs if t.name.startswith("deliver")]
    assert len(deliver) == 1 and deliver[0].run_count == 1, "an authentication failure is not retried"
    assert list(azurite_server.service().get_container_client(container).list_blobs()) == []

    traces = run_traces(record.run_id)
    assert "permission denied" in traces  # the failure itself was captured
    for secret in (WRONG_AZURE_KEY, WRONG_AZURE_KEY[:20], azurite_server.connection_string(WRONG_AZURE_KEY)):
        assert secret not in traces


def test_azure_errors_are_classified(azurite_server):
    container = azurite_server.new_container()
    missing = make_azure_destination(azurite_server, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(DestinationError, match="does not exist") as refused:
        missing.deliver(io.BytesIO(b"x"), "a.csv")
    assert not refused.value.transient

    wrong = make_azure_destination(azurite_server, container, key=WRONG_AZURE_KEY)
    with pytest.raises(DestinationError, match="Check the account key") as denied:
        wrong.deliver(io.BytesIO(b"x"), "a.csv")
    assert not denied.value.transient and WRONG_AZURE_KEY not in str(denied.value)

    from prefect_azure import AzureBlobStorageContainer, AzureBlobStorageCredentials

    from blocks.azure_blob import AzureBlobDestination

    dead = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    conn = azurite_server.connection_string().replace(azurite_server.url, dead)
    offline = AzureBlobDestination(
        container=AzureBlobStorageContainer(container_name=container, credentials=AzureBlobStorageCredentials(connection_string=conn))
    )
    offline._service = None
    with pytest.raises(TransientDestinationError):
        offline.deliver(io.BytesIO(b"x"), "a.csv")


def test_azure_sas_url_is_read_only_expires_and_cannot_be_tampered(azurite_server):
    container = azurite_server.new_container()
    dest = make_azure_destination(azurite_server, container)
    dest.deliver(io.BytesIO(b"hello"), "f.csv")
    before = datetime.now(UTC)
    url = dest.download_url("f.csv", timedelta(minutes=7))
    query = parse_qs(urlsplit(url).query)
    assert query["sp"] == ["r"]  # read only
    expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    assert before + timedelta(minutes=6) < expiry < before + timedelta(minutes=8)
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"hello"
    tampered = url.replace("sp=r", "sp=rw")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)
    assert refused.value.code == 403  # Azurite checks the signature


# --- S3: errors, memory, URL lifetime ---------------------------------------------------------


class _Always503(BaseHTTPRequestHandler):
    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _reply

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def strict_moto(tmp_path_factory):
    """A moto server that authenticates every request (unknown keys get 403 InvalidAccessKeyId)."""
    server = start_moto(tmp_path_factory.mktemp("moto-strict"), env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield server
    server.process.stop()


def test_s3_errors_are_classified(moto_server, strict_moto):
    from prefect_aws import AwsClientParameters, S3Bucket

    from blocks.s3 import S3Destination

    missing = make_s3_destination(moto_server, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(DestinationError, match="does not exist") as no_bucket:
        missing.deliver(io.BytesIO(b"x"), "a.csv")
    assert not no_bucket.value.transient

    credentials = strict_moto.credentials()
    credentials.save(_name("aws-denied"))
    denied = S3Destination(bucket=S3Bucket(bucket_name="anything", credentials=credentials))
    with pytest.raises(DestinationError, match="permission denied") as refused:
        denied.deliver(io.BytesIO(b"x"), "a.csv")
    assert not refused.value.transient
    assert "InvalidAccessKeyId" in str(refused.value) and "aws-credentials block" in str(refused.value)
    assert SECRET_KEY not in str(refused.value)

    offline = S3Destination(
        bucket=S3Bucket(
            bucket_name="b",
            credentials=moto_server.credentials(aws_client_parameters=AwsClientParameters(endpoint_url=f"http://127.0.0.1:{free_port()}")),
        )
    )
    with pytest.raises(TransientDestinationError, match="could not upload"):
        offline.deliver(io.BytesIO(b"x"), "a.csv")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        failing = S3Destination(
            bucket=S3Bucket(
                bucket_name="b",
                credentials=moto_server.credentials(
                    aws_client_parameters=AwsClientParameters(endpoint_url=f"http://127.0.0.1:{httpd.server_address[1]}")
                ),
            )
        )
        with pytest.raises(TransientDestinationError, match="503"):
            failing.deliver(io.BytesIO(b"x"), "a.csv")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_s3_upload_streams_in_bounded_memory_and_aborts_on_failure(moto_server):
    bucket = moto_server.new_bucket()
    dest = make_s3_destination(moto_server, bucket, part_size_mib=5)
    total = 40 * MIB
    dest.deliver(Chunks(6 * MIB), "warm-up.bin")  # the client loads its service model once (~10 MiB): not the upload's memory
    tracemalloc.start()
    try:
        delivery = dest.deliver(Chunks(total), "big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert delivery.bytes == total
    assert peak < 2 * 5 * MIB, f"peak Python memory {peak / MIB:.1f} MiB for a {total // MIB} MiB upload"
    head = moto_server.client().head_object(Bucket=bucket, Key="exports/big.bin", PartNumber=1)
    assert head["PartsCount"] == 8  # 40 MiB in 5 MiB parts: a multipart upload

    with pytest.raises(OSError, match="disk read failed"):
        dest.deliver(Chunks(total, fail_after=12 * MIB), "broken.bin")
    client = moto_server.client()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="exports/broken")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_url_lifetime_comes_from_settings_or_the_block(moto_server, monkeypatch):
    from ferry.settings import reload_settings

    bucket = moto_server.new_bucket()
    monkeypatch.setenv("FERRY_DOWNLOAD_URL_MINUTES", "60")
    reload_settings()
    try:
        default = make_s3_destination(moto_server, bucket).deliver(io.BytesIO(b"a"), "a.csv")
        assert parse_qs(urlsplit(default.url).query)["X-Amz-Expires"] == ["3600"]
        own = make_s3_destination(moto_server, bucket, download_url_minutes=2).deliver(io.BytesIO(b"a"), "a.csv")
        assert parse_qs(urlsplit(own.url).query)["X-Amz-Expires"] == ["120"]
    finally:
        monkeypatch.delenv("FERRY_DOWNLOAD_URL_MINUTES")
        reload_settings()


# --- GCS ----------------------------------------------------------------------------------------


def test_gcs_signed_url_is_v4_with_the_lifetime_and_missing_bucket_is_terminal(gcs_server):
    bucket = gcs_server.new_bucket()
    dest = make_gcs_destination(gcs_server, bucket)
    delivery = dest.deliver(io.BytesIO(b"gcs bytes"), "g.csv")
    query = parse_qs(urlsplit(delivery.url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"] and query["X-Goog-Expires"] == ["900"]
    assert query["X-Goog-Credential"][0].startswith(service_account_info()["client_email"])
    assert service_account_info()["private_key"][40:80] not in delivery.url
    assert delivery.location == f"gs://{bucket}/exports/g.csv"

    missing = make_gcs_destination(gcs_server, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(DestinationError) as refused:
        missing.deliver(io.BytesIO(b"x"), "a.csv")
    assert not refused.value.transient and "missing-" in str(refused.value)


# --- managed storage and retention cleanup ------------------------------------------------------


@pytest.fixture
def managed_env(monkeypatch, tmp_path):
    """Managed storage in a fresh data folder; settings reloaded before and after."""
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_DATA_DIR", str(tmp_path / "data"))
    reload_settings()
    yield monkeypatch
    monkeypatch.undo()
    reload_settings()


def test_managed_local_storage_receives_unnamed_exports_and_cleanup_removes_expired(store, managed_env):
    from ferry.params import ExportRequest
    from ferry.settings import get_settings
    from flows.cleanup import cleanup_managed_exports
    from flows.export import export_data

    record = export_data(ExportRequest(workspace="acme", resource="contacts", limit=3), return_state=True).result()
    exported = Path(record.destination_path)
    assert exported.parent == get_settings().exports_dir.resolve() and exported.exists()
    old = get_settings().exports_dir / "old" / "expired.csv"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 10)
    long_ago = (datetime.now(UTC) - timedelta(days=31)).timestamp()
    os.utime(old, (long_ago, long_ago))

    dry = cleanup_managed_exports(dry_run=True)
    assert (dry.expired, dry.deleted, dry.kept) == (1, 0, 1) and old.exists()
    report = cleanup_managed_exports()
    assert (report.expired, report.deleted, report.bytes_freed, report.kept) == (1, 1, 10, 1)
    assert not old.exists() and exported.exists()
    assert cleanup_managed_exports(retention_days=40).expired == 0


def test_managed_s3_storage_signs_urls_and_expires_files(moto_server, managed_env):
    from blocks.registry import managed_storage
    from ferry.settings import get_settings, reload_settings
    from flows.cleanup import clean

    bucket = moto_server.new_bucket()
    block = save_s3_bucket_block(moto_server, bucket, folder="managed")
    managed_env.setenv("FERRY_MANAGED_DESTINATION", f"s3-bucket/{block}")
    managed_env.setenv("FERRY_MANAGED_RETENTION_DAYS", "7")
    reload_settings()
    storage = managed_storage(get_settings().exports_dir)
    delivery = storage.deliver(io.BytesIO(b"managed"), "e.csv")
    assert delivery.location == f"s3://{bucket}/managed/e.csv" and delivery.url
    moto_server.client().put_object(Bucket=bucket, Key="elsewhere.csv", Body=b"not Ferry's")

    assert clean(now=datetime.now(UTC) + timedelta(days=6)).expired == 0
    report = clean(now=datetime.now(UTC) + timedelta(days=8))
    assert (report.expired, report.deleted, report.bytes_freed) == (1, 1, len(b"managed"))
    keys = [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["elsewhere.csv"]  # outside the managed folder: untouched


def test_managed_storage_at_a_bucket_root_is_refused_for_cleanup(moto_server, managed_env):
    from ferry.settings import reload_settings
    from flows.cleanup import clean

    block = save_s3_bucket_block(moto_server, moto_server.new_bucket(), folder="")
    managed_env.setenv("FERRY_MANAGED_DESTINATION", f"s3-bucket/{block}")
    reload_settings()
    with pytest.raises(DestinationError, match="root of its bucket"):
        clean()


def test_destination_references_are_checked(tmp_path):
    from blocks.registry import resolve_destination

    with pytest.raises(DestinationError, match="No s3-bucket block named 'nope-"):
        resolve_destination(f"s3-bucket/nope-{uuid.uuid4().hex[:6]}", tmp_path)
    with pytest.raises(DestinationError, match="Unknown destination kind 's3-bukcet'"):
        resolve_destination("s3-bukcet/exports", tmp_path)
    assert resolve_destination(str(tmp_path / "out"), tmp_path).describe().endswith("out")


# --- the same blocks as import sources ---------------------------------------------------------


def test_object_storage_blocks_are_import_sources(moto_server, azurite_server, tmp_path):
    from prefect_azure import AzureBlobStorageContainer

    from blocks.sources import resolve_source
    from ferry.errors import SourceError

    body = b"email,first_name\nada@example.com,Ada\n"
    bucket = moto_server.new_bucket()
    block = save_s3_bucket_block(moto_server, bucket)
    moto_server.client().put_object(Bucket=bucket, Key="exports/in/contacts.csv", Body=body)
    by_bucket = resolve_source(f"s3://{bucket}/exports/in/contacts.csv", tmp_path / "spool")
    by_block = resolve_source(f"s3://{block}/in/contacts.csv", tmp_path / "spool")
    assert by_bucket.read_bytes() == body and by_block.read_bytes() == body and by_bucket.name == "contacts.csv"
    with pytest.raises(SourceError, match="no file") as missing:
        resolve_source(f"s3://{block}/in/nothing.csv", tmp_path / "spool")
    assert not missing.value.transient
    assert [p.name for p in (tmp_path / "spool").rglob("*") if p.is_file()] == ["contacts.csv", "contacts.csv"]

    container = azurite_server.new_container()
    azurite_server.service().get_blob_client(container, "in/contacts.csv").upload_blob(body)
    name = _name("azure-in")
    AzureBlobStorageContainer(container_name=container, credentials=azurite_server.credentials()).save(name)
    assert resolve_source(f"az://{name}/in/contacts.csv", tmp_path / "spool-az").read_bytes() == body


def test_ferry_wrapper_blocks_save_and_load_with_their_settings(moto_server, tmp_path):
    from blocks.registry import resolve_destination

    bucket = moto_server.new_bucket()
    name = _name("s3-dest")
    make_s3_destination(moto_server, bucket, folder="wrapped", download_url_minutes=3, part_size_mib=6).save(name)
    loaded = resolve_destination(f"s3-destination/{name}", tmp_path)
    assert (loaded.part_size_mib, loaded.download_url_minutes, loaded.folder) == (6, 3, "wrapped")
    delivery = loaded.deliver(io.BytesIO(b"w"), "w.csv")
    assert delivery.location == f"s3://{bucket}/wrapped/w.csv"
    assert parse_qs(urlsplit(delivery.url).query)["X-Amz-Expires"] == ["180"]
    assert f"s3-destination block {name!r}" in loaded.describe()


def test_s3_checksum_mismatch_removes_the_object_and_is_retried(moto_server):
    bucket = moto_server.new_bucket()
    dest = make_s3_destination(moto_server, bucket)
    dest.deliver(io.BytesIO(b"payload"), "c.csv")
    dest._verify("exports/c.csv", "c2VudA==", "c2VudA==-3")  # composite "-N" suffix: same digest, fine
    with pytest.raises(TransientDestinationError, match="SHA-256 differs"):
        dest._verify("exports/c.csv", "c2VudA==", "c3RvcmVk-3")  # the server stored something else
    assert not dest.exists("c.csv")


def test_gcs_bucket_block_reference_with_the_emulator_variable(gcs_server, monkeypatch, tmp_path):
    from prefect_gcp.cloud_storage import GcsBucket

    from blocks.registry import resolve_destination

    bucket = gcs_server.new_bucket()
    credentials = gcs_server.credentials()
    credentials.save(_name("gcp"))
    name = _name("gcs-exports")
    GcsBucket(bucket=bucket, bucket_folder="out", gcp_credentials=credentials).save(name)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    dest = resolve_destination(f"gcs-bucket/{name}", tmp_path)
    delivery = dest.deliver(io.BytesIO(b"via block"), "b.csv")
    assert delivery.location == f"gs://{bucket}/out/b.csv"
    assert gcs_server.client().bucket(bucket).blob("out/b.csv").download_as_bytes() == b"via block"
    with urllib.request.urlopen(delivery.url, timeout=30) as answer:
        assert answer.read() == b"via block"
    assert f"gcs-bucket block {name!r}" in dest.describe()
