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
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from ferry.errors import (
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


def create_upload(caller: Principal, body: dict) -> Upload:
    """A new, empty upload of the caller's workspace; every problem with ``body`` at once (ParameterError), 413 over the limit."""
    try:
        wanted = UploadRequest.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body")) from None
    limit = max_upload_bytes()
    if wanted.size_bytes > limit:
        raise _too_large(wanted.size_bytes, limit, "the upload limit FERRY_API_MAX_UPLOAD_BYTES")
    created = _now()
    upload = Upload(
        upload_id=uuid.uuid4().hex,
        workspace=caller.workspace,
        filename=wanted.filename,
        size_bytes=wanted.size_bytes,
        created_at=created,
        expires_at=created + timedelta(minutes=UPLOAD_MINUTES),
        key_id=caller.key_id,
        key_name=caller.name,
        key_role=caller.role,
        workspace_id=caller.workspace_id,
    )
    upload.folder.mkdir(parents=True, mode=0o700)
    _save(upload)
    return upload


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


def completed_upload(workspace: str, upload_id: str) -> Upload:
    """Upload ``upload_id`` of ``workspace`` once its content is complete (to preview, map, validate or import it)."""
    upload = read_upload(workspace, upload_id)
    if upload.completed_at is None:
        raise UploadStateError(
            f"Upload {upload_id} has no content yet.", "PUT the file to the upload's URL, or POST it to /v1/uploads/{id}/content."
        )
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
    limit = max_upload_bytes()
    cap, what = (
        (limit, "the upload limit FERRY_API_MAX_UPLOAD_BYTES")
        if limit < upload.size_bytes
        else (upload.size_bytes, "the announced sizeBytes")
    )
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
        if written < upload.size_bytes:
            raise MalformedRequestError(
                f"The body has {written:,} bytes, fewer than the {upload.size_bytes:,} announced (sizeBytes).",
                "Nothing was kept; send the whole file.",
            )
        _publish(partial, upload)
    finally:
        partial.unlink(missing_ok=True)
    completed = upload.model_copy(update={"completed_at": _now()})
    _save(completed)
    return completed


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
