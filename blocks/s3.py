"""S3-compatible object storage (AWS S3, Cloudflare R2, MinIO, ...) as a destination and source.

Where the bucket is and how to log in stays in prefect-aws's own blocks: an
``S3Bucket`` (bucket name, folder) holding ``AwsCredentials`` or
``MinIOCredentials`` (keys as ``SecretStr``; an *endpoint URL* in their client
parameters reaches R2, MinIO or any S3-compatible server). ``--dest
s3-bucket/NAME`` uses such a block as is; :class:`S3Destination` adds how Ferry
delivers (part size, URL lifetime) when the defaults do not fit.

Delivery streams the file in parts of ``part_size_mib`` (one part in memory,
nothing on disk): a file smaller than one part is a single PUT, a larger one a
multipart upload that becomes visible only when completed and is aborted on
any failure, so the final key never holds half a file. Each request carries
the part's SHA-256 for the server to verify, and the server's checksum of the
whole object is compared with ours before the delivery counts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, ClassVar

import botocore.exceptions as boto_errors
from botocore.config import Config
from prefect_aws import S3Bucket
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
from blocks.destination import Delivery, HashingReader, Leftover, StoredFile
from ferry.errors import DestinationError, TransientDestinationError

MIB = 1 << 20
TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "OperationAborted",
}
AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidSecurity",
    "UnauthorizedAccess",
    "Forbidden",
}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _block_name(block: Any) -> str | None:
    return getattr(block, "_block_document_name", None)


class S3Destination(ObjectStoreDestination):
    """An S3-compatible bucket (through a prefect-aws S3 Bucket block) that receives exports and serves them back."""

    _block_type_name = "S3 Destination"
    _block_type_slug = "s3-destination"
    _description = "Ferry's delivery settings for a prefect-aws S3 Bucket (AWS S3, Cloudflare R2, MinIO, any endpoint URL)."

    uri_schemes: ClassVar[tuple[str, ...]] = ("s3",)

    bucket: S3Bucket = Field(
        title="S3 bucket",
        description="The prefect-aws S3 Bucket block: bucket name, folder and credentials (an endpoint URL in the credentials' client parameters reaches R2, MinIO and other S3-compatible servers).",
    )
    part_size_mib: int = Field(
        default=8,
        ge=5,
        le=5 * 1024,
        title="Part size (MiB)",
        description="Size of each uploaded part; memory use is about one part. S3 requires at least 5 MiB.",
    )
    server_checksums: bool = Field(
        default=True,
        title="Server-side checksums",
        description="Send each part's SHA-256 for the server to verify and compare the stored object's checksum; turn off only for S3-compatible servers that reject checksum headers.",
    )

    _client: Any = PrivateAttr(default=None)

    @classmethod
    def for_bucket_block(cls, name: str) -> S3Destination:
        """The destination for ``--dest s3-bucket/NAME``: a saved prefect-aws S3 Bucket with default settings."""
        return cls(bucket=S3Bucket.load(name))

    # --- naming -------------------------------------------------------------------

    @property
    def _folder(self) -> str:
        return (self.bucket.bucket_folder or "").strip("/")

    @property
    def folder(self) -> str:
        """The folder inside the bucket/container that keys are relative to ("" = its root)."""
        return self._folder

    def describe(self) -> str:
        root = f"s3://{self.bucket.bucket_name}/{self._folder}".rstrip("/")
        return f"{root} ({self.block_label()})"

    def block_label(self) -> str:
        if _block_name(self):
            return super().block_label()
        if _block_name(self.bucket):
            return f"s3-bucket block {_block_name(self.bucket)!r}"
        return "unsaved s3-bucket block"

    def _credentials_label(self) -> str:
        credentials = self.bucket.credentials
        slug = credentials.get_block_type_slug()
        name = _block_name(credentials)
        return f"{slug} block {name!r}" if name else f"the {slug} of {self.block_label()}"

    def _endpoint(self) -> str:
        return self.bucket.credentials.aws_client_parameters.endpoint_url or "AWS S3"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket.bucket_name}/{object_name(self._folder, key)}"

    def key_for(self, location: str) -> str:
        bucket, name = split_uri(location, "s3")
        if bucket != self.bucket.bucket_name:
            raise DestinationError(
                f"{location!r} is not in bucket {self.bucket.bucket_name!r} of {self.block_label()}.",
                "Was the file delivered to another bucket?",
            )
        return key_in_folder(self._folder, name, self.block_label())

    def matches_uri(self, netloc: str) -> bool:
        return netloc == self.bucket.bucket_name

    # --- client and errors ----------------------------------------------------------

    def client(self) -> Any:
        """A boto3 S3 client; the secret key is unwrapped here, inside prefect-aws's session call, and nowhere else."""
        if self._client is None:
            credentials = self.bucket.credentials
            params = credentials.aws_client_parameters.get_params_override()
            user_config = params.pop("config", None)
            config = Config(
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                # boto3 >= 1.36 adds CRC32 checksums to every request by default, which several
                # S3-compatible servers refuse; Ferry sends its own SHA-256 where it wants one.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            if user_config is not None:
                config = config.merge(user_config)
            try:
                session = credentials.get_boto3_session()
                self._client = session.client("s3", config=config, **params)
            except boto_errors.BotoCoreError as exc:
                raise self._error(exc, "connect to") from None
        return self._client

    def _error(self, exc: BaseException, action: str, name: str | None = None) -> DestinationError:
        """Map a boto3/botocore failure to a terminal or transient Ferry error that names the block to check."""
        where = f"s3://{self.bucket.bucket_name}/{name}" if name else f"bucket {self.bucket.bucket_name!r}"
        label = self.block_label()
        if isinstance(exc, boto_errors.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500 or code in TRANSIENT_CODES or status == 429:
                return TransientDestinationError(
                    f"{label}: could not {action} {where}: the server answered {status} {code}.",
                    "This is usually temporary.",
                )
            if code in AUTH_CODES or status in (401, 403):
                return DestinationError(
                    f"{label}: permission denied to {action} {where} ({status} {code}).",
                    f"Check the access key and secret in {self._credentials_label()} (endpoint {self._endpoint()}), "
                    f"and that they may read, write and delete objects in bucket {self.bucket.bucket_name!r}.",
                )
            if code == "NoSuchBucket":
                return DestinationError(
                    f"{label}: bucket {self.bucket.bucket_name!r} does not exist at {self._endpoint()}.",
                    "Check the bucket name in the S3 Bucket block, and the region or endpoint URL of its credentials.",
                )
            if code in ("NoSuchKey", "404", "NotFound"):
                return DestinationError(
                    f"{label}: no file at {where}.", "Check the file name; expired exports are removed by retention cleanup."
                )
            if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
                return DestinationError(
                    f"{label}: bucket {self.bucket.bucket_name!r} is in another region ({code}).",
                    f"Set region_name in {self._credentials_label()} to the bucket's region.",
                )
            return DestinationError(
                f"{label}: could not {action} {where}: the server answered {status} {code}.",
                "Check the S3 Bucket block and its credentials.",
            )
        if isinstance(exc, (boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError, boto_errors.CredentialRetrievalError)):
            return DestinationError(
                f"{label}: no usable AWS credentials ({type(exc).__name__}).",
                f"Fill in the access key and secret of {self._credentials_label()}.",
            )
        if isinstance(exc, boto_errors.SSLError):
            return DestinationError(
                f"{label}: TLS to {self._endpoint()} failed (certificate or protocol).",
                "Check the endpoint URL and the verify / CA bundle settings of the credentials' client parameters.",
            )
        if isinstance(
            exc, (boto_errors.ConnectionError, boto_errors.HTTPClientError, boto_errors.IncompleteReadError, ConnectionError, TimeoutError)
        ):
            return TransientDestinationError(
                f"{label}: could not {action} {where}: {type(exc).__name__} talking to {self._endpoint()}.",
                "The network or server dropped the request.",
            )
        if isinstance(exc, boto_errors.ParamValidationError):
            return DestinationError(
                f"{label}: invalid request to {action} {where}.", "Check the bucket name and folder of the S3 Bucket block."
            )
        return DestinationError(
            f"{label}: could not {action} {where} ({type(exc).__name__}).", "Check the S3 Bucket block and its credentials."
        )

    def _call(self, action: str, name: str | None, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), method)(**kwargs)
        except (boto_errors.BotoCoreError, boto_errors.ClientError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, action, name) from None

    # --- the contract ---------------------------------------------------------------

    def deliver(self, source: BinaryIO, key: str, overwrite: bool = True) -> Delivery:
        name = object_name(self._folder, key)
        if not overwrite:
            self.refuse_existing(key)  # before a byte is sent
        bucket = self.bucket.bucket_name
        part_size = self.part_size_mib * MIB
        reader = HashingReader(source)
        first = read_full(reader, part_size, mutable=True)
        if len(first) < part_size:  # fits one request: a single PUT is atomic by itself
            digest = hashlib.sha256(first).digest()
            checksum = {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": _b64(digest)} if self.server_checksums else {}
            answer = self._call("upload to", name, "put_object", Bucket=bucket, Key=name, Body=first, **checksum)
            expected = _b64(digest)
        else:
            pending = [first]
            del first  # the part list owns it now, so the upload loop can let it go
            answer, expected = self._multipart(reader, pending, name, part_size)
        if self.server_checksums:
            self._verify(name, expected, answer.get("ChecksumSHA256"))
        return Delivery(
            location=self.location(key),
            bytes=reader.bytes,
            sha256=reader.sha256.hexdigest(),
            url=self.download_url(key, self.url_lifetime()),
        )

    def _multipart(self, reader: HashingReader, pending: list, name: str, part_size: int) -> tuple[dict, str]:
        """Upload the part in ``pending`` and the rest of ``reader``.

        Returns the server's answer to the completion and the composite SHA-256
        (the SHA-256 of the parts' SHA-256s) it should report.
        """
        bucket = self.bucket.bucket_name
        checksum = {"ChecksumAlgorithm": "SHA256"} if self.server_checksums else {}
        upload_id = self._call("start an upload to", name, "create_multipart_upload", Bucket=bucket, Key=name, **checksum)["UploadId"]
        parts: list[dict] = []
        digests: list[bytes] = []
        try:
            chunk = pending.pop()
            while chunk:
                number = len(parts) + 1
                digest = hashlib.sha256(chunk).digest()
                extra = {"ChecksumSHA256": _b64(digest)} if self.server_checksums else {}
                answer = self._call(
                    f"upload part {number} to",
                    name,
                    "upload_part",
                    Bucket=bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    **extra,
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"], **extra})
                digests.append(digest)
                chunk = b""  # drop this part before reading the next: memory stays at one part
                chunk = read_full(reader, part_size, mutable=True)
            answer = self._call(
                "complete the upload to",
                name,
                "complete_multipart_upload",
                Bucket=bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Nothing was published: drop the parts so they neither cost storage nor linger.
            try:
                self.client().abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                pass
            raise
        return answer, _b64(hashlib.sha256(b"".join(digests)).digest())

    def _verify(self, name: str, expected: str, stored: str | None) -> None:
        """Compare the checksum the server computed over what it stored with ours; a mismatch removes the object.

        The checksum comes with the PUT / completion answer, so a write-only key
        (no GetObject) suffices. A server that reports none has still verified
        each request's x-amz-checksum-sha256 header.
        """
        if stored is not None and stored.split("-")[0] != expected:
            self._call("remove the corrupt upload at", name, "delete_object", Bucket=self.bucket.bucket_name, Key=name)
            raise TransientDestinationError(
                f"{self.block_label()}: s3://{self.bucket.bucket_name}/{name} does not match what was sent "
                "(the server's SHA-256 differs); it was removed.",
            )

    @contextmanager
    def open_source(self, key: str) -> Iterator[BinaryIO]:
        name = object_name(self._folder, key)
        body = self._call("read", name, "get_object", Bucket=self.bucket.bucket_name, Key=name)["Body"]
        try:
            yield _ErrorMappingStream(body, lambda exc: self._error(exc, "read", name))
        finally:
            body.close()

    def download_url(self, key: str, expires: timedelta) -> str:
        name = object_name(self._folder, key)
        seconds = check_lifetime(expires)
        try:
            return self.client().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket.bucket_name, "Key": name}, ExpiresIn=seconds
            )
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            raise self._error(exc, "sign a download URL for", name) from None

    def upload_form(self, key: str, size_bytes: int, expires: timedelta) -> dict[str, Any]:
        """A presigned POST (an HTML form upload) of exactly ``size_bytes`` to ``key``: ``{url, fields}``.

        The signed policy carries ``content-length-range`` [size_bytes, size_bytes], so S3
        refuses a file of any other size (EntityTooLarge / EntityTooSmall), and expires
        after ``expires``. Posting again before then replaces the object.
        """
        name = object_name(self._folder, key)
        seconds = check_lifetime(expires)
        try:
            return self.client().generate_presigned_post(
                self.bucket.bucket_name,
                name,
                Conditions=[["content-length-range", size_bytes, size_bytes]],
                ExpiresIn=seconds,
            )
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            raise self._error(exc, "sign an upload form for", name) from None

    def exists(self, key: str) -> bool:
        name = object_name(self._folder, key)
        try:
            self.client().head_object(Bucket=self.bucket.bucket_name, Key=name)
            return True
        except boto_errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, "check", name) from None
        except (boto_errors.BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "check", name) from None

    def delete_file(self, key: str) -> None:
        name = object_name(self._folder, key)
        self._call("delete", name, "delete_object", Bucket=self.bucket.bucket_name, Key=name)

    def list_files(self, prefix: str = "") -> Iterator[StoredFile]:
        scope = list_prefix(self._folder, prefix)
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket.bucket_name, Prefix=scope)
            for page in pages:
                for item in page.get("Contents", []):
                    modified = item["LastModified"]
                    yield StoredFile(
                        key=relative_key(self._folder, item["Key"]),
                        bytes=item["Size"],
                        modified=modified.astimezone(UTC) if modified.tzinfo else modified.replace(tzinfo=UTC),
                    )
        except (boto_errors.BotoCoreError, boto_errors.ClientError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "list", scope or None) from None

    # --- leftovers of killed deliveries -----------------------------------------------

    def leftovers_note(self) -> str | None:
        if not self._folder:
            return (
                f"at the root of bucket {self.bucket.bucket_name!r} Ferry cannot tell its unfinished multipart uploads from "
                "other programs'; give the block a folder of its own, and keep the bucket's lifecycle rule"
            )
        return None

    def leftovers(self, older_than: datetime) -> list[Leftover]:
        """Unfinished multipart uploads under the block's folder started before ``older_than`` (a killed delivery's).

        A delivery aborts its upload when it fails; only a process killed
        mid-upload leaves one, invisible in the bucket but billed for its parts.
        Nothing at a bucket's root (:meth:`leftovers_note`).
        """
        if not self._folder:
            return []
        bucket = self.bucket.bucket_name
        prefix = self._folder + "/"
        found: list[Leftover] = []
        try:
            for page in self.client().get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    started = upload["Initiated"]
                    started = started.astimezone(UTC) if started.tzinfo else started.replace(tzinfo=UTC)
                    if started >= older_than or not upload["Key"].startswith(prefix):
                        continue
                    found.append(
                        Leftover(
                            kind="multipart upload",
                            key=relative_key(self._folder, upload["Key"]),
                            location=f"s3://{bucket}/{upload['Key']} (upload {upload['UploadId']})",
                            since=started,
                            upload_id=upload["UploadId"],
                        )
                    )
        except (boto_errors.BotoCoreError, boto_errors.ClientError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "list unfinished uploads in", prefix) from None
        return found

    def remove_leftover(self, leftover: Leftover) -> None:
        """Abort an unfinished multipart upload (its parts are deleted); one already gone is not an error."""
        if leftover.upload_id is None:
            raise DestinationError(f"{self.block_label()}: {leftover.location} is not an unfinished upload.", "It was not removed.")
        name = object_name(self._folder, leftover.key)
        try:
            self.client().abort_multipart_upload(Bucket=self.bucket.bucket_name, Key=name, UploadId=leftover.upload_id)
        except boto_errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return  # completed or aborted meanwhile
            raise self._error(exc, "abort the unfinished upload to", name) from None
        except (boto_errors.BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise self._error(exc, "abort the unfinished upload to", name) from None


class _ErrorMappingStream:
    """A read-only binary stream whose network failures surface as Ferry errors (transient or not)."""

    def __init__(self, stream: Any, to_error) -> None:
        self._stream = stream
        self._to_error = to_error

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size if size is not None and size >= 0 else None)
        except (boto_errors.BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise self._to_error(exc) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()
