"""The upload store: files the HTTP API receives for imports, one folder per upload and a JSON file of its metadata beside it.

``<data_dir>/uploads/<workspace>/<upload_id>/<filename>`` holds the file once it
is complete, ``<data_dir>/uploads/<workspace>/<upload_id>.json`` its metadata
(filename, size, workspace, the key that created it, created, expires,
completed). An upload belongs to one workspace: asking for it from another is
the same UploadNotFoundError as asking for an id that never existed.

The content arrives once, as a stream, within ``UPLOAD_MINUTES`` of the
upload's creation: through a signed URL (``PUT``, no key: the URL is the
permission, as with an S3 presigned URL) or from a key (``POST``). Bytes are
counted as they are written; more than the announced size or than
``FERRY_API_MAX_UPLOAD_BYTES`` stops the write (PayloadTooLargeError) and
removes the partial file. The file appears under its name only when it is
whole, and only once.

When managed storage is an S3 bucket (``FERRY_MANAGED_DESTINATION`` names an
``s3-bucket`` or ``s3-destination`` block), the target is a presigned S3 POST
instead: the client posts the form's ``fields`` and the file straight to the
bucket, at ``<folder>/uploads/<workspace>/<upload_id>/<filename>``, and the
policy's ``content-length-range`` is exactly ``sizeBytes`` (S3 refuses other
sizes, and the form after ``expiresAt``). The metadata records the object's key
and location. The first look at such an upload once its object exists
(:func:`current_upload`: its status, or any import step) fetches it: streamed
from the bucket into the upload's folder with the same size checks as a PUT,
the file appearing only when whole; then the upload is complete and the
bucket's copy deleted. An object of the wrong size is deleted and refused (413
or 400, as a PUT would be), so the form can be posted again; until the object
exists the upload stays pending. Other managed storage (local, Azure, GCS,
SFTP, ...) keeps the API's own signed URL.

Uploads are kept ``FERRY_UPLOAD_RETENTION_DAYS`` (7) after their creation; each
new upload removes the older ones (:func:`remove_old_uploads`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from ferry.errors import (
    ConfigurationError,
    FerryError,
    MalformedRequestError,
    ParameterError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UploadNotFoundError,
    UploadStateError,
    problems_from_validation,
)
from ferry.keys import Principal
from ferry.settings import get_settings
from ferry.signing import signature, verify

#: How long an upload takes content (its signed URL's lifetime).
UPLOAD_MINUTES = 15
#: What the signed URL's client sends along (``headers`` of ``POST /v1/uploads``).
UPLOAD_HEADERS = {"Content-Type": "application/octet-stream"}
_ID = re.compile(r"[0-9a-f]{32}")
#: Unicode categories a file name may not contain: control, format (e.g. bidi overrides), surrogate, line/paragraph separators.
_UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
#: The largest file S3 takes in one POST (an HTML form upload).
S3_POST_MAX_BYTES = 5 * 1024**3
#: Bytes read from the bucket at a time when an upload is fetched.
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` is no safe file name (None when it is): one plain name, no folders, no ``..``, no control characters."""
    if "/" in name or "\\" in name:
        return "must be a file name without folders (no / or \\)"
    if ".." in name:
        return "may not contain '..'"
    if name.startswith("."):
        return "may not start with '.'"
    if any(unicodedata.category(ch) in _UNSAFE for ch in name):
        return "may not contain control or formatting characters"
    if name != name.strip():
        return "may not start or end with white space"
    if len(name.encode("utf-8")) > 255:
        return "must be at most 255 bytes (UTF-8)"
    return None


