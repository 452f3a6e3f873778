"""``POST /v1/exports``: start an export of the key's workspace (a run of ``export-data/default``).

With ``Prefer: respond=sync`` a small export (at most ``FERRY_API_SYNC_MAX_ROWS``
rows) answers with the file itself, through the same flow, run by the API
process; a larger one is started as a run as usual (no ``Preference-Applied``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from api.auth import require
from api.body import json_object, snake_keys
from api.idempotency import run_key
from api.ratelimit import STARTS_RUN
from api.schemas import RunStarted
from deployments.service import export_in_response, record_api_call, start_export
from ferry.errors import UnknownWorkspaceError
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request

router = APIRouter(tags=["exports"])

#: ExportRequest names that are not camelCase conversions of a field name.
_ALIASES = ("from", "to", "schema")
_BODY_SCHEMA = ExportRequest.model_json_schema(by_alias=True)
MEDIA_TYPES = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "xml": "application/xml",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def export_request(body: dict[str, Any], caller: Principal) -> ExportRequest:
    """The body as an ExportRequest of the caller's workspace; every problem at once (422)."""
    data = snake_keys(body, keep=_ALIASES)
    named = data.pop("workspace", None)
    if named is not None and named != caller.workspace:
        raise UnknownWorkspaceError(f"No workspace {named!r} for this key.", "A key exports only its own workspace; omit `workspace`.")
    return parse_request({**data, "workspace": caller.workspace, "actor": f"api:{caller.key_id}"})


@router.post(
    "/exports",
    status_code=202,
    summary="Start an export",
    dependencies=[STARTS_RUN],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={
        200: {"description": "`Prefer: respond=sync` and at most FERRY_API_SYNC_MAX_ROWS rows: the file itself."},
        202: {"model": RunStarted, "description": "The run started; follow it at `Location`."},
    },
)
def create_export(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
    prefer: str | None = Header(default=None, alias="Prefer"),
):
    export = export_request(body, caller)
    client_ip = request.client.host if request.client else None
    if prefer and "respond=sync" in prefer.replace(" ", "").lower():
        folder = Path(tempfile.mkdtemp(prefix="ferry-api-export-"))
        answered = export_in_response(export, folder)
        if answered is not None:
            record, path = answered
            record_api_call(
                caller,
                "api.export.sync",
                export.resource_def.slug,
                record.run_id,
                client_ip,
                {"filters": [f.model_dump(mode="json") for f in export.filters], "format": export.format, "status": 200},
                record.file_size,
            )
            headers = {"Preference-Applied": "respond=sync", "X-Ferry-Run-Id": record.run_id}
            return FileResponse(
                path,
                filename=path.name,
                media_type=MEDIA_TYPES.get(export.format, "application/octet-stream"),
                headers=headers,
                background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
            )
        shutil.rmtree(folder, ignore_errors=True)
    run_id = start_export(export, idempotency_key=run_key(caller, idempotency_key))
    record_api_call(
        caller,
        "api.export.start",
        export.resource_def.slug,
        run_id,
        request.client.host if request.client else None,
        {"filters": [f.model_dump(mode="json") for f in export.filters], "format": export.format, "status": 202},
        getattr(request.state, "payload_bytes", None),
    )
    links = {"self": f"/v1/runs/{run_id}", "download": f"/v1/runs/{run_id}/download"}
    return JSONResponse({"id": run_id, "status": "queued", "links": links}, status_code=202, headers={"Location": links["self"]})
