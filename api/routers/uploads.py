"""``/v1/uploads``: a file to import, sent to the API itself through a signed URL (``PUT``) or with a key (``POST``), or to S3.

``POST /v1/uploads {filename, sizeBytes}`` answers with a signed, expiring URL
(15 minutes) like an S3 presigned PUT: the URL is the permission, no key. The
content is streamed to disk and counted as it arrives (``deployments.uploads``);
a multipart form (``-F file=@contacts.csv``) is parsed as a stream too, never
held in memory. When managed storage is an S3 bucket the answer is a presigned
S3 POST instead (``method: POST`` and form ``fields``, size fixed by the
policy): the file goes straight to the bucket, and ``deployments.uploads``
fetches it from there the first time the upload is looked at once it exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.body import json_object
from deployments.service import record_api_call
from deployments.uploads import (
    Upload,
    UploadRequest,
    create_upload,
    current_upload,
    max_upload_bytes,
    read_upload,
    signed_upload,
    write_content,
)
from ferry.errors import MalformedRequestError, ParameterError, PayloadTooLargeError, Problem
from ferry.keys import Principal

router = APIRouter(tags=["uploads"])

#: Bytes a multipart body may carry beyond its file (boundaries, part headers, small fields).
_FORM_OVERHEAD = 64 * 1024
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_CONTENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": _BINARY["schema"]}, "required": ["file"]}},
            "application/octet-stream": _BINARY,
        },
    }
}


@router.post(
    "/uploads",
    status_code=201,
    summary="Announce a file to import: a signed URL to PUT it to (or a presigned S3 POST)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": UploadRequest.model_json_schema(by_alias=True)}}}
    },
    responses={
        201: {
            "description": "`{uploadId, method, url, headers, expiresAt, maxBytes}`: PUT the file to `url` with `headers` before "
            "`expiresAt`; with `method: POST` (managed storage on S3), POST a multipart form of `fields` and then `file` to `url`."
        }
    },
)
def create(request: Request, body: dict = Depends(json_object), caller: Principal = require("imports.create")) -> JSONResponse:
    target = create_upload(caller, body, str(request.base_url))
    return JSONResponse(target, status_code=201, headers={"Location": f"/v1/uploads/{target['uploadId']}"})


@router.get("/uploads/{upload_id}", summary="One upload: name, size, status (pending or completed)")
def get_upload(upload_id: str, caller: Principal = require("imports.create")) -> JSONResponse:
    return JSONResponse(current_upload(caller.workspace, upload_id).to_json())


@router.put("/uploads/{upload_id}/content", summary="The file, through the upload's signed URL (no key)", openapi_extra=_CONTENT_BODY)
async def put_content(request: Request, upload_id: str, expires: str = Query(...), signature: str = Query(...)) -> JSONResponse:
    upload = await run_in_threadpool(signed_upload, upload_id, expires, signature)
    return await _receive(request, upload, upload.creator(), request.stream(), "signed-url")


@router.post(
    "/uploads/{upload_id}/content",
    summary="The file, as multipart form data (`file`) or the raw body, with a key",
    openapi_extra=_CONTENT_BODY,
)
async def post_content(request: Request, upload_id: str, caller: Principal = require("imports.create")) -> JSONResponse:
    upload = await run_in_threadpool(read_upload, caller.workspace, upload_id)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"multipart/form-data":
        return await _receive(request, upload, caller, _form_file(request, options, upload.size_bytes), "multipart")
    return await _receive(request, upload, caller, request.stream(), "body")


async def _receive(request: Request, upload: Upload, caller: Principal, chunks: AsyncIterator[bytes], via: str) -> JSONResponse:
    length = request.headers.get("content-length")
    announced = int(length) if length and length.isdigit() and via != "multipart" else None
    done = await write_content(upload, chunks, announced)
    client_ip = request.client.host if request.client else None
    details = {"uploadId": done.upload_id, "filename": done.filename, "via": via, "status": 200}
    await run_in_threadpool(record_api_call, caller, "api.upload", None, None, client_ip, details, done.size_bytes)
    return JSONResponse(done.to_json())


async def _form_file(request: Request, options: dict, size_bytes: int) -> AsyncIterator[bytes]:
    """The bytes of the form's ``file`` part as they arrive; other parts are skipped, the whole body is capped."""
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedRequestError("The multipart body has no boundary (Content-Type: multipart/form-data; boundary=...).")
    part = {"headers": [], "name": None, "field": b"", "value": b""}
    pending: list[bytes] = []
    seen: list[str] = []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        if part["field"].lower() == b"content-disposition":
            part["name"] = parse_options_header(part["value"])[1].get(b"name", b"").decode("utf-8", "replace")
        part["field"], part["value"] = b"", b""

    def on_headers_finished() -> None:
        seen.append(part["name"] or "")
        if seen.count("file") > 1 and part["name"] == "file":
            raise ParameterError([Problem("file", None, "send one file per upload")])

    def on_part_begin() -> None:
        part["name"] = None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part["name"] == "file":
            pending.append(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    }
    parser = MultipartParser(boundary, callbacks)
    total, cap = 0, min(size_bytes, max_upload_bytes()) + _FORM_OVERHEAD
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > cap:
                raise PayloadTooLargeError(f"The multipart body is over {cap:,} bytes.", "Nothing was kept; send a smaller file.")
            parser.write(chunk)
            ready, pending[:] = pending[:], []
            for data in ready:
                yield data
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedRequestError(f"The multipart body cannot be read: {exc}.") from None
    for data in pending:
        yield data
    if "file" not in seen:
        raise ParameterError([Problem("file", None, "a form part named `file` with the file's content is required")])
