"""``/compat/connectif``: Connectif's bulk exports (``POST /exports/``, ``GET /exports/{id}``) over the native service.

Follows ``shared/seeds/004`` field for field: an ExportCreation of ``dateFormat``
(ISO, L, LL, LLL), ``delimiter`` (``,`` or ``;``), ``exportType`` (contacts,
activities), ``filters`` (``activityTypes``, ``fromDate``, ``toDate``, ``segmentId``)
and ``version`` (v1 unless given) starts a run of ``export-data/default`` and
answers 201 with the Export resource. Its rules: ``activityTypes``, ``fromDate``
and ``toDate`` only for activities, where both dates are required and at most 31
days apart; ``segmentId`` (a segment's audience key) for both. Its statuses: 400
invalid JSON, 401, 403, 415 without ``application/json``, 422 with every
validation error at once, 429.

Where the document is silent, Ferry chose:

* Auth: ``Authorization: apiKey KEY`` (Connectif's scheme) or any native form.
  Creating an export is admin-only (as natively); reading one needs a viewer key,
  and its ``downloadUrl`` an admin key.
* ``activities`` are Ferry's ``events``: ``activityTypes`` keeps those event types.
* ``version``: ``v1`` heads the CSV with field keys (``email``, ``first_name``,
  ``occurred_at``); ``v2`` with the catalog's labels (``Email``, ``First name``,
  ``Occurred at``). The rows are the same.
* The Export resource: ``id`` (the Prefect run id), ``status`` (``pending``,
  ``inProgress``, ``finished``, ``error``), the request's own properties echoed,
  ``createdAt``, ``finishedAt``, ``recordCount``, ``fileSize``, ``error``, and
  ``downloadUrl`` (a fresh signed URL on every GET of a finished export).
* Errors (HttpError): ``{"statusCode", "message"}``; a 422
  (HttpUnprocessableEntityError) adds ``errors: [{"field", "value", "message"}]``,
  with fields as Connectif names them (``filters.fromDate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
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
from deployments.run_views import RunView, read_run_view
from deployments.service import fresh_download_link, record_api_call, start_export
from ferry.catalog import get_resource
from ferry.errors import FerryError, ParameterError, Problem, RunNotFoundError, problems_from_validation
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request
from ferry.roles import allows

MAX_SPAN = timedelta(days=31)
#: Ferry's export parameter names as Connectif names them (for errors).
_VENDOR_FIELDS = {"from": "filters.fromDate", "to": "filters.toDate", "segment": "filters.segmentId"}
_VENDOR_FIELDS |= {"activity_types": "filters.activityTypes", "date_format": "dateFormat", "resource": "exportType"}
_STATUS = {"queued": "pending", "running": "inProgress", "succeeded": "finished", "failed": "error", "cancelled": "error"}


class HttpError(BaseModel):
    status_code: int = Field(alias="statusCode")
    message: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="422 only: every validation error.")


def render(request: Request, failure: Failure) -> JSONResponse:
    body: dict[str, Any] = {"statusCode": failure.status, "message": failure.detail}
    if failure.errors is not None:
        body["errors"] = [{"field": e["field"], "value": e["value"], "message": e["reason"]} for e in failure.errors]
    return JSONResponse(body, status_code=failure.status, headers=failure.headers)


router = vendor_router(render, HttpError, "compat: connectif")


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    activity_types: list[str] | None = Field(default=None, alias="activityTypes")
    from_date: datetime | None = Field(default=None, alias="fromDate")
    to_date: datetime | None = Field(default=None, alias="toDate")
    segment_id: str | None = Field(default=None, alias="segmentId", min_length=1)


class ExportCreation(BaseModel):
    """Connectif's ExportCreation resource."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_format: Literal["ISO", "L", "LL", "LLL"] = Field(alias="dateFormat")
    delimiter: Literal[",", ";"]
    export_type: Literal["contacts", "activities"] = Field(alias="exportType")
    filters: ExportFilters = Field(default_factory=ExportFilters)
    version: Literal["v1", "v2"] = "v1"

    def rule_problems(self) -> list[Problem]:
        """Connectif's rules between properties, every broken one."""
        f, problems = self.filters, []
        if self.export_type == "contacts":
            for name, value in (("activityTypes", f.activity_types), ("fromDate", f.from_date), ("toDate", f.to_date)):
                if value is not None:
                    problems.append(Problem(f"filters.{name}", _shown(value), 'can be set only for the "activities" export type'))
            return problems
        for name, value in (("fromDate", f.from_date), ("toDate", f.to_date)):
            if value is None:
                problems.append(Problem(f"filters.{name}", None, 'is required for the "activities" export type (ISO 8601 date-time)'))
        if f.from_date and f.to_date:
            if f.to_date < f.from_date:
                problems.append(Problem("filters.toDate", f.to_date.isoformat(), "must not be before filters.fromDate"))
            elif f.to_date - f.from_date > MAX_SPAN:
                problems.append(Problem("filters.toDate", f.to_date.isoformat(), "must be at most 31 days after filters.fromDate"))
        return problems

    def to_request(self, caller: Principal) -> ExportRequest:
        resource = "events" if self.export_type == "activities" else "contacts"
        f = self.filters
        data: dict[str, Any] = {
            "workspace": caller.workspace,
            "resource": resource,
            "format": "csv",
            "delimiter": self.delimiter,
            "date_format": "iso" if self.date_format == "ISO" else self.date_format,
            "actor": f"api:{caller.key_id}",
            "segment": f.segment_id,
            "activity_types": f.activity_types or [],
            "from": f.from_date,
            "to": f.to_date,
        }
        if self.version == "v2":
            data["labels"] = {c.key: c.label for c in get_resource(resource).columns()}
        return parse_request(data)


