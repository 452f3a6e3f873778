"""``POST /v1/exports``: start an export of the key's workspace (a run of ``export-data/default``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from api.auth import require
from api.body import json_object, snake_keys
from deployments.service import record_api_call, start_export
from ferry.errors import UnknownWorkspaceError
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request

router = APIRouter(tags=["exports"])

#: ExportRequest names that are not camelCase conversions of a field name.
_ALIASES = ("from", "to", "schema")
_BODY_SCHEMA = ExportRequest.model_json_schema(by_alias=True)


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
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={202: {"description": "The run started; follow it at `Location`."}},
)
def create_export(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    export = export_request(body, caller)
    key = f"ferry-api:{caller.workspace}:{caller.key_id}:{idempotency_key}" if idempotency_key else None
    run_id = start_export(export, idempotency_key=key)
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
