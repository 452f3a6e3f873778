"""What a kill -9 leaves at destinations, and the cleanup that removes it, against the real servers.

Each leftover here is made the way production makes it: a child process starts
a real delivery from a stream that stalls, and is killed with SIGKILL while the
upload is open (no ``finally`` runs). The partial file then lies at the local
folder / SFTP / FTP server, the multipart upload stays open at the S3 server
(moto). Files are aged by setting their mtime back on the server's disk; moto
cannot back-date an upload, so the S3 cleanup is given a clock two days ahead.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import free_port
from servers.s3 import make_s3_destination
from servers.sftp import sftp_block

from blocks.destination import Leftover, is_partial_name
from blocks.local_directory import LocalDirectory
from blocks.webhook import Webhook
from ferry.errors import DestinationError
from flows.cleanup import CleanupReport, clean_leftovers

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]

# The child: deliver from a stream that hands over `head` bytes and then hangs, like a spool on a stuck disk.
CHILD = """
import io, pickle, sys, time

class Stalls(io.RawIOBase):
    def __init__(self, head):
        self.left = head
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.left <= 0:
            time.sleep(3600)
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n

with open(sys.argv[1], "rb") as f:
    destination = pickle.load(f)
destination.deliver(Stalls(int(sys.argv[2])), sys.argv[3])
"""


def kill_mid_delivery(destination, key: str, started: Callable[[], bool], workdir: Path, head: int = 64 * 1024) -> None:
    """Run ``destination.deliver`` in a child process and SIGKILL it once ``started()`` sees the upload in progress."""
    workdir.mkdir(parents=True, exist_ok=True)
    block = workdir / f"block-{uuid.uuid4().hex[:8]}.pickle"
    block.write_bytes(pickle.dumps(destination))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(block), str(head), key], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not started():
            if child.poll() is not None:
                pytest.fail(f"the delivering child ended on its own: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the delivering child never started its upload")
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def partials(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.partial") if p.is_file()) if root.exists() else []


def back_date(path: Path, days: float = 2) -> None:
    then = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (then, then))


def report(dry_run: bool = False) -> CleanupReport:
    return CleanupReport(storage="(test)", retention_days=30, cutoff=datetime.now(UTC), dry_run=dry_run)


# --- partial files: local folder, SFTP, FTP ---------------------------------------------


@pytest.mark.parametrize("fixture", ["local_directory_handle", "sftp_handle", "ftp_handle"], ids=["local", "sftp", "ftp"])
def test_a_killed_deliverys_partial_file_is_removed_once_stale_and_nothing_else(fixture, request, tmp_path):
    handle = request.getfixturevalue(fixture)
    dest, root = handle.destination, handle.root
    dest.deliver(io.BytesIO(b"done"), "daily/done.csv")
    kill_mid_delivery(dest, "daily/contacts.csv", lambda: bool(partials(root)), tmp_path / "child")
    [stale] = partials(root)
    assert stale.parent == root / "daily" and is_partial_name(stale.name) and stale.name.startswith(".contacts.csv.")
    back_date(stale)
    fresh = root / "daily" / f".other.csv.{uuid.uuid4().hex[:12]}.partial"  # an upload in progress right now
    fresh.write_bytes(b"still coming")
    not_ours = [root / "notes.partial", root / ".draft.csv.partial", root / ".x.csv.NOTHEX000000.partial", root / "daily" / "old.csv"]
    for path in not_ours:
        path.write_bytes(b"someone else's")
        back_date(path, days=30)
    key = stale.relative_to(root).as_posix()

    dry = clean_leftovers(report(dry_run=True), destinations=[("case", dest)])
    assert (dry.destinations_checked, dry.leftovers_found, dry.leftovers_removed, dry.leftover_failures) == (1, 1, 0, [])
    assert key in dry.leftovers[0] and dry.leftovers[0].startswith("case: partial file ")
    assert stale.exists()

    done = clean_leftovers(report(), destinations=[("case", dest)])
    assert (done.leftovers_found, done.leftovers_removed, done.leftover_failures) == (1, 1, [])
    assert done.leftover_cutoff is not None and abs(done.leftover_cutoff - (datetime.now(UTC) - timedelta(hours=24))) < timedelta(minutes=1)
    assert not stale.exists()
    assert fresh.exists() and all(path.exists() for path in not_ours)
    assert handle.read("daily/done.csv") == b"done"
    assert clean_leftovers(report(), destinations=[("case", dest)]).leftovers_found == 0


def test_only_leftovers_the_destination_listed_are_removed(tmp_path):
    dest = LocalDirectory(path=str(tmp_path))
    (tmp_path / "keep.csv").write_bytes(b"x")
    forged = Leftover(kind="partial file", key="keep.csv", location=str(tmp_path / "keep.csv"), since=datetime.now(UTC))
    with pytest.raises(DestinationError, match="not one of Ferry's partial files"):
        dest.remove_leftover(forged)
    assert (tmp_path / "keep.csv").exists()


# --- S3: unfinished multipart uploads ------------------------------------------------------


def open_uploads(server, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_a_killed_s3_upload_is_aborted_by_the_cleanup_and_others_are_kept(s3_handle, moto_server, tmp_path):
    dest, bucket = s3_handle.destination, s3_handle.bucket
    dest.deliver(io.BytesIO(b"done"), "done.csv")
    child = make_s3_destination(moto_server, bucket)  # one without a client yet: boto3 clients do not pickle
    kill_mid_delivery(child, "big.csv", lambda: bool(open_uploads(moto_server, bucket)), tmp_path, head=5 * MIB)
    moto_server.client().create_multipart_upload(Bucket=bucket, Key="elsewhere/theirs.csv")  # outside the block's folder
    assert open_uploads(moto_server, bucket) == ["elsewhere/theirs.csv", "exports/big.csv"]

    # moto cannot back-date an upload (it even reports a fixed start time): the clock is set around the reported one
    [started] = [
        u["Initiated"] for u in moto_server.client().list_multipart_uploads(Bucket=bucket)["Uploads"] if u["Key"] == "exports/big.csv"
    ]
    assert clean_leftovers(report(), now=started + timedelta(hours=23), destinations=[("s3", dest)]).leftovers_found == 0
    later = started + timedelta(hours=25)
    dry = clean_leftovers(report(dry_run=True), now=later, destinations=[("s3", dest)])
    assert (dry.leftovers_found, dry.leftovers_removed) == (1, 0)
    assert dry.leftovers[0].startswith(f"s3: multipart upload s3://{bucket}/exports/big.csv (upload ")
    assert open_uploads(moto_server, bucket) == ["elsewhere/theirs.csv", "exports/big.csv"]

    done = clean_leftovers(report(), now=later, destinations=[("s3", dest)])
    assert (done.leftovers_found, done.leftovers_removed, done.leftover_failures) == (1, 1, [])
    assert open_uploads(moto_server, bucket) == ["elsewhere/theirs.csv"]
    assert s3_handle.read("done.csv") == b"done"
    assert clean_leftovers(report(), now=later, destinations=[("s3", dest)]).leftovers_found == 0


def test_s3_at_a_bucket_root_leaves_uploads_to_the_lifecycle_rule(moto_server):
    bucket = moto_server.new_bucket()
    dest = make_s3_destination(moto_server, bucket, folder="")
    moto_server.client().create_multipart_upload(Bucket=bucket, Key="theirs.csv")

    done = clean_leftovers(report(), now=datetime.now(UTC) + timedelta(days=5000), destinations=[("root", dest)])
    assert (done.destinations_checked, done.leftovers_found) == (0, 0)
    assert done.leftovers_not_swept and "root of bucket" in done.leftovers_not_swept[0] and "lifecycle" in done.leftovers_not_swept[0]
    assert open_uploads(moto_server, bucket) == ["theirs.csv"]


# --- the sweep over many destinations ------------------------------------------------------


def test_one_failing_destination_does_not_stop_the_others(tmp_path):
    from blocks.registry import resolve_destination

    folder = tmp_path / "out"
    folder.mkdir()
    stale = folder / f".a.csv.{uuid.uuid4().hex}.partial"
    stale.write_bytes(b"half")
    back_date(stale)
    down = sftp_block_at_closed_port()
    destinations = [
        ("sftp/down", down),
        ("sftp/missing", lambda: resolve_destination("sftp/no-such-block-for-leftovers", tmp_path)),
        ("webhook-endpoint/hook", Webhook(url="https://example.invalid/hook")),
        ("local", LocalDirectory(path=str(folder))),
        ("local-again", LocalDirectory(path=str(folder))),  # the same folder through a second block: counted once
    ]

    done = clean_leftovers(report(), destinations=destinations)
    assert not stale.exists()
    assert (done.destinations_checked, done.leftovers_found, done.leftovers_removed) == (3, 1, 1)
    assert [failure.split(":")[0] for failure in done.leftover_failures] == ["sftp/down", "sftp/missing"]
    assert "connection failed" in done.leftover_failures[0] and "No sftp block named" in done.leftover_failures[1]
    assert done.leftovers_not_swept == [f"webhook-endpoint/hook: {Webhook(url='https://x.invalid').leftovers_note()}"]


def sftp_block_at_closed_port():
    from blocks.sftp import SftpServer

    return SftpServer(
        host="127.0.0.1",
        port=free_port(),
        username="ferry",
        password="pw",
        host_key="SHA256:" + "A" * 43,
        timeout=3,
    )


def test_destinations_whose_leftovers_expire_by_themselves_say_so(gcs_server):
    from prefect_azure import AzureBlobStorageContainer, AzureBlobStorageCredentials
    from servers.azurite import KEY
    from servers.gcs import make_gcs_destination

    from blocks.azure_blob import AzureBlobDestination

    # the note is the block's own answer: no Azure server is asked
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1"
    )
    azure = AzureBlobDestination(
        container=AzureBlobStorageContainer(
            container_name="exports", base_folder="ferry", credentials=AzureBlobStorageCredentials(connection_string=connection)
        )
    )
    gcs = make_gcs_destination(gcs_server, f"b{uuid.uuid4().hex[:10]}")
    assert "7 days" in azure.leftovers_note() and "a week" in gcs.leftovers_note()
    assert not azure.can("leftovers") and not gcs.can("leftovers") and azure.leftovers(datetime.now(UTC)) == []
    for dest in (LocalDirectory(path="x"), sftp_block_at_closed_port()):
        assert dest.can("leftovers") and dest.leftovers_note() is None


# --- the flow ------------------------------------------------------------------------------


@pytest.fixture
def data_env(monkeypatch, tmp_path):
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_DATA_DIR", str(tmp_path / "data"))
    reload_settings()
    yield monkeypatch
    monkeypatch.undo()
    reload_settings()


def test_the_cleanup_flow_sweeps_managed_storage_and_every_saved_block(empty_store, data_env, sftp_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from ferry.settings import get_settings
    from flows.cleanup import cleanup_managed_exports

    folder = tmp_path / "saved"
    folder.mkdir()
    name = f"leftovers-{uuid.uuid4().hex[:8]}"
    LocalDirectory(path=str(folder)).save(name, overwrite=True)
    remote = f"t-{uuid.uuid4().hex[:8]}"
    sftp_block(sftp_server, folder=remote).save(name, overwrite=True)
    managed = get_settings().exports_dir
    managed.mkdir(parents=True, exist_ok=True)
    stale = [
        folder / f".a.csv.{uuid.uuid4().hex}.partial",
        managed / f".b.csv.{uuid.uuid4().hex}.partial",
        sftp_server.root / remote / f".c.csv.{uuid.uuid4().hex[:12]}.partial",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
        back_date(path, days=0.5)  # 12 h: stale only for a shorter leftover_hours than the default 24
    kept = folder / "report.csv"
    kept.write_bytes(b"x")
    back_date(kept, days=3)

    def ours(lines: list[str]) -> list[str]:  # other tests' saved blocks may be swept too
        return [line for line in lines if any(path.name in line for path in stale)]

    default = cleanup_managed_exports(dry_run=True)  # FERRY_SPOOL_ORPHAN_HOURS (24): 12 hours is not stale yet
    assert ours(default.leftovers) == [] and all(path.exists() for path in stale)
    dry = cleanup_managed_exports(dry_run=True, leftover_hours=6)
    assert len(ours(dry.leftovers)) == 3 and all(path.exists() for path in stale)
    # A leftover two saved blocks reach counts once, under the block listed first: other tests' SFTP blocks share the server.
    places = sorted(line.split(":")[0] for line in ours(dry.leftovers))
    assert places[:2] == sorted(["managed storage", f"local-directory/{name}"]) and places[2].startswith("sftp/"), places

    state = cleanup_managed_exports(leftover_hours=6, return_state=True)
    done = state.result()
    assert len(ours(done.leftovers)) == 3 and done.leftovers_removed >= 3
    assert not any(path.exists() for path in stale) and kept.exists()
    assert done.leftover_cutoff is not None and done.destinations_checked >= 3
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    [text] = [a.data for a in artifacts if a.key == "managed-storage-cleanup"]
    assert "Leftovers of killed deliveries" in text and stale[0].name in text
    assert sftp_server.password not in text


def test_leftover_hours_must_be_positive(data_env):
    from ferry.errors import ParameterError
    from flows.cleanup import cleanup_managed_exports

    with pytest.raises(ParameterError, match="leftover_hours"):
        cleanup_managed_exports(leftover_hours=0)