@contextmanager
def connectif_names() -> Iterator[None]:
    """Problems of Ferry's export parameters, named as Connectif names them (``from`` -> ``filters.fromDate``)."""
    try:
        yield
    except ParameterError as exc:
        raise ParameterError([Problem(_VENDOR_FIELDS.get(p.field, p.field), p.value, p.reason) for p in exc.problems]) from None


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def export_creation(body: dict[str, Any]) -> ExportCreation:
    """The body as an ExportCreation; every problem at once (422)."""
    try:
        creation = ExportCreation.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors())) from None
    if problems := creation.rule_problems():
        raise ParameterError(problems)
    return creation


def export_resource(view: RunView, creation: dict[str, Any], download_url: str | None = None) -> dict[str, Any]:
    """The Export resource of a run."""
    return {
        "id": view.id,
        "status": _STATUS[view.status],
        **creation,
        "createdAt": view.started_at.isoformat() if view.started_at else None,
        "finishedAt": view.completed_at.isoformat() if view.completed_at else None,
        "recordCount": view.record_count,
        "fileSize": view.file_size,
        "error": view.error,
        "downloadUrl": download_url,
    }


def _creation_of(view: RunView) -> dict[str, Any]:
    """The ExportCreation properties a run was started with (from its parameters), for the resource's echo."""
    request = view.request
    labels = bool(request.get("labels"))
    date_format = request.get("date_format") or "iso"
    filters = {
        "activityTypes": request.get("activity_types") or None,
        "fromDate": request.get("from") or request.get("date_from"),
        "toDate": request.get("to") or request.get("date_to"),
        "segmentId": request.get("segment"),
    }
    return {
        "dateFormat": "ISO" if date_format == "iso" else date_format,
        "delimiter": request.get("delimiter", ","),
        "exportType": "activities" if view.resource == "events" else "contacts",
        "filters": {k: v for k, v in filters.items() if v is not None},
        "version": "v2" if labels else "v1",
    }


@router.post("/exports/", status_code=201, summary="Create bulk export (contacts or activities)", dependencies=[STARTS_RUN])
@router.post("/exports", status_code=201, include_in_schema=False, dependencies=[STARTS_RUN])
def create_export(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    creation = export_creation(body)
    with connectif_names():
        export = creation.to_request(caller)
        run_id = start_export(export, idempotency_key=run_key(caller, idempotency_key))
    details = {"adapter": "connectif", "filters": creation.filters.model_dump(mode="json", by_alias=True, exclude_none=True)}
    record_api_call(caller, "api.export.start", export.resource_def.slug, run_id, client_ip(request), details | {"status": 201}, None)
    view = read_run_view(run_id, caller.workspace)
    return JSONResponse(
        export_resource(view, _creation_of(view)), status_code=201, headers={"Location": f"{request.url.path.rstrip('/')}/{run_id}"}
    )


@router.get("/exports/{export_id}", summary="An export: its state and, once finished, its download URL")
def get_export(request: Request, export_id: str, caller: Principal = require("runs.read")) -> JSONResponse:
    view = read_run_view(export_id, caller.workspace)
    if view.kind != "export":
        raise RunNotFoundError(f"No export {export_id} in this workspace.", "Create one with POST /exports/.")
    url = None
    if view.status == "succeeded" and allows(caller.role, "runs.download"):
        try:
            url = fresh_download_link(view.id, base_url=str(request.base_url)).url
        except FerryError:  # storage that cannot sign URLs, or the file is gone: the export is shown without one
            pass
    return JSONResponse(export_resource(view, _creation_of(view), url))
