"""A real Azure Blob Storage server for tests: Azurite (npm, installed by `make test` into ./node_modules).

Azurite enforces Shared Key and SAS authentication (wrong keys, tampered or
expired SAS get 403), so credential and URL tests are real. One server per
test process, one container per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import spawn
from ._process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public; not a secret of anyone's).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class AzuriteServer:
    url: str  # the blob endpoint, http://127.0.0.1:PORT/devstoreaccount1
    process: ServerProcess

    def connection_string(self, key: str = KEY) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={self.url};"

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string(), retry_total=0)

    def new_container(self) -> str:
        name = f"ferry-{uuid.uuid4().hex[:16]}"
        self.service().create_container(name)
        return name

    def credentials(self, key: str = KEY):
        from prefect_azure import AzureBlobStorageCredentials

        return AzureBlobStorageCredentials(connection_string=self.connection_string(key))


def start_azurite(workdir: Path) -> AzuriteServer:
    if not AZURITE.exists():
        pytest.fail(
            f"{AZURITE} is missing: `make test` installs it (npm ci from package.json); run `make node_modules/.installed`.", pytrace=False
        )
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)

    def ready(port: int) -> bool:
        from azure.storage.blob import BlobServiceClient

        url = f"http://127.0.0.1:{port}/{ACCOUNT}"
        conn = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={url};"
        client = BlobServiceClient.from_connection_string(conn, retry_total=0, connection_timeout=1, read_timeout=2)
        client.get_service_properties()
        return True

    def argv(port: int) -> list[str]:
        # --skipApiVersionCheck: the Python SDK is newer than Azurite and asks for a newer API version.
        return [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]

    process, port = spawn("azurite", argv, ready, workdir, deadline=60, env=dict(os.environ))
    return AzuriteServer(url=f"http://127.0.0.1:{port}/{ACCOUNT}", process=process)


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory) -> Iterator[AzuriteServer]:
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.process.stop()


@dataclass
class AzureHandle:
    destination: object
    server: AzuriteServer
    container: str
    folder: str

    def _name(self, key: str) -> str:
        return f"{self.folder}/{key}" if self.folder else key

    def read(self, key: str) -> bytes:
        return self.server.service().get_blob_client(self.container, self._name(key)).download_blob().readall()

    def keys(self) -> list[str]:
        """Committed blobs under the folder. Uncommitted blocks of a failed upload are invisible and expire in a week."""
        prefix = f"{self.folder}/" if self.folder else ""
        return sorted(b.name[len(prefix) :] for b in self.server.service().get_container_client(self.container).list_blobs())


def make_azure_destination(server: AzuriteServer, container: str, folder: str = "exports", key: str = KEY, **options):
    from prefect_azure import AzureBlobStorageContainer

    from blocks.azure_blob import AzureBlobDestination

    return AzureBlobDestination(
        container=AzureBlobStorageContainer(container_name=container, base_folder=folder, credentials=server.credentials(key)),
        **{"block_size_mib": 1, **options},
    )


@pytest.fixture
def azure_blob_handle(azurite_server) -> AzureHandle:
    container = azurite_server.new_container()
    return AzureHandle(make_azure_destination(azurite_server, container), azurite_server, container, "exports")
