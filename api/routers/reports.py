"""``/v1/reports``: the key's workspace's saved reports (named export definitions), and exporting one to any format.

The rules live in :mod:`ferry.reports`; this router translates. Viewers read,
operators (and admins) write; exporting a report is an export
(``exports.create``, admin). ``POST /v1/reports/{id}/export {format, ...}``
starts a run of ``export-data/default`` like ``POST /v1/exports`` (202 +
``Location``); with ``Prefer: respond=sync`` a small one (at most
``FERRY_API_SYNC_MAX_ROWS`` rows) answers with the file itself. Another
workspace's report is a 404, like one that does not exist.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask

from api.auth import require
from api.body import json_object
from api.idempotency import run_key
from api.ratelimit import STARTS_RUN
from api.routers.exports import MEDIA_TYPES
from api.schemas import RunStarted
from deployments.service import export_in_response, record_api_call, start_export
from ferry.errors import UnknownWorkspaceError
from ferry.keys import Principal
from ferry.params import ExportRequest
from ferry.reports import EXPORT_OPTIONS, Report, create_report, delete_report, get_report, list_reports, replace_report
from ferry.store.engine import get_engine

router = APIRouter(tags=["reports"])

_REPORT_SCHEMA = Report.model_json_schema(by_alias=True)
_EXPORT_SCHEMA = {
    "type": "object",
    "properties": {
        name: prop for name, prop in ExportRequest.model_json_schema(by_alias=True)["properties"].items() if name in EXPORT_OPTIONS
    },
}


def _body(schema: dict) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _mine(body: dict[str, Any], caller: Principal) -> dict[str, Any]:
    """The body, refused (404) when it names another workspace than the key's."""
    named = body.get("workspace")
    if named is not None and named != caller.workspace:
        raise UnknownWorkspaceError(
            f"No workspace {named!r} for this key.", "A key has only its own workspace's reports; omit `workspace`."
        )
    return body


def _audit(request: Request, caller: Principal, action: str, report: Report, run_id: str | None = None, **details: Any) -> None:
    client_ip = request.client.host if request.client else None
    details = {"reportId": report.id, "report": report.name, **details}
    record_api_call(caller, action, report.resource, run_id, client_ip, details, getattr(request.state, "payload_bytes", None))


@router.get("/reports", summary="The workspace's saved reports, by name")
def list_saved_reports(caller: Principal = require("reports.read")) -> JSONResponse:
    return JSONResponse({"reports": [r.to_json() for r in list_reports(get_engine(), caller.workspace)]})


@router.post("/reports", status_code=201, summary="Save a report (every problem at once)", openapi_extra=_body(_REPORT_SCHEMA))
def create_saved_report(
    request: Request, body: dict[str, Any] = Depends(json_object), caller: Principal = require("reports.write")
) -> JSONResponse:
    report = create_report(get_engine(), caller.workspace, _mine(body, caller))
    _audit(request, caller, "api.report.create", report, status=201)
    return JSONResponse(report.to_json(), status_code=201, headers={"Location": f"/v1/reports/{report.id}"})


@router.get("/reports/{report_id}", summary="One saved report")
def get_saved_report(report_id: str, caller: Principal = require("reports.read")) -> JSONResponse:
    return JSONResponse(get_report(get_engine(), caller.workspace, report_id).to_json())


@router.put("/reports/{report_id}", summary="Replace a saved report (send the whole definition)", openapi_extra=_body(_REPORT_SCHEMA))
def replace_saved_report(
    request: Request, report_id: str, body: dict[str, Any] = Depends(json_object), caller: Principal = require("reports.write")
) -> JSONResponse:
    report = replace_report(get_engine(), caller.workspace, report_id, _mine(body, caller))
    _audit(request, caller, "api.report.update", report, status=200)
    return JSONResponse(report.to_json())


@router.delete("/reports/{report_id}", status_code=204, summary="Delete a saved report")
def delete_saved_report(request: Request, report_id: str, caller: Principal = require("reports.write")) -> Response:
    report = delete_report(get_engine(), caller.workspace, report_id)
    _audit(request, caller, "api.report.delete", report, status=204)
    return Response(status_code=204)


def sync_wanted(prefer: str | None) -> bool:
    return bool(prefer) and "respond=sync" in prefer.replace(" ", "").lower()


@router.post(
    "/reports/{report_id}/export",
    status_code=202,
    summary="Export a saved report, in the format chosen now",
    openapi_extra=_body(_EXPORT_SCHEMA),
    dependencies=[STARTS_RUN],
    response_class=Response,
    responses={
        200: {
            "description": "`Prefer: respond=sync` and at most FERRY_API_SYNC_MAX_ROWS rows: the file itself.",
            "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()},
        },
        202: {"model": RunStarted, "description": "The run started; follow it at `Location`."},
    },
)
def export_saved_report(
    request: Request,
    report_id: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
    prefer: str | None = Header(default=None, alias="Prefer"),
):
    report = get_report(get_engine(), caller.workspace, report_id)
    export = report.export_request(caller.workspace, body, actor=f"api:{caller.key_id}")
    if sync_wanted(prefer):
        folder = Path(tempfile.mkdtemp(prefix="ferry-api-report-"))
        answered = export_in_response(export, folder)
        if answered is not None:
            record, path = answered
            _audit(request, caller, "api.export.sync", report, record.run_id, format=export.format, status=200)
            return FileResponse(
                path,
                filename=path.name,
                media_type=MEDIA_TYPES.get(export.format, "application/octet-stream"),
                headers={"Preference-Applied": "respond=sync", "X-Ferry-Run-Id": record.run_id},
                background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
            )
        shutil.rmtree(folder, ignore_errors=True)
    run_id = start_export(export, idempotency_key=run_key(caller, idempotency_key))
    _audit(request, caller, "api.export.start", report, run_id, format=export.format, status=202)
    links = {"self": f"/v1/runs/{run_id}", "download": f"/v1/runs/{run_id}/download", "report": f"/v1/reports/{report.id}"}
    return JSONResponse({"id": run_id, "status": "queued", "links": links}, status_code=202, headers={"Location": links["self"]})
