"""``/compat/sendora``: Sendora's data-io (export, jobs, download, import) over the native service.

Follows ``shared/seeds/000``: ``POST /api/v1/orgs/{org}/data-io/export``
``{resource, format, filters: {from, to, ...}}`` answers ``{jobId}``; ``GET
.../data-io/jobs/{jobId}`` answers ``{status, progress, downloadUrl?}`` with
``status`` flipping to ``completed`` and ``downloadUrl`` a 30-minute signed URL;
``GET .../jobs/{jobId}/download`` re-issues it. ``POST .../data-io/import``
``{resource, format, sourceUrl}`` (or an upload) imports CSV or JSONL with a
per-field column mapping, ``skipDuplicates`` and ``dryRun``. ``x-api-key``;
``{org}`` is the key's workspace (any other org is a 404); ADMIN-gated
(every endpoint needs an admin key) and audit-logged (actor, payload size,
filters).

Where the document is silent, Ferry chose:

* Export resources: ``events``, ``profiles`` (contacts), ``analytics``,
  ``survey_responses``, ``audiences`` (segments) and ``workflows``; ``format``
  ``csv`` (default) or ``json``. ``filters.from`` / ``filters.to`` bound the
  resource's time column (a date includes that whole day); every other key of
  ``filters`` is an equality filter on that field (a list: any of the values).
* Import resources: ``profiles``, ``contacts`` (the same store) and ``events``;
  ``format`` ``csv`` or ``jsonl`` must match the upload's file name (a
  ``sourceUrl`` is read as what it is). ``mapping`` is ``{sourceColumn:
  field}`` (``null`` ignores a column); without one the mapping is suggested
  from the file. ``skipDuplicates`` (default true) skips rows that match a
  stored record; false updates them. The signed-URL upload route is ``POST
  .../data-io/uploads {filename, sizeBytes}`` (the native upload target: PUT
  the file to ``url``), then ``import`` with ``uploadId`` instead of ``sourceUrl``.
* ``export`` and ``import`` answer 202 ``{jobId}``. A job is ``{jobId, type
  (export|import), resource, status (queued, running, completed, failed,
  cancelled), progress (0-100), recordCount, error}`` plus, for an import,
  ``createdRows`` and ``updatedRows``, and for a completed export
  ``downloadUrl`` and ``downloadUrlExpiresAt``. ``.../download`` answers
  ``{downloadUrl, expiresAt}``.
* Errors: ``{"error": {"code", "message", "details"}}``, ``code`` one of
  ``bad_request``, ``unauthorized``, ``forbidden``, ``not_found``, ``conflict``,
  ``payload_too_large``, ``unsupported_media_type``, ``validation_error``,
  ``rate_limited``, ``unavailable``; ``details`` lists every problem at once
  (``[{field, value, reason}]``).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import require
from api.body import json_object
from api.compat.base import client_ip, vendor_router
from api.idempotency import run_key
from api.problems import Failure
from api.ratelimit import STARTS_RUN
from api.routers.imports import IMPORT_OPTIONS, import_request
from deployments.run_views import RunView, read_run_view
from deployments.service import fresh_download_link, record_api_call, start_export, start_import
from deployments.uploads import create_upload
from ferry.errors import (
    FerryError,
    ParameterError,
    Problem,
    RunNotFoundError,
    RunStateError,
    UnknownWorkspaceError,
    problems_from_validation,
)
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request

DOWNLOAD_MINUTES = 30
EXPORT_RESOURCES = {
    "events": "events",
    "profiles": "contacts",
    "analytics": "analytics",
    "survey_responses": "survey_responses",
    "audiences": "segments",
    "workflows": "workflows",
}
IMPORT_RESOURCES = {"profiles": "contacts", "contacts": "contacts", "events": "events"}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}
_STATUS = {"queued": "queued", "running": "running", "succeeded": "completed", "failed": "failed", "cancelled": "cancelled"}
_EXPORT_FIELDS = {"from": "filters.from", "to": "filters.to", "resource": "resource", "format": "format"}


class SendoraError(BaseModel):
    error: dict[str, Any] = Field(description="`{code, message, details: [{field, value, reason}]}`.")


def render(request: Request, failure: Failure) -> JSONResponse:
    code = _CODES.get(failure.status, "unavailable" if failure.status >= 500 else "error")
    body = {"error": {"code": code, "message": failure.detail, "details": failure.errors or []}}
    return JSONResponse(body, status_code=failure.status, headers=failure.headers)


router = vendor_router(render, SendoraError, "compat: sendora")
ORG = "/api/v1/orgs/{org}/data-io"


def _own(org: str, caller: Principal) -> None:
    """``{org}`` must be the key's workspace; another is a 404, as if it did not exist."""
    if org != caller.workspace:
        raise UnknownWorkspaceError(f"No org {org!r} for this key.", "Use the org (workspace) the API key belongs to.")


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: Literal["events", "profiles", "analytics", "survey_responses", "audiences", "workflows"]
    format: Literal["csv", "json"] = "csv"
    filters: dict[str, Any] = Field(default_factory=dict, description="`from`, `to`, and field equality filters.")

    def to_request(self, caller: Principal) -> ExportRequest:
        filters = dict(self.filters)
        window = {"from": filters.pop("from", None), "to": filters.pop("to", None)}
        field_filters = [
            {"field": name, "op": "in" if isinstance(value, list) else "eq", "value": value} for name, value in filters.items()
        ]
        data = {
            "workspace": caller.workspace,
            "resource": EXPORT_RESOURCES[self.resource],
            "format": self.format,
            "filters": field_filters,
            "actor": f"api:{caller.key_id}",
            **{k: v for k, v in window.items() if v is not None},
        }
        try:
            return parse_request(data)
        except ParameterError as exc:
            raise ParameterError(_each_field_once([_export_problem(p, filters) for p in exc.problems])) from None


def _export_problem(problem: Problem, filters: dict[str, Any]) -> Problem:
    """A problem named as the body names it: ``filters.from``, ``filters.<field>``."""
    head, index = re.match(r"([A-Za-z_]*)(?:\[(\d+)\])?", problem.field).groups()
    if head == "filters" and index is not None:
        names = list(filters)
        return Problem(f"filters.{names[int(index)]}" if int(index) < len(names) else "filters", problem.value, problem.reason)
    return Problem(_EXPORT_FIELDS.get(head, head), problem.value, problem.reason)


def _each_field_once(problems: list[Problem]) -> list[Problem]:
    """One problem per field and value (a date-or-datetime field fails both ways; one reason is enough)."""
    return list({(p.field, repr(p.value)): p for p in reversed(problems)}.values())[::-1]


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resource: Literal["profiles", "events", "contacts"]
    format: Literal["csv", "jsonl"]
    source_url: str | None = Field(default=None, alias="sourceUrl")
    upload_id: str | None = Field(default=None, alias="uploadId")
    mapping: dict[str, str | None] | None = Field(default=None, description="`{sourceColumn: field}`; omitted: suggested.")
    skip_duplicates: bool = Field(default=True, alias="skipDuplicates")
    dry_run: bool = Field(default=False, alias="dryRun")

    def native(self) -> dict[str, Any]:
        """The body of the native ``POST /v1/imports``."""
        body: dict[str, Any] = {
            "resource": IMPORT_RESOURCES[self.resource],
            "duplicateStrategy": "skip" if self.skip_duplicates else "update",
            "dryRun": self.dry_run,
            "maxErrorRate": 1,  # Sendora's jobs complete and count their failed rows; they never fail for them
        }
        if self.mapping is None:
            body["autoMap"] = True
        else:
            body["mapping"] = [{"sourceColumn": column, "targetFieldSlug": field} for column, field in self.mapping.items()]
        body |= {"sourceUrl": self.source_url} if self.source_url is not None else {"uploadId": self.upload_id}
        return body


def _parsed(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors())) from None


@router.post(f"{ORG}/export", status_code=202, summary="Kick off an export (async; poll the job)", dependencies=[STARTS_RUN])
def create_export(
    request: Request,
    org: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    _own(org, caller)
    wanted: ExportBody = _parsed(ExportBody, body)
    export = wanted.to_request(caller)
    run_id = start_export(export, idempotency_key=run_key(caller, idempotency_key))
    details = {"adapter": "sendora", "filters": wanted.filters, "format": wanted.format, "status": 202}
    record_api_call(caller, "api.export.start", export.resource_def.slug, run_id, client_ip(request), details, request.state.payload_bytes)
    return JSONResponse({"jobId": run_id}, status_code=202, headers={"Location": f"{ORG.format(org=org)}/jobs/{run_id}"})


def job_json(view: RunView, link=None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "jobId": view.id,
        "type": view.kind,
        "resource": view.resource,
        "status": _STATUS[view.status],
        "progress": view.progress,
        "recordCount": view.record_count,
        "error": view.error,
    }
    if view.kind == "import":
        job |= {"createdRows": view.created_rows, "updatedRows": view.updated_rows}
    if link is not None:
        job |= {"downloadUrl": link.url, "downloadUrlExpiresAt": link.expires_at.isoformat()}
    return job


def _job(org: str, job_id: str, caller: Principal) -> RunView:
    _own(org, caller)
    view = read_run_view(job_id, caller.workspace)
    if view.kind not in ("export", "import"):
        raise RunNotFoundError(f"No job {job_id} in this org.", "Jobs are the org's exports and imports.")
    return view


@router.get(f"{ORG}/jobs/{{job_id}}", summary="Poll a job: status, progress, and a 30-minute downloadUrl once completed")
def get_job(request: Request, org: str, job_id: str, caller: Principal = require("runs.download")) -> JSONResponse:
    view = _job(org, job_id, caller)
    link = None
    if view.kind == "export" and view.status == "succeeded":
        try:
            link = fresh_download_link(view.id, base_url=str(request.base_url), expires_minutes=DOWNLOAD_MINUTES)
        except FerryError:  # storage that cannot sign URLs, or the file is gone: the job is shown without one
            pass
    return JSONResponse(job_json(view, link))


@router.get(f"{ORG}/jobs/{{job_id}}/download", summary="Re-issue a completed export's 30-minute signed download URL")
def download(request: Request, org: str, job_id: str, caller: Principal = require("runs.download")) -> JSONResponse:
    view = _job(org, job_id, caller)
    if view.kind != "export" or view.status != "succeeded":
        raise RunStateError(f"Job {job_id} is not a completed export ({view.kind}, {_STATUS[view.status]}).", "Poll the job first.")
    link = fresh_download_link(view.id, base_url=str(request.base_url), expires_minutes=DOWNLOAD_MINUTES)
    details = {"adapter": "sendora", "location": link.location, "status": 200}
    record_api_call(caller, "api.export.download", view.resource, view.id, client_ip(request), details, view.file_size)
    return JSONResponse({"downloadUrl": link.url, "expiresAt": link.expires_at.isoformat()})


@router.post(f"{ORG}/uploads", status_code=201, summary="A signed URL to upload a CSV or JSONL file to, for an import")
def create_upload_target(
    request: Request, org: str, body: dict[str, Any] = Depends(json_object), caller: Principal = require("imports.create")
) -> JSONResponse:
    _own(org, caller)
    return JSONResponse(create_upload(caller, body, str(request.base_url)), status_code=201)


@router.post(f"{ORG}/import", status_code=202, summary="Bulk import a CSV or JSONL file (sourceUrl or uploadId)", dependencies=[STARTS_RUN])
def create_import(
    request: Request,
    org: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("imports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    _own(org, caller)
    wanted: ImportBody = _parsed(ImportBody, body)
    if (wanted.source_url is None) == (wanted.upload_id is None):
        raise ParameterError(
            [Problem("sourceUrl", wanted.source_url, "give sourceUrl or uploadId (from .../data-io/uploads), one of them")]
        )
    native, upload = import_request(wanted.native(), caller, IMPORT_OPTIONS, source_url=True)
    if upload is not None and PurePosixPath(upload.filename).suffix.lower().lstrip(".") != wanted.format:
        raise ParameterError([Problem("format", wanted.format, f"the upload is {upload.filename!r}; send its own format")])
    run_id = start_import(native, idempotency_key=run_key(caller, idempotency_key))
    details = {"adapter": "sendora", "format": wanted.format, "dryRun": wanted.dry_run, "status": 202}
    size = upload.size_bytes if upload else request.state.payload_bytes
    record_api_call(caller, "api.import.start", native.resource_def.slug, run_id, client_ip(request), details, size)
    return JSONResponse({"jobId": run_id}, status_code=202, headers={"Location": f"{ORG.format(org=org)}/jobs/{run_id}"})
