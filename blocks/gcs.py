"""Google Cloud Storage as a destination and source (google-cloud-storage, prefect-gcp's blocks).

Where the bucket is and how to log in stays in prefect-gcp's blocks: a
``GcsBucket`` (bucket, folder) holding ``GcpCredentials`` (service-account
JSON as a secret, or the machine's default credentials). ``--dest
gcs-bucket/NAME`` uses such a block as is; :class:`GcsDestination` adds
Ferry's delivery settings and, for tests and GCS-compatible servers, an
emulator address (``STORAGE_EMULATOR_HOST`` works too).

Delivery is a *resumable* upload in chunks of ``chunk_size_mib`` (one chunk in
memory): the object exists only once the last chunk is accepted, so a failed
upload leaves the previous object (or nothing) at the final name; the open
session expires on its own. The client computes the CRC32C of what it sent
and compares it with the server's at the end (a mismatch deletes the object).
Download URLs are V4 signed URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any, BinaryIO, ClassVar

from prefect_gcp.cloud_storage import GcsBucket
from pydantic import Field, PrivateAttr

from blocks._objectstore import (
    ObjectStoreDestination,
    check_lifetime,
    key_in_folder,
    list_prefix,
    object_name,
    read_full,
    relative_key,
    split_uri,
)
from blocks.destination import Delivery, HashingReader, StoredFile
from ferry.errors import DestinationError, TransientDestinationError

MIB = 1 << 20


def _block_name(block: Any) -> str | None:
    return getattr(block, "_block_document_name", None)


class GcsDestination(ObjectStoreDestination):
    """A Google Cloud Storage bucket (through a prefect-gcp GCS Bucket block) that receives exports and serves them back."""

    _block_type_name = "GCS Destination"
    _block_type_slug = "gcs-destination"
    _description = "Ferry's delivery settings for a prefect-gcp GCS Bucket."

    uri_schemes: ClassVar[tuple[str, ...]] = ("gs",)

    bucket: GcsBucket = Field(
        title="GCS bucket",
        description="The prefect-gcp GCS Bucket block: bucket name, folder and GCP credentials.",
    )
    chunk_size_mib: int = Field(
        default=8,
        ge=1,
        le=1024,
        title="Chunk size (MiB)",
        description="Size of each resumable-upload chunk; memory use is about one chunk.",
    )
    emulator_host: str | None = Field(
        default=None,
        title="Emulator address",
        description="Address of a GCS emulator such as http://127.0.0.1:9023; requests go there without authentication. Leave empty for Google Cloud Storage.",
    )

    _client: Any = PrivateAttr(default=None)

    @classmethod
    def for_bucket_block(cls, name: str) -> GcsDestination:
        """The destination for ``--dest gcs-bucket/NAME`` with default settings."""
        return cls(bucket=GcsBucket.load(name))

    # --- naming -------------------------------------------------------------------

    @property
    def _folder(self) -> str:
        return (self.bucket.bucket_folder or "").strip("/")

    @property
    def folder(self) -> str:
        """The folder inside the bucket/container that keys are relative to ("" = its root)."""
        return self._folder

    def describe(self) -> str:
        root = f"gs://{self.bucket.bucket}/{self._folder}".rstrip("/")
        return f"{root} ({self.block_label()})"

    def block_label(self) -> str:
        if _block_name(self):
            return super().block_label()
        if _block_name(self.bucket):
            return f"gcs-bucket block {_block_name(self.bucket)!r}"
        return "unsaved gcs-bucket block"

    def _credentials_label(self) -> str:
        name = _block_name(self.bucket.gcp_credentials)
        return f"gcp-credentials block {name!r}" if name else f"the GCP credentials of {self.block_label()}"

    def location(self, key: str) -> str:
        return f"gs://{self.bucket.bucket}/{object_name(self._folder, key)}"

    def key_for(self, location: str) -> str:
        bucket, name = split_uri(location, "gs")
        if bucket != self.bucket.bucket:
            raise DestinationError(
                f"{location!r} is not in bucket {self.bucket.bucket!r} of {self.block_label()}.",
                "Was the file delivered to another bucket?",
            )
        return key_in_folder(self._folder, name, self.block_label())

    def matches_uri(self, netloc: str) -> bool:
        return netloc == self.bucket.bucket

    # --- client and errors ----------------------------------------------------------

    def _signing_credentials(self) -> Any:
        """Service-account credentials (the secret JSON is unwrapped here, by prefect-gcp, and nowhere else)."""
        try:
            return self.bucket.gcp_credentials.get_credentials_from_service_account()
        except Exception as exc:  # noqa: BLE001 - google.auth raises several unrelated types
            raise DestinationError(
                f"{self.block_label()}: the GCP credentials are not usable ({type(exc).__name__}).",
                f"Check the service account JSON in {self._credentials_label()}.",
            ) from None

    def client(self) -> Any:
        if self._client is None:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            project = self.bucket.gcp_credentials.project or "ferry"
            if self._emulator():
                self._client = storage.Client(
                    project=project, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=self._emulator())
                )
            else:
                self._client = storage.Client(project=project, credentials=self._signing_credentials())
        return self._client

    def _emulator(self) -> str | None:
        """The emulator address: the block's, else STORAGE_EMULATOR_HOST (the variable Google's own clients read)."""
        import os

        return self.emulator_host or os.environ.get("STORAGE_EMULATOR_HOST") or None

    def _blob(self, name: str) -> Any:
        return self.client().bucket(self.bucket.bucket).blob(name, chunk_size=self.chunk_size_mib * MIB)

    def _error(self, exc: BaseException, action: str, name: str | None = None) -> DestinationError:
        import google.auth.exceptions as auth_errors
        import requests
        from google.api_core import exceptions as api
        from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

        where = f"gs://{self.bucket.bucket}/{name}" if name else f"bucket {self.bucket.bucket!r}"
        label = self.block_label()
        status = 0
        if isinstance(exc, api.GoogleAPICallError):
            status = int(exc.code or 0)
        elif isinstance(exc, InvalidResponse) and getattr(exc, "response", None) is not None:
            status = int(getattr(exc.response, "status_code", 0) or 0)
        if isinstance(exc, DataCorruption):
            return TransientDestinationError(f"{label}: {where} arrived corrupted (CRC32C mismatch) and was removed.")
        if status >= 500 or status in (408, 429):
            return TransientDestinationError(
                f"{label}: could not {action} {where}: the service answered {status}.",
                "This is usually temporary.",
            )
        if status in (401, 403) or isinstance(exc, auth_errors.RefreshError):
            return DestinationError(
                f"{label}: permission denied to {action} {where} ({status or type(exc).__name__}).",
                f"Check the service account in {self._credentials_label()} and that it may read, write "
                f"and delete objects in bucket {self.bucket.bucket!r} (roles/storage.objectAdmin).",
            )
        if status == 404:
            if name is None or "bucket" in str(getattr(exc, "message", "")).lower():
                return DestinationError(
                    f"{label}: bucket {self.bucket.bucket!r} or file {where} does not exist.",
                    "Check the bucket name in the GCS Bucket block, and the file name.",
                )
            return DestinationError(
                f"{label}: no file at {where}.", "Check the file name; expired exports are removed by retention cleanup."
            )
        if status:
            return DestinationError(
                f"{label}: could not {action} {where}: the service answered {status}.", "Check the GCS Bucket block and its credentials."
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return DestinationError(f"{label}: TLS to Google Cloud Storage failed.", "Check the network's proxy and CA settings.")
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, auth_errors.TransportError, ConnectionError, TimeoutError)):
            return TransientDestinationError(
                f"{label}: could not {action} {where}: {type(exc).__name__} talking to GCS.",
                "The network or service dropped the request.",
            )
        return DestinationError(
            f"{label}: could not {action} {where} ({type(exc).__name__}).", "Check the GCS Bucket block and its credentials."
        )

    @staticmethod
    def _client_errors() -> tuple[type[BaseException], ...]:
        import google.auth.exceptions as auth_errors
        import requests
        from google.api_core import exceptions as api
        from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

        return (
            api.GoogleAPICallError,
            api.RetryError,
            InvalidResponse,
            DataCorruption,
            auth_errors.GoogleAuthError,
            requests.RequestException,
            ConnectionError,
            TimeoutError,
        )

    def _call(self, action: str, name: str | None, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._client_errors() as exc:
            if type(exc).__name__ == "RetryError" and getattr(exc, "cause", None) is not None:
                exc = exc.cause  # the library gave up retrying: classify what it kept meeting
            raise self._error(exc, action, name) from None

    # --- the contract ---------------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        from google.cloud.storage.retry import DEFAULT_RETRY

        name = object_name(self._folder, key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is sent
        blob = self._blob(name)
        reader = HashingReader(source)
        # size=None + chunk_size: a resumable upload that reads one chunk at a time until the stream ends.
        self._call(
            "upload to",
            name,
            blob.upload_from_file,
            _ReplayableReader(reader),
            rewind=False,
            size=None,
            content_type="application/octet-stream",
            checksum="crc32c",
            retry=DEFAULT_RETRY.with_timeout(60.0),
        )
        if blob.size is not None and blob.size != reader.bytes:
            self._call("remove the corrupt upload at", name, blob.delete)
            raise TransientDestinationError(
                f"{self.block_label()}: {name} holds {blob.size} bytes, {reader.bytes} were sent; it was removed.",
            )
        return Delivery(
            location=self.location(key),
            bytes=reader.bytes,
            sha256=reader.sha256.hexdigest(),
            url=self.download_url(key, self.url_lifetime()),
        )

    def download_url(self, key: str, expires: timedelta) -> str:
        name = object_name(self._folder, key)
        seconds = check_lifetime(expires)
        credentials = self._signing_credentials()
        extra: dict[str, Any] = {}
        if self._emulator():
            extra["api_access_endpoint"] = self._emulator()
        if not hasattr(credentials, "sign_bytes"):  # e.g. a VM's default identity: sign through the IAM API
            import google.auth.transport.requests

            self._call("get a token to sign a URL for", name, credentials.refresh, google.auth.transport.requests.Request())
            extra.update(service_account_email=credentials.service_account_email, access_token=credentials.token)
        return self._call(
            "sign a download URL for",
            name,
            self._blob(name).generate_signed_url,
            version="v4",
            expiration=timedelta(seconds=seconds),
            method="GET",
            credentials=credentials,
            **extra,
        )

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        name = object_name(self._folder, key)
        blob = self._blob(name)
        self._call("read", name, blob.reload)  # a missing file fails here, clearly, not at the first read
        stream = self._call("read", name, blob.open, "rb", chunk_size=self.chunk_size_mib * MIB)
        try:
            yield _Reader(stream, lambda exc: self._error(exc, "read", name), self._client_errors())
        finally:
            stream.close()

    def exists(self, key: str) -> bool:
        name = object_name(self._folder, key)
        return bool(self._call("check", name, self._blob(name).exists))

    def delete_file(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        name = object_name(self._folder, key)
        try:
            self._blob(name).delete()
        except NotFound:  # a missing file is fine; a missing bucket is not
            if not self._call("check", None, self.client().bucket(self.bucket.bucket).exists):
                raise DestinationError(
                    f"{self.block_label()}: bucket {self.bucket.bucket!r} does not exist.", "Check the bucket name in the GCS Bucket block."
                ) from None
        except self._client_errors() as exc:
            raise self._error(exc, "delete", name) from None

    def leftovers_note(self) -> str | None:
        """A killed upload leaves only its resumable session, which GCS expires by itself after a week: nothing to sweep."""
        return "a killed resumable upload leaves no object, and GCS expires its session by itself after a week"

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        scope = list_prefix(self._folder, prefix)
        try:
            for item in self.client().list_blobs(self.bucket.bucket, prefix=scope or None):
                modified = item.updated
                yield StoredFile(
                    key=relative_key(self._folder, item.name),
                    bytes=item.size or 0,
                    modified=modified.astimezone(UTC) if modified.tzinfo else modified.replace(tzinfo=UTC),
                )
        except self._client_errors() as exc:
            raise self._error(exc, "list", scope or None) from None


class _ReplayableReader:
    """The stream the resumable-upload client wants: ``tell()``, and ``seek()`` back to resend a failed chunk.

    Only the chunk read last is kept (memory stays at one chunk) and each byte
    passes the hashing reader once, however often a chunk is resent.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._pos = 0
        self._buffer = b""
        self._buffer_start = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or not self._buffer_start <= pos <= self._buffer_start + len(self._buffer):
            raise OSError(f"cannot seek to {pos}: only the last chunk ({self._buffer_start}..) can be resent")
        self._pos = pos
        return pos

    def read(self, size: int = -1) -> bytes:
        end = self._buffer_start + len(self._buffer)
        if self._pos < end:  # resending part of the last chunk
            offset = self._pos - self._buffer_start
            data = self._buffer[offset:] if size is None or size < 0 else self._buffer[offset : offset + size]
        else:
            data = self._source.read() if size is None or size < 0 else read_full(self._source, size)
            self._buffer, self._buffer_start = data, self._pos
        self._pos += len(data)
        return data


class _Reader:
    """A read-only stream over a GCS BlobReader, with failures mapped to Ferry errors."""

    def __init__(self, stream: Any, to_error, errors: tuple[type[BaseException], ...]) -> None:
        self._stream = stream
        self._to_error = to_error
        self._errors = errors

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size if size is not None else -1)
        except self._errors as exc:
            raise self._to_error(exc) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()
