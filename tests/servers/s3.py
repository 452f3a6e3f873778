"""A real S3 server for tests: moto in server mode (``moto_server``), one per test process.

Moto answers the S3 protocol (multipart uploads, presigned URLs, checksums) but
checks neither signatures nor expiry of presigned URLs; tests assert on the
URL's parameters instead. Each test gets its own bucket, so no reset is needed.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import spawn
from ._process import ServerProcess

ACCESS_KEY = "AKIAFERRYTEST0000001"
SECRET_KEY = "ferry-s3-SECRET-never-in-logs-5b2e9"  # tests grep logs and artifacts for it
REGION = "us-east-1"


@dataclass
class MotoServer:
    url: str
    process: ServerProcess

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}, request_checksum_calculation="when_required"),
        )

    def new_bucket(self) -> str:
        name = f"ferry-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def credentials(self, **overrides):
        from prefect_aws import AwsClientParameters, AwsCredentials

        values = dict(
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            aws_client_parameters=AwsClientParameters(endpoint_url=self.url),
        )
        return AwsCredentials(**{**values, **overrides})


def start_moto(workdir: Path, env: dict[str, str] | None = None) -> MotoServer:
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail(f"{moto} is missing: install the test dependencies (`make install`, moto[server]).", pytrace=False)

    def ready(port: int) -> bool:
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
        )
        try:
            client.list_buckets()
        except botocore.exceptions.ClientError:
            pass  # an S3 error reply (e.g. 403 from a server that checks keys) is the protocol answering
        return True

    import os

    process, port = spawn(
        "moto", lambda port: [str(moto), "-H", "127.0.0.1", "-p", str(port)], ready, workdir, env={**os.environ, **(env or {})}
    )
    return MotoServer(url=f"http://127.0.0.1:{port}", process=process)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.process.stop()


@dataclass
class S3Handle:
    destination: object
    server: MotoServer
    bucket: str
    folder: str

    def _name(self, key: str) -> str:
        return f"{self.folder}/{key}" if self.folder else key

    def read(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.bucket, Key=self._name(key))["Body"].read()

    def keys(self) -> list[str]:
        """Objects under the folder, plus multipart uploads still open (``upload:KEY``): those are the temporaries."""
        client = self.server.client()
        prefix = f"{self.folder}/" if self.folder else ""
        objects = [
            o["Key"][len(prefix) :]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for o in page.get("Contents", [])
        ]
        uploads = [f"upload:{u['Key'][len(prefix) :]}" for u in client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]
        return sorted(objects + uploads)


def make_s3_destination(server: MotoServer, bucket: str, folder: str = "exports", **options):
    from prefect_aws import S3Bucket

    from blocks.s3 import S3Destination

    return S3Destination(
        bucket=S3Bucket(bucket_name=bucket, bucket_folder=folder, credentials=server.credentials()), **{"part_size_mib": 5, **options}
    )


@pytest.fixture
def s3_handle(moto_server) -> S3Handle:
    bucket = moto_server.new_bucket()
    return S3Handle(make_s3_destination(moto_server, bucket), moto_server, bucket, "exports")
