"""Azure Blob Storage as a destination and source (azure-storage-blob, prefect-azure's blocks).

Where the container is and how to log in stays in prefect-azure's blocks: an
``AzureBlobStorageContainer`` (container, base folder) holding
``AzureBlobStorageCredentials`` (a connection string as ``SecretStr``, or an
account URL with a service principal / DefaultAzureCredential). ``--dest
azure-blob-storage-container/NAME`` uses such a block as is;
:class:`AzureBlobDestination` adds Ferry's delivery settings.

Delivery is a block-blob *staged* upload: the stream goes up in blocks of
``block_size_mib`` (one in memory), each with a transactional MD5 the service
verifies, and the blob appears only when the block list is committed. A failed
upload commits nothing, so the final name keeps its previous content (or
stays absent); Azure discards uncommitted blocks after a week. The commit
stores the whole file's MD5 (checked by downloads) and SHA-256 (metadata).
Download URLs are read-only SAS tokens signed with the account key (or a user
delegation key when the credentials are Entra ID ones).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, ClassVar

from azure.core import exceptions as az
from prefect_azure import AzureBlobStorageContainer
from pydantic import Field, PrivateAttr

from blocks._objectstore import ObjectStoreDestination, check_lifetime, key_in_folder, list_prefix, object_name, read_full, relative_key
from blocks.destination import Delivery, HashingReader, StoredFile
from ferry.errors import DestinationError, SigningUnavailableError, TransientDestinationError

MIB = 1 << 20


def _client_options() -> dict:
    """Short SDK retries (about 4 s): the deliver task retries transient failures itself, with longer pauses.

    The storage SDK's default policy waits 15 s, 18 s, 24 s, ... between attempts.
    """
    from azure.storage.blob import ExponentialRetry

    return dict(
        retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1),
        connection_timeout=10,
        read_timeout=120,
    )


AUTH_CODES = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationSourceIPMismatch",
    "InsufficientAccountPermissions",
    "AccountIsDisabled",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
}
TRANSIENT_CODES = {"ServerBusy", "InternalError", "OperationTimedOut"}


def _block_name(block: Any) -> str | None:
    return getattr(block, "_block_document_name", None)


class AzureBlobDestination(ObjectStoreDestination):
    """An Azure Blob Storage container (through a prefect-azure container block) that receives exports and serves them back."""

    _block_type_name = "Azure Blob Destination"
    _block_type_slug = "azure-blob-destination"
    _description = "Ferry's delivery settings for a prefect-azure Azure Blob Storage Container."

    uri_schemes: ClassVar[tuple[str, ...]] = ("az", "azure")

    container: AzureBlobStorageContainer = Field(
        title="Blob container",
        description="The prefect-azure Azure Blob Storage Container block: container name, base folder and credentials.",
    )
    block_size_mib: int = Field(
        default=8,
        ge=1,
        le=4000,
        title="Block size (MiB)",
        description="Size of each staged block; memory use is about one block.",
    )

    _service: Any = PrivateAttr(default=None)

    @classmethod
    def for_container_block(cls, name: str) -> AzureBlobDestination:
        """The destination for ``--dest azure-blob-storage-container/NAME`` with default settings."""
        return cls(container=AzureBlobStorageContainer.load(name))

    # --- naming -------------------------------------------------------------------

    @property
    def _folder(self) -> str:
        return (self.container.base_folder or "").strip("/")

    @property
    def folder(self) -> str:
        """The folder inside the bucket/container that keys are relative to ("" = its root)."""
        return self._folder

    @property
    def _container_name(self) -> str:
        return self.container.container_name

    def describe(self) -> str:
        root = f"azure container {self._container_name}/{self._folder}".rstrip("/")
        return f"{root} ({self.block_label()})"

    def block_label(self) -> str:
        if _block_name(self):
            return super().block_label()
        if _block_name(self.container):
            return f"azure-blob-storage-container block {_block_name(self.container)!r}"
        return "unsaved azure-blob-storage-container block"

    def _credentials_label(self) -> str:
        name = _block_name(self.container.credentials)
        return f"azure-blob-storage-credentials block {name!r}" if name else f"the credentials of {self.block_label()}"

    def location(self, key: str) -> str:
        return self._plain_url(object_name(self._folder, key))

    def _plain_url(self, name: str) -> str:
        """The blob's URL without any query: a client built from a SAS connection string appends its token to ``.url``."""
        return self._blob(name).url.split("?", 1)[0]

    def key_for(self, location: str) -> str:
        container_url = self.service().get_container_client(self._container_name).url.split("?", 1)[0].rstrip("/") + "/"
        if not location.startswith(container_url):
            raise DestinationError(
                f"{location!r} is not in container {self._container_name!r} of {self.block_label()}.",
                "Was the file delivered to another container?",
            )
        from urllib.parse import unquote

        return key_in_folder(self._folder, unquote(location[len(container_url) :].split("?")[0]), self.block_label())

    def matches_uri(self, netloc: str) -> bool:
        return netloc == self._container_name

    # --- client and errors ----------------------------------------------------------

    def service(self) -> Any:
        """A sync BlobServiceClient; the connection string or client secret is unwrapped here only."""
        if self._service is None:
            from azure.storage.blob import BlobServiceClient

            credentials = self.container.credentials
            try:
                if credentials.connection_string is not None:
                    self._service = BlobServiceClient.from_connection_string(
                        credentials.connection_string.get_secret_value(), **_client_options()
                    )
                elif credentials.client_id is not None:
                    from azure.identity import ClientSecretCredential

                    token = ClientSecretCredential(
                        tenant_id=credentials.tenant_id,
                        client_id=credentials.client_id,
                        client_secret=credentials.client_secret.get_secret_value(),
                    )
                    self._service = BlobServiceClient(credentials.account_url, credential=token, **_client_options())
                else:
                    from azure.identity import DefaultAzureCredential

                    self._service = BlobServiceClient(credentials.account_url, credential=DefaultAzureCredential(), **_client_options())
            except (ValueError, az.AzureError) as exc:
                raise DestinationError(
                    f"{self.block_label()}: the Azure credentials are not usable ({type(exc).__name__}).",
                    f"Check the connection string or account URL in {self._credentials_label()}.",
                ) from None
        return self._service

    def _blob(self, name: str) -> Any:
        return self.service().get_blob_client(self._container_name, name)

    def _error(self, exc: BaseException, action: str, name: str | None = None) -> DestinationError:
        where = f"{self._container_name}/{name}" if name else f"container {self._container_name!r}"
        label = self.block_label()
        if isinstance(exc, az.HttpResponseError) and not isinstance(exc, az.DecodeError):
            status = int(exc.status_code or 0)
            code = getattr(exc, "error_code", None) or ""
            code = str(getattr(code, "value", code))  # the SDK gives a StorageErrorCode enum or a string
            if status >= 500 or status in (408, 429) or code in TRANSIENT_CODES:
                return TransientDestinationError(
                    f"{label}: could not {action} {where}: the service answered {status} {code}.",
                    "This is usually temporary.",
                )
            if status in (401, 403) or code in AUTH_CODES or isinstance(exc, az.ClientAuthenticationError):
                return DestinationError(
                    f"{label}: permission denied to {action} {where} ({status} {code}).",
                    f"Check the account key or credentials in {self._credentials_label()}, and that they may "
                    f"read, write and delete blobs in container {self._container_name!r}.",
                )
            if code == "ContainerNotFound":
                return DestinationError(
                    f"{label}: container {self._container_name!r} does not exist.",
                    "Check the container name in the Azure Blob Storage Container block.",
                )
            if status == 404:
                return DestinationError(
                    f"{label}: no file at {where}.", "Check the file name; expired exports are removed by retention cleanup."
                )
            return DestinationError(
                f"{label}: could not {action} {where}: the service answered {status} {code}.",
                "Check the Azure Blob Storage Container block and its credentials.",
            )
        if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError, az.DecodeError, ConnectionError, TimeoutError)):
            return TransientDestinationError(
                f"{label}: could not {action} {where}: {type(exc).__name__} talking to Azure.",
                "The network or service dropped the request.",
            )
        if isinstance(exc, az.AzureError) and "credential" in type(exc).__name__.lower():
            return DestinationError(
                f"{label}: could not get an Azure token ({type(exc).__name__}).",
                f"Check the service principal or managed identity behind {self._credentials_label()}.",
            )
        return DestinationError(
            f"{label}: could not {action} {where} ({type(exc).__name__}).",
            "Check the Azure Blob Storage Container block and its credentials.",
        )

    def _call(self, action: str, name: str | None, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (az.AzureError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, action, name) from None

    # --- the contract ---------------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        from azure.storage.blob import BlobBlock, ContentSettings

        name = object_name(self._folder, key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is sent
        blob = self._blob(name)
        size = self.block_size_mib * MIB
        reader = HashingReader(source)
        md5 = hashlib.md5(usedforsecurity=False)
        session = uuid.uuid4().hex[:16]  # block ids of this upload only; concurrent uploads to the name do not mix
        blocks: list[BlobBlock] = []
        while True:
            chunk = read_full(reader, size)
            if not chunk and blocks:
                break
            block_id = base64.b64encode(f"{session}-{len(blocks):08d}".encode()).decode()
            if chunk:
                md5.update(chunk)
                self._call(
                    f"upload block {len(blocks) + 1} of", name, blob.stage_block, block_id, chunk, length=len(chunk), validate_content=True
                )
                blocks.append(BlobBlock(block_id=block_id))
            if len(chunk) < size:
                break
        # Committing the block list publishes the blob at once; nothing is visible before.
        self._call(
            "commit",
            name,
            blob.commit_block_list,
            blocks,
            content_settings=ContentSettings(content_md5=bytearray(md5.digest()), content_type="application/octet-stream"),
            metadata={"sha256": reader.sha256.hexdigest()},
        )
        properties = self._call("check", name, blob.get_blob_properties)
        if properties.size != reader.bytes:
            self._call("remove the corrupt upload at", name, blob.delete_blob)
            raise TransientDestinationError(
                f"{self.block_label()}: {name} holds {properties.size} bytes, {reader.bytes} were sent; it was removed.",
            )
        return Delivery(
            location=self._plain_url(name),
            bytes=reader.bytes,
            sha256=reader.sha256.hexdigest(),
            url=self._url_or_none(name, self.url_lifetime()),
        )

    def _url_or_none(self, name: str, expires: timedelta) -> str | None:
        try:
            return self._sign(name, expires)
        except SigningUnavailableError:
            return None

    def _sign(self, name: str, expires: timedelta) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        seconds = check_lifetime(expires)
        service = self.service()
        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + timedelta(seconds=seconds)  # start: tolerate clock skew
        credential = service.credential
        account_key = getattr(credential, "account_key", None)
        if account_key:
            sas = generate_blob_sas(
                service.account_name,
                self._container_name,
                name,
                account_key=account_key,
                permission=BlobSasPermissions(read=True),
                start=start,
                expiry=expiry,
            )
        elif hasattr(credential, "get_token"):
            delegation = self._call("get a user delegation key for", name, service.get_user_delegation_key, start, expiry)
            sas = generate_blob_sas(
                service.account_name,
                self._container_name,
                name,
                user_delegation_key=delegation,
                permission=BlobSasPermissions(read=True),
                start=start,
                expiry=expiry,
            )
        else:
            raise SigningUnavailableError(
                f"{self.block_label()}: cannot sign download URLs: its credentials hold neither an account key nor an Entra ID identity.",
                f"Use a connection string with an AccountKey in {self._credentials_label()}.",
            )
        return f"{self._plain_url(name)}?{sas}"

    def download_url(self, key: str, expires: timedelta) -> str:
        return self._sign(object_name(self._folder, key), expires)

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        name = object_name(self._folder, key)
        downloader = self._call("read", name, self._blob(name).download_blob, max_concurrency=1)
        yield _Reader(downloader, lambda exc: self._error(exc, "read", name))

    def exists(self, key: str) -> bool:
        name = object_name(self._folder, key)
        return bool(self._call("check", name, self._blob(name).exists))

    def delete_file(self, key: str) -> None:
        name = object_name(self._folder, key)
        try:
            self._blob(name).delete_blob()
        except az.ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise self._error(exc, "delete", name) from None
        except (az.AzureError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "delete", name) from None

    def leftovers_note(self) -> str | None:
        """A killed upload leaves only uncommitted blocks, which Azure discards by itself after 7 days: nothing to sweep."""
        return "uncommitted blocks of a killed upload are invisible and Azure discards them by itself after 7 days"

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        scope = list_prefix(self._folder, prefix)
        container = self.service().get_container_client(self._container_name)
        try:
            for item in container.list_blobs(name_starts_with=scope or None):
                modified = item.last_modified
                yield StoredFile(
                    key=relative_key(self._folder, item.name),
                    bytes=item.size,
                    modified=modified.astimezone(UTC) if modified.tzinfo else modified.replace(tzinfo=UTC),
                )
        except (az.AzureError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "list", scope or None) from None


class _Reader:
    """A read-only stream over a StorageStreamDownloader, with Azure failures mapped to Ferry errors."""

    def __init__(self, downloader: Any, to_error) -> None:
        self._downloader = downloader
        self._to_error = to_error

    def read(self, size: int = -1) -> bytes:
        try:
            return self._downloader.read(size if size is not None and size >= 0 else -1)
        except (az.AzureError, ConnectionError, TimeoutError) as exc:
            raise self._to_error(exc) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass
