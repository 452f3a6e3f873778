"""Coherence's exports: a module's records or a saved report's, as CSV or PDF, in the response or as an export job."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from api.auth import require
from api.body import json_object
from api.compat.base import client_ip
from api.compat.coherence.common import STARTED, ferry_key, module_of, not_found, ok, parsed, renamed, router, when
from api.idempotency import run_key
from api.ratelimit import STARTS_RUN
from deployments.job_facts import JobFacts, list_jobs, read_job
from deployments.service import export_in_response, fresh_download_link, record_api_call, start_export
from ferry.catalog import Resource
from ferry.columns import output_columns
from ferry.errors import FerryError, ParameterError, Problem, ReportNotFoundError, RunNotFoundError
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request
from ferry.reports import get_report
from ferry.roles import allows
from ferry.store.engine import get_engine

MAX_LIMIT = 100_000
FILE_HOURS = 24
CONTENT_TYPES = {"csv": "text/csv", "pdf": "application/pdf"}
_FILE = {"type": "string", "format": "binary"}
#: The file in the response (up to 10,000 records), or an export job (202).
ANSWERS = {
    200: {"description": "The file itself.", "content": {"text/csv": {"schema": _FILE}, "application/pdf": {"schema": _FILE}}},
    **STARTED,
}
#: The file's name in the response (the seed's ``contacts-export-2024-01-15.csv``); an export job's also has its run id.
SYNC_FILENAME = "{resource}-export-{date}.{format}"
JOB_FILENAME = "{resource}-export-{date}-{run_id}.{format}"
#: "name, owner, dates": the module's columns of these, where it has them.
DEFAULT_COLUMNS = ("full_name", "name", "owner", "created_at", "updated_at")
_STATUS = {"queued": "pending", "running": "processing", "succeeded": "completed", "failed": "failed", "cancelled": "failed"}
#: moment.js tokens -> strftime, longest first (``dateFormat: "YYYY-MM-DD"``).
_MOMENT = [("YYYY", "%Y"), ("YY", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("DD", "%d"), ("dddd", "%A"), ("ddd", "%a")]
_MOMENT += [("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("A", "%p")]
_CONFIG_NAMES = {
    "fields": "config.columns",
    "labels": "config.columnLabels",
    "header": "config.includeHeaders",
    "date_format": "config.dateFormat",
    "sort.field": "config.sortField",
    "sort": "config.sortField",
    "limit": "config.limit",
    "title": "config.title",
    "description": "config.description",
}


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    columns: list[str] | None = Field(default=None, description="Fields to include (default: name, owner, dates).")
    column_labels: dict[str, str] = Field(default_factory=dict, alias="columnLabels", description="Custom header labels.")
    include_headers: bool = Field(default=True, alias="includeHeaders", description="Include the header row (CSV).")
    date_format: str | None = Field(default=None, alias="dateFormat", description="moment.js (`YYYY-MM-DD`, `L`) or strftime.")
    title: str | None = Field(default=None, description="PDF title.")
    description: str | None = Field(default=None, description="PDF description.")
    sort_field: str | None = Field(default=None, alias="sortField")
    sort_direction: Literal["asc", "desc"] = Field(default="asc", alias="sortDirection")
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="Maximum records (up to 100,000).")


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "pdf"]
    config: ExportConfig = Field(default_factory=ExportConfig)


def date_format(value: str | None) -> str:
    """Coherence's date format as Ferry's: ``iso``, moment.js ``L``/``LL``/``LLL``, strftime, or moment tokens turned into strftime."""
    if value is None or value.lower() == "iso":
        return "iso"
    if value in ("L", "LL", "LLL") or "%" in value:
        return value
    pattern = "(" + "|".join(re.escape(token) for token, _ in _MOMENT) + ")"
    return re.sub(pattern, lambda m: dict(_MOMENT)[m.group(1)], value)


def _options(config: ExportConfig, format: str) -> dict[str, Any]:
    options: dict[str, Any] = {"format": format, "date_format": date_format(config.date_format)}
    if format == "csv":
        options["header"] = config.include_headers  # a PDF table always has its header row
    for name in ("title", "description", "limit"):
        if getattr(config, name) is not None:
            options[name] = getattr(config, name)
    return options


def _labels(resource: Resource, request: ExportRequest, given: dict[str, str]) -> dict[str, str]:
    """Catalog labels for every exported column, with ``columnLabels`` (Coherence slugs) over them."""
    columns = output_columns(request)
    labels = {c.key: c.source.label if c.source is not None else c.label for c in columns}
    for slug, label in given.items():
        key = ferry_key(resource, slug)
        named = [c for c in columns if c.key == key or c.key.split(".", 1)[0] == key]
        for c in named:
            labels[c.key] = label if len(named) == 1 else f"{label} ({c.key.split('.', 1)[1]})"
        if not named:
            labels[key] = label  # the export refuses it, naming it
    return labels


def module_request(resource: Resource, body: ExportBody, caller: Principal) -> ExportRequest:
    """The export a module export is; every problem at once, named as the body names it (``config.columns[1]``)."""
    config = body.config
    if config.columns is not None:
        fields = [ferry_key(resource, c) for c in config.columns]
    else:
        fields = [c for c in DEFAULT_COLUMNS if resource.has_field(c)] or None
    data: dict[str, Any] = {
        "workspace": caller.workspace,
        "resource": resource.slug,
        "fields": fields,
        "actor": f"api:{caller.key_id}",
        **_options(config, body.format),
    }
    if config.sort_field:
        data["sort"] = {"field": ferry_key(resource, config.sort_field), "direction": config.sort_direction}
    try:
        request = parse_request(data)
        return parse_request(request.model_copy(update={"labels": _labels(resource, request, config.column_labels)}))
    except ParameterError as exc:
        raise ParameterError(renamed(exc.problems, _CONFIG_NAMES)) from None


def _answer(request: Request, caller: Principal, export: ExportRequest, source: tuple[str, str], idempotency_key: str | None):
    """The file itself when it has at most FERRY_API_SYNC_MAX_ROWS (10,000) rows; else an export job (202)."""
    details = {"adapter": "coherence", "sourceType": source[0], "sourceId": source[1], "format": export.format}
    folder = Path(tempfile.mkdtemp(prefix="ferry-coherence-export-"))
    answered = export_in_response(export.model_copy(update={"filename": SYNC_FILENAME}), folder)
    if answered is not None:
        record, path = answered
        record_api_call(
            caller,
            "api.export.sync",
            export.resource_def.slug,
            record.run_id,
            client_ip(request),
            details | {"status": 200},
            record.file_size,
        )
        return FileResponse(
            path,
            filename=path.name,
            media_type=CONTENT_TYPES[export.format],
            headers={"X-Ferry-Run-Id": record.run_id},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )
    shutil.rmtree(folder, ignore_errors=True)
    run_id = start_export(export.model_copy(update={"filename": JOB_FILENAME}), idempotency_key=run_key(caller, idempotency_key))
    record_api_call(caller, "api.export.start", export.resource_def.slug, run_id, client_ip(request), details | {"status": 202}, None)
    job = export_job(read_job(run_id, caller.workspace, "export"), request, caller)
    return ok(job, status=202, headers={"Location": f"/compat/coherence/v1/export-jobs/{run_id}"})


@router.post(
    "/v1/modules/{module}/export", summary="Export module records", dependencies=[STARTS_RUN], response_class=Response, responses=ANSWERS
)
def export_module(
    request: Request,
    module: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
):
    resource = module_of(module)
    export = module_request(resource, parsed(ExportBody, body), caller)
    return _answer(request, caller, export, ("module", resource.slug), idempotency_key)


@router.post(
    "/v1/reports/{report_id}/export", summary="Export report results", dependencies=[STARTS_RUN], response_class=Response, responses=ANSWERS
)
def export_report(
    request: Request,
    report_id: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
):
    try:
        report = get_report(get_engine(), caller.workspace, report_id)
    except ReportNotFoundError:
        raise not_found("Report not found") from None
    wanted: ExportBody = parsed(ExportBody, body)
    config = wanted.config
    own = [("columns", config.columns), ("columnLabels", config.column_labels or None), ("sortField", config.sort_field)]
    problems = [Problem(f"config.{name}", value, "a saved report's columns, labels and sort are its own") for name, value in own if value]
    try:
        export = report.export_request(caller.workspace, _options(config, wanted.format), actor=f"api:{caller.key_id}")
    except ParameterError as exc:
        problems += renamed(exc.problems, _CONFIG_NAMES)
    if problems:
        raise ParameterError(problems)
    return _answer(request, caller, export, ("report", report.id), idempotency_key)


# --- export jobs ----------------------------------------------------------------------------------


def export_job(facts: JobFacts, request: Request, caller: Principal) -> dict[str, Any]:
    """The seed's export job: its file's URL (admins) for 24 hours after completion."""
    view, details = facts.view, facts.details
    export_format = view.request.get("format", "csv")
    done = view.status == "succeeded"
    expires = view.completed_at + timedelta(hours=FILE_HOURS) if done and view.completed_at else None
    url = None
    if done and expires and datetime.now(UTC) < expires and allows(caller.role, "runs.download"):
        try:
            url = fresh_download_link(view.id, base_url=str(request.base_url)).url
        except FerryError:  # storage that cannot sign URLs, or the file is gone: shown without one
            pass
    return {
        "exportJobId": view.id,
        "accountId": caller.workspace,
        "sourceId": details.get("sourceId") or view.resource,
        "sourceType": details.get("sourceType") or "module",
        "format": export_format,
        "status": _STATUS[view.status],
        "progress": view.progress,
        "fileName": Path(view.destination_path).name if view.destination_path else None,
        "fileUrl": url,
        "fileSizeBytes": view.file_size if done else None,
        "contentType": CONTENT_TYPES.get(export_format, "application/octet-stream"),
        "requestedDateTime": when(facts.created_at),
        "completedDateTime": when(view.completed_at) if view.status in ("succeeded", "failed", "cancelled") else None,
        "expiresDateTime": when(expires),
    }


def _not_answered_inline(facts: JobFacts) -> bool:
    return facts.action != "api.export.sync"  # a file sent in its response is no job: nothing is kept to fetch


@router.get("/v1/export-jobs", summary="List export jobs")
def list_export_jobs(request: Request, limit: int = Query(default=50, ge=1, le=100), caller: Principal = require("runs.read")):
    jobs = list_jobs(caller.workspace, "export", limit, keep=_not_answered_inline)
    return JSONResponse({"success": True, "jobs": [export_job(f, request, caller) for f in jobs]})


@router.get("/v1/export-jobs/{export_job_id}", summary="Get export job status")
def get_export_job(request: Request, export_job_id: str, caller: Principal = require("runs.read")) -> JSONResponse:
    try:
        facts = read_job(export_job_id, caller.workspace, "export")
    except RunNotFoundError:
        raise not_found("Export job not found") from None
    return ok(export_job(facts, request, caller))