class UploadRequest(BaseModel):
    """``POST /v1/uploads``: the file to come. JSON names are camelCase (snake_case is accepted too)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    filename: str = Field(min_length=1, description="The file's name (its extension tells the parser the format), e.g. `contacts.csv`.")
    size_bytes: int = Field(ge=1, description="The file's exact size in bytes; at most FERRY_API_MAX_UPLOAD_BYTES.")

    @field_validator("filename")
    @classmethod
    def _safe(cls, value: str) -> str:
        if reason := unsafe_name_reason(value):
            raise PydanticCustomError("unsafe_filename", reason)
        return value


class Upload(BaseModel):
    """One upload's metadata, as its JSON file holds it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    upload_id: str
    workspace: str
    filename: str
    size_bytes: int
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None
    key_id: str
    key_name: str
    key_role: str
    workspace_id: int
    bucket_key: str | None = None
    """Key of the object in managed storage (relative to its folder) when the content is posted to the bucket."""
    bucket_location: str | None = None
    """``s3://bucket/name`` of that object: the bucket it was signed for."""

    @property
    def folder(self) -> Path:
        return _root() / self.workspace / self.upload_id

    @property
    def path(self) -> Path:
        """Where the file is (once complete)."""
        return self.folder / self.filename

    @property
    def meta_path(self) -> Path:
        return _root() / self.workspace / f"{self.upload_id}.json"

    def creator(self) -> Principal:
        """The key that created the upload (the signed URL acts for it: audit entries name it)."""
        return Principal(self.key_id, self.key_name, self.workspace, self.workspace_id, self.key_role)

    def to_json(self) -> dict:
        """What the API shows: never a path on this machine."""
        return {
            "uploadId": self.upload_id,
            "filename": self.filename,
            "sizeBytes": self.size_bytes,
            "status": "completed" if self.completed_at else "pending",
            "createdAt": self.created_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "completedAt": self.completed_at.isoformat() if self.completed_at else None,
        }


def _root() -> Path:
    return get_settings().data_dir.resolve() / "uploads"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def content_route(upload_id: str) -> str:
    """The API path that takes an upload's content (what its URL signs)."""
    return f"/v1/uploads/{upload_id}/content"


def max_upload_bytes() -> int:
    return get_settings().api_max_upload_bytes


def _too_large(size: int, limit: int, what: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is {size:,} bytes or more, over {what} ({limit:,} bytes).", "Nothing was kept; send a smaller file."
    )


def _not_found(upload_id: object) -> UploadNotFoundError:
    return UploadNotFoundError(f"No upload {upload_id} in this workspace.", "Create one with POST /v1/uploads.")


def _save(upload: Upload) -> None:
    """Write the metadata file whole or not at all (a temporary file renamed over it)."""
    temporary = upload.meta_path.with_name(f".{upload.upload_id}.{uuid.uuid4().hex}.json")
    temporary.write_text(upload.model_dump_json(by_alias=True, indent=2))
    os.replace(temporary, upload.meta_path)


def managed_bucket() -> Any | None:
    """The S3 destination that managed storage is (``FERRY_MANAGED_DESTINATION``), or None: uploads then come to the API."""
    settings = get_settings()
    if not settings.managed_destination or "/" not in settings.managed_destination:
        return None
    from blocks.registry import managed_storage
    from blocks.s3 import S3Destination

    inner = managed_storage(settings.exports_dir).inner()
    return inner if isinstance(inner, S3Destination) else None


def _bucket_key(workspace: str, upload_id: str, filename: str) -> str:
    # boto3 turns a key ending in ${filename} into a starts-with condition (any name the form sends): not for us.
    name = "content" if filename.endswith("${filename}") else filename
    return f"uploads/{workspace}/{upload_id}/{name}"


def create_upload(caller: Principal, body: dict, base_url: str) -> dict:
    """A new, empty upload of the caller's workspace, as its target: where and how to send the file before ``expiresAt``.

    ``{uploadId, method, url, headers, expiresAt, maxBytes}``: a signed ``PUT`` to the
    API at ``base_url``, or, when managed storage is an S3 bucket, a presigned S3
    ``POST`` whose form ``fields`` go with the file. Every problem with ``body`` at
    once (ParameterError), 413 over the limit.
    """
    try:
        wanted = UploadRequest.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body")) from None
    limit = max_upload_bytes()
    if wanted.size_bytes > limit:
        raise _too_large(wanted.size_bytes, limit, "the upload limit FERRY_API_MAX_UPLOAD_BYTES")
    bucket = managed_bucket()
    if bucket is not None and wanted.size_bytes > S3_POST_MAX_BYTES:
        raise _too_large(wanted.size_bytes, S3_POST_MAX_BYTES, "what S3 takes in one POST")
    created, upload_id = _now(), uuid.uuid4().hex
    key = _bucket_key(caller.workspace, upload_id, wanted.filename) if bucket is not None else None
    upload = Upload(
        upload_id=upload_id,
        workspace=caller.workspace,
        filename=wanted.filename,
        size_bytes=wanted.size_bytes,
        created_at=created,
        expires_at=created + timedelta(minutes=UPLOAD_MINUTES),
        key_id=caller.key_id,
        key_name=caller.name,
        key_role=caller.role,
        workspace_id=caller.workspace_id,
        bucket_key=key,
        bucket_location=bucket.location(key) if bucket is not None else None,
    )
    target = {"uploadId": upload.upload_id}
    if bucket is None:
        target |= {"method": "PUT", "url": signed_url(upload, base_url), "headers": UPLOAD_HEADERS}
    else:
        form = bucket.upload_form(key, upload.size_bytes, upload.expires_at - created)
        target |= {"method": "POST", "url": form["url"], "fields": form["fields"], "headers": {}}
    upload.folder.mkdir(parents=True, mode=0o700)
    _save(upload)
    remove_old_uploads()
    return target | {"expiresAt": upload.expires_at.isoformat(), "maxBytes": limit}


