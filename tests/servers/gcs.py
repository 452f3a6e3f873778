"""A real Google Cloud Storage server for tests: gcp-storage-emulator (pip), one per test process.

The emulator speaks the JSON API (resumable uploads included) without
authentication; it serves V4 signed URLs but never checks them, so tests
assert on the URL's contents. Signing needs a service-account key: one is
generated per session (a throwaway RSA key, never a real account).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from . import spawn
from ._process import ServerProcess

PROJECT = "ferry-test"


@cache
def service_account_info() -> dict:
    """A syntactically real service-account JSON with a fresh RSA key (V4 signing works offline)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"ferry-exports@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


@dataclass
class GcsServer:
    url: str
    process: ServerProcess

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=self.url))

    def new_bucket(self) -> str:
        name = f"ferry-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(name)
        return name

    def credentials(self):
        from prefect_gcp import GcpCredentials

        return GcpCredentials(service_account_info=service_account_info(), project=PROJECT)


def start_gcs(workdir: Path) -> GcsServer:
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    if not emulator.exists():
        pytest.fail(f"{emulator} is missing: install the test dependencies (`make install`, gcp-storage-emulator).", pytrace=False)

    def ready(port: int) -> bool:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{port}")
        )
        list(client.list_buckets(timeout=2, retry=None))
        return True

    process, port = spawn(
        "gcs",
        lambda port: [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        ready,
        workdir,
        env=dict(os.environ),
    )
    return GcsServer(url=f"http://127.0.0.1:{port}", process=process)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> Iterator[GcsServer]:
    server = start_gcs(tmp_path_factory.mktemp("gcs"))
    yield server
    server.process.stop()


@dataclass
class GcsHandle:
    destination: object
    server: GcsServer
    bucket: str
    folder: str

    def _name(self, key: str) -> str:
        return f"{self.folder}/{key}" if self.folder else key

    def read(self, key: str) -> bytes:
        return self.server.client().bucket(self.bucket).blob(self._name(key)).download_as_bytes()

    def keys(self) -> list[str]:
        """Objects under the folder. An unfinished resumable upload is not an object (its session just expires)."""
        prefix = f"{self.folder}/" if self.folder else ""
        return sorted(b.name[len(prefix) :] for b in self.server.client().list_blobs(self.bucket))


def make_gcs_destination(server: GcsServer, bucket: str, folder: str = "exports", **options):
    from prefect_gcp.cloud_storage import GcsBucket

    from blocks.gcs import GcsDestination

    return GcsDestination(
        bucket=GcsBucket(bucket=bucket, bucket_folder=folder, gcp_credentials=server.credentials()),
        emulator_host=server.url,
        **{"chunk_size_mib": 1, **options},
    )


@pytest.fixture
def gcs_handle(gcs_server) -> GcsHandle:
    bucket = gcs_server.new_bucket()
    return GcsHandle(make_gcs_destination(gcs_server, bucket), gcs_server, bucket, "exports")