def remove_old_uploads(now: datetime | None = None) -> int:
    """Remove every upload created more than FERRY_UPLOAD_RETENTION_DAYS ago (file and metadata); how many went.

    Called whenever an upload is created, so the upload store stays bounded
    without a schedule of its own. The metadata goes last: an upload half
    removed is still found, and removed again next time.
    """
    cutoff = (now or _now()) - timedelta(days=get_settings().upload_retention_days)
    removed = 0
    for meta_path in _root().glob("*/*.json"):
        try:
            upload = Upload.model_validate_json(meta_path.read_text())
        except (OSError, ValidationError):
            continue  # being written, or not an upload's metadata: left alone
        if upload.created_at >= cutoff:
            continue
        shutil.rmtree(upload.folder, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
        removed += 1
    return removed


def signed_url(upload: Upload, base_url: str) -> str:
    """The upload's signed, expiring content URL on the API at ``base_url``."""
    route = content_route(upload.upload_id)
    expires = int(upload.expires_at.timestamp())
    return f"{base_url.rstrip('/')}{route}?expires={expires}&signature={signature(route, expires)}"


def read_upload(workspace: str, upload_id: str) -> Upload:
    """Upload ``upload_id`` of ``workspace``; UploadNotFoundError when there is none (or it is another workspace's)."""
    if not isinstance(upload_id, str) or not _ID.fullmatch(upload_id):
        raise _not_found(upload_id)
    try:
        upload = Upload.model_validate_json((_root() / workspace / f"{upload_id}.json").read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(upload_id) from None
    if upload.workspace != workspace or upload.upload_id != upload_id:
        raise _not_found(upload_id)
    return upload


def signed_upload(upload_id: str, expires: str, presented: str) -> Upload:
    """The upload a signed content URL names; PermissionDeniedError when the URL is altered or has expired."""
    try:
        when = int(expires)
    except ValueError:
        when = None
    if when is None or not _ID.fullmatch(upload_id) or not verify(content_route(upload_id), when, presented):
        raise PermissionDeniedError("This upload URL is invalid or has expired.", "Create a new upload: POST /v1/uploads.")
    found = sorted(_root().glob(f"*/{upload_id}.json"))
    if not found:
        raise _not_found(upload_id)
    return read_upload(found[0].parent.name, upload_id)


def current_upload(workspace: str, upload_id: str) -> Upload:
    """Upload ``upload_id`` of ``workspace`` as it is now: an S3 upload whose object has arrived is fetched first."""
    upload = read_upload(workspace, upload_id)
    if upload.completed_at is None and upload.bucket_key is not None:
        upload = _fetch_from_bucket(upload)
    return upload


def completed_upload(workspace: str, upload_id: str) -> Upload:
    """Upload ``upload_id`` of ``workspace`` once its content is complete (to preview, map, validate or import it)."""
    upload = current_upload(workspace, upload_id)
    if upload.completed_at is None:
        how = (
            "POST the file with the upload's form fields to its S3 url"
            if upload.bucket_key is not None
            else "PUT the file to the upload's URL"
        )
        raise UploadStateError(f"Upload {upload_id} has no content yet.", f"{how}, or POST it to /v1/uploads/{{id}}/content.")
    return upload


async def write_content(upload: Upload, chunks: AsyncIterator[bytes], announced_length: int | None = None) -> Upload:
    """Stream ``chunks`` into the upload's file, counting bytes; the completed upload.

    Refuses (removing what it wrote) more bytes than the upload announced or than
    FERRY_API_MAX_UPLOAD_BYTES (413), fewer than announced (400), and content for an
    upload that has its content already or has expired (409).
    """
    if upload.completed_at is not None:
        raise UploadStateError(f"Upload {upload.upload_id} has its content already.", "Create a new upload for another file.")
    if _now() > upload.expires_at:
        raise UploadStateError(f"Upload {upload.upload_id} expired at {upload.expires_at.isoformat()}.", "Create a new upload.")
    cap, what = _cap(upload)
    if announced_length is not None and announced_length > cap:
        raise _too_large(announced_length, cap, what)
    partial = upload.folder / f".partial-{uuid.uuid4().hex}"
    written = 0
    try:
        with open(partial, "xb") as file:
            async for chunk in chunks:
                written += len(chunk)
                if written > cap:
                    raise _too_large(written, cap, what)
                await anyio.to_thread.run_sync(file.write, chunk)
        _check_whole(written, upload, "The body")
        _publish(partial, upload)
    finally:
        partial.unlink(missing_ok=True)
    completed = upload.model_copy(update={"completed_at": _now()})
    _save(completed)
    return completed


def _cap(upload: Upload) -> tuple[int, str]:
    """The most bytes the upload takes, and what sets that limit."""
    limit = max_upload_bytes()
    if limit < upload.size_bytes:
        return limit, "the upload limit FERRY_API_MAX_UPLOAD_BYTES"
    return upload.size_bytes, "the announced sizeBytes"


def _check_whole(written: int, upload: Upload, what: str) -> None:
    if written < upload.size_bytes:
        raise MalformedRequestError(
            f"{what} has {written:,} bytes, fewer than the {upload.size_bytes:,} announced (sizeBytes).",
            "Nothing was kept; send the whole file.",
        )


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the upload's folder (across threads and processes of this machine)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fetch_from_bucket(upload: Upload) -> Upload:
    """The upload, completed from its object in the bucket once that exists; as it was while it does not."""
    bucket = managed_bucket()
    if bucket is None or bucket.location(upload.bucket_key) != upload.bucket_location:
        raise ConfigurationError(
            f"Upload {upload.upload_id} was posted to {upload.bucket_location}, which is no longer Ferry's managed storage.",
            "Restore FERRY_MANAGED_DESTINATION, or create a new upload.",
        )
    with _locked(upload.folder):
        upload = read_upload(upload.workspace, upload.upload_id)  # another request may have fetched it meanwhile
        if upload.completed_at is not None or not bucket.exists(upload.bucket_key):
            return upload
        cap, what = _cap(upload)
        partial = upload.folder / f".partial-{uuid.uuid4().hex}"
        written = 0
        try:
            with bucket.open_source(upload.bucket_key) as stream, open(partial, "xb") as file:
                while chunk := stream.read(_CHUNK):
                    written += len(chunk)
                    if written > cap:
                        raise _too_large(written, cap, what)
                    file.write(chunk)
            _check_whole(written, upload, "The file posted to the bucket")
            _publish(partial, upload)
        except (PayloadTooLargeError, MalformedRequestError):
            _delete_object(bucket, upload)  # refused as a PUT would be; the form may be posted again
            raise
        finally:
            partial.unlink(missing_ok=True)
        completed = upload.model_copy(update={"completed_at": _now()})
        _save(completed)
    _delete_object(bucket, completed)  # the file is here now, once
    _audit_fetch(completed)
    return completed


def _delete_object(bucket: Any, upload: Upload) -> None:
    try:
        bucket.delete_file(upload.bucket_key)
    except FerryError as exc:  # retention cleanup removes it later
        log.warning("Could not delete %s after fetching upload %s: %s", upload.bucket_location, upload.upload_id, exc.message)


def _audit_fetch(upload: Upload) -> None:
    """The audit entry of the content's arrival, as for a PUT (the key that created the upload is the actor)."""
    from deployments.service import record_api_call

    details = {"uploadId": upload.upload_id, "filename": upload.filename, "via": "s3-post", "status": 200}
    record_api_call(upload.creator(), "api.upload", None, None, None, details, upload.size_bytes)


def _publish(partial: Path, upload: Upload) -> None:
    """Give the whole file its name, once: claimed exclusively (a second writer is refused), then renamed over the claim."""
    try:
        os.close(os.open(upload.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise UploadStateError(f"Upload {upload.upload_id} has its content already.", "Create a new upload for another file.") from None
    try:
        os.replace(partial, upload.path)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
