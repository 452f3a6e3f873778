"""``/compat/cordial``: Cordial's contactexports (``POST /contactexports``) and its Jobs resource (``GET /jobs/{jobID}``).

Follows ``shared/seeds/002`` field for field: ``name`` (letters, numbers and
dashes), ``exportType`` (csv, json), ``fields``, ``lists`` (keys or ids; one
1/0 column each), ``audience-key`` (a segment's key), ``showHeader`` (CSV;
default false), ``compress`` (gzip, ``.gz`` added), ``confirmEmail`` and
``destination`` (``type`` aws, ftp, sftp, s3 or gcs with its settings). Its
defaults: no fields and no lists give every field and every list; lists
without fields give the e-mail and the lists. ``type: aws`` is Ferry's managed
storage, downloadable later. The export starts a run of ``export-data/default``
like ``POST /v1/exports``; inline credentials become Prefect blocks at once
(deployments/cordial.py), and the run's parameters name the block only.

Where the document is silent, Ferry chose:

* Auth: HTTP Basic with the API key as user name and an empty password (Cordial's
  scheme), or any native form. Creating an export needs an admin key; reading a
  job a viewer key, and its ``downloadUrl`` an admin key. A 401 says
  ``WWW-Authenticate: Basic``.
* ``POST /contactexports`` answers 200 with the job (below); ``Location`` names it.
  ``name`` is optional (no name: files are called ``contacts-DATE-RUNID``);
  ``exportType`` defaults to csv, ``destination`` to ``{"type": "aws"}``. Both
  accept upper case (``CSV``, ``SFTP``). ``fields`` and ``lists`` also take a
  comma-separated string; ``showHeader`` and ``compress`` take true/false or
  "true"/"false"; ``port`` a number or a numeric string (as in the examples).
  Unknown properties are errors (typos are caught, not ignored), and so are
  destination settings of another type (``aws_bucket`` with ``type: aws``).
* Fields: contact attribute keys are Ferry's field keys (``first_name``,
  ``phone.mobile``, ``address``); Cordial's system fields map onto Ferry's:
  ``channels.email.address`` -> ``email``, ``channels.email.subscribeStatus`` ->
  ``email_consent`` (true/false), ``channels.sms.address`` -> ``phone.mobile``,
  ``channels.sms.subscribeStatus`` -> ``sms_consent``, ``cID`` -> ``id``,
  ``createdAt`` -> ``created_at``, ``lastModified`` -> ``updated_at``. A column is
  headed by the name it was asked for; the defaults use Ferry's keys
  (``email``). List columns are headed by the list's key, whether asked by key
  or by id. ``lists`` entries that are numbers are list ids, strings list keys.
* The file is ``<name>.csv`` / ``.json`` (``.gz`` with compress) in the folder
  the path names; an S3 path ending in ``NAME.csv`` names the file too. Slashes at
  either end of an S3 or GCS path are dropped (so Cordial's trailing-slash
  advice is followed either way); an FTP/SFTP path is absolute when it starts
  with ``/``, else relative to the login folder. Managed (``aws``) files are kept
  per run (``cordial/<workspace>/<jobID>/<name>.csv``), so a name never overwrites
  an earlier export; the retention is FERRY_MANAGED_RETENTION_DAYS (30, as Cordial's).
* ``exportType: json`` is Ferry's JSON format (one array of objects); ``showHeader``
  applies to CSV only.
* ``ftp`` is plain FTP, as Cordial means it (the password crosses the network
  unencrypted): Ferry's extension ``"tls": true`` makes it FTPS. ``sftp`` always
  pins the server's host key: Ferry's extension ``hostKey`` (a known_hosts line or
  ``SHA256:`` fingerprint), else the operator's known_hosts (FERRY_SSH_KNOWN_HOSTS);
  an unknown server is a 422 before anything is saved. ``savedKey`` names a key an
  operator saved for the workspace (an sftp block ``cordial-key-<workspace>-<key>``).
  ``s3`` takes Ferry's extension ``aws_endpoint_url`` for S3-compatible storage.
  ``gcs`` uses the workspace's GCS integration (a block ``cordial-gcs-<workspace>``).
* ``confirmEmail`` is sent through the server's SMTP block (FERRY_SMTP_BLOCK) when
  the export ends, succeeded or failed; a server without one answers 422.
* The Job (``GET /jobs/{jobID}``, exports only; another workspace's job is 404):
  ``_id`` and ``jobID`` (the Prefect run id), ``jobName`` ``ExportContacts``,
  ``name``, ``status`` (``Pending``, ``Processing``, ``Done``, ``Failed``),
  ``percentComplete``, ``times {start, end}``, ``totalItems`` / ``completedItems`` /
  ``recordCount`` (rows exported), ``fileSize`` (bytes), ``fileName``,
  ``exportType``, ``showHeader``, ``compress``, ``destination {type}``,
  ``location`` (where the file went; null for aws), ``error``, and for a Done
  ``aws`` export ``downloadUrl`` (a fresh signed URL on every GET) and
  ``downloadUrlExpiresAt``. Credentials are never shown.
* Errors: ``{"error": true, "message": "...", "messages": {field: [reasons]}}``,
  ``messages`` on 422 only, with every problem at once and fields named as in the
  body (``destination.password``, ``fields[1]``, ``audience-key``); values are never
  echoed. Statuses as natively: 400 invalid JSON, 401, 403, 404, 415 without
  ``application/json``, 422, 429.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Literal

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.auth import require
from api.body import json_object
from api.compat.base import client_ip, vendor_router
from api.idempotency import run_key
from api.problems import Failure
from api.ratelimit import STARTS_RUN
from deployments import cordial as service
from deployments.run_views import RunView, read_run_view
from deployments.service import check_export_against_store, fresh_download_link, record_api_call, start_export
from ferry.errors import FerryError, ParameterError, Problem, RunNotFoundError, problems_from_validation
from ferry.keys import Principal
from ferry.params import ExportRequest, parse_request
from ferry.roles import allows

JOB_NAME = "ExportContacts"
#: Cordial's system fields -> Ferry's contact columns.
SYSTEM_FIELDS = {
    "channels.email.address": "email",
    "channels.email.subscribeStatus": "email_consent",
    "channels.sms.address": "phone.mobile",
    "channels.sms.subscribeStatus": "sms_consent",
    "cID": "id",
    "createdAt": "created_at",
    "lastModified": "updated_at",
}
#: ExportRequest's parameter names as the body names them (for errors).
_FIELDS = {
    "segment": "audience-key",
    "notify_email": "confirmEmail",
    "notify_smtp": "confirmEmail",
    "format": "exportType",
    "header": "showHeader",
    "gzip": "compress",
    "filename": "name",
    "title": "name",
    "labels": "fields",
    "destination": "destination.type",
}
_STATUS = {"queued": "Pending", "running": "Processing", "succeeded": "Done", "failed": "Failed", "cancelled": "Failed"}


class CordialError(BaseModel):
    error: bool = True
    message: str
    messages: dict[str, list[str]] | None = Field(default=None, description="422 only: every problem, by field.")


def render(request: Request, failure: Failure) -> JSONResponse:
    body: dict[str, Any] = {"error": True, "message": failure.detail}
    if failure.errors is not None:
        messages: dict[str, list[str]] = {}
        for error in failure.errors:
            messages.setdefault(str(error["field"]), []).append(str(error["reason"]))
        body["messages"] = messages
    headers = dict(failure.headers or {})
    if failure.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ferry"'
    return JSONResponse(body, status_code=failure.status, headers=headers or None)


router = vendor_router(render, CordialError, "compat: cordial")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _split(value: Any) -> Any:
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class Destination(BaseModel):
    """Cordial's destination object (``hostKey``, ``tls``, ``aws_endpoint_url``: Ferry's additions)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["aws", "ftp", "sftp", "s3", "gcs"] = "aws"
    server: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = Field(default=None, min_length=1)
    password: str | None = None
    saved_key: str | None = Field(default=None, alias="savedKey", min_length=1, max_length=100)
    host_key: str | None = Field(default=None, alias="hostKey", min_length=1)
    tls: bool | None = None
    aws_access_key_id: str | None = Field(default=None, min_length=1)
    aws_secret_access_key: str | None = Field(default=None, min_length=1)
    aws_bucket: str | None = Field(default=None, min_length=1)
    aws_region: str | None = Field(default=None, min_length=1)
    aws_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    path: str | None = None
    gcs_bucket: str | None = Field(default=None, min_length=1)

    @field_validator("type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return _lower(value)


class ContactExport(BaseModel):
    """The body of ``POST /contactexports``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, max_length=100, description="Letters, numbers and dashes.")
    export_type: Literal["csv", "json"] = Field(default="csv", alias="exportType")
    fields: list[str] | None = None
    lists: list[int | str] | None = None
    audience_key: str | None = Field(default=None, alias="audience-key", min_length=1)
    show_header: bool = Field(default=False, alias="showHeader")
    compress: bool = False
    confirm_email: str | None = Field(default=None, alias="confirmEmail")
    destination: Destination = Field(default_factory=Destination)

    @field_validator("export_type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("fields", "lists", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    def rule_problems(self) -> list[Problem]:
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9-]+", self.name):
            return [Problem("name", self.name, "may only contain letters, numbers, and dashes")]
        return []

    def request_data(self, caller: Principal, lists: list[str], reference: str | None, filename: str, smtp: str | None) -> dict:
        """The ExportRequest of this body (Cordial's defaults applied)."""
        fields = [SYSTEM_FIELDS.get(f, f) for f in self.fields or []]
        labels = {SYSTEM_FIELDS[f]: f for f in self.fields or [] if f in SYSTEM_FIELDS}
        labels |= {f"list.{key}": key for key in lists}
        if not fields and self.lists:
            fields = ["email"]  # lists but no fields: the e-mail and the lists
        data: dict[str, Any] = {
            "workspace": caller.workspace,
            "resource": "contacts",
            "format": self.export_type,
            "fields": fields or None,
            "lists": lists,
            "segment": self.audience_key,
            "header": self.show_header or self.export_type != "csv",
            "gzip": self.compress,
            "labels": labels,
            "destination": reference,
            "filename": filename,
            "title": self.name,
            "actor": f"api:{caller.key_id}",
        }
        if self.confirm_email is not None and smtp:
            data |= {"notify_email": self.confirm_email, "notify_smtp": smtp}
        return data


def _body_field(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in ("fields", "lists") and parts[1].isdigit():
        return f"{parts[0]}[{parts[1]}]" + "".join(f".{p}" for p in parts[2:] if not p.startswith(("int", "str")))
    return ".".join(parts) or "body"


def _cordial(problems: list[Problem]) -> list[Problem]:
    """ExportRequest's problems named as the body names the fields (``segment`` -> ``audience-key``)."""
    return [Problem(_FIELDS.get(re.split(r"[.\[]", p.field)[0], p.field), p.value, p.reason) for p in problems]


def contact_export(body: dict[str, Any]) -> ContactExport:
    try:
        return ContactExport.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body", field_name=_body_field)) from None


def _filename(export: ContactExport, from_path: str | None) -> str:
    if export.destination.type == "aws":
        return f"cordial/{{workspace}}/{{run_id}}/{export.name or 'contacts-{date}'}.{{format}}"
    return from_path or (f"{export.name}.{{format}}" if export.name else "contacts-{date}-{run_id}.{format}")


def _unique(export: ContactExport, key: str | None) -> str:
    """The job's block suffix: random, or from the Idempotency-Key and body (a retried request names the same block)."""
    if key is None:
        return uuid.uuid4().hex[:8]
    secrets = {"destination": {"password", "aws_secret_access_key"}}  # never mixed into a name others see
    canonical = json.dumps(export.model_dump(mode="json", by_alias=True, exclude=secrets), sort_keys=True)
    return hashlib.sha256(f"{key}\n{canonical}".encode()).hexdigest()[:8]


def prepare(export: ContactExport, caller: Principal, key: str | None) -> tuple[ExportRequest, service.CordialDestination, str]:
    """The validated ExportRequest, the destination's unsaved blocks and their name; every problem at once."""
    from ferry.settings import get_settings

    problems = export.rule_problems()
    wanted = export.lists or ([] if export.fields else None)  # no fields and no lists (or empty ones): every list
    lists, more = service.resolve_lists(caller.workspace, wanted)
    problems += more
    block = service.job_block_name(export.name, _unique(export, key))
    settings = export.destination.model_dump(by_alias=True, exclude_none=True)
    destination, more = service.plan_cordial_destination(caller.workspace, settings, export.export_type, block)
    problems += more
    smtp = get_settings().smtp_block
    if export.confirm_email is not None and not smtp:
        reason = "this server sends no e-mail: its operator names an SMTP block (FERRY_SMTP_BLOCK)"
        problems.append(Problem("confirmEmail", export.confirm_email, reason))
    data = export.request_data(caller, lists, destination.plan.reference, _filename(export, destination.filename), smtp)
    request = None
    try:
        request = parse_request(data)
    except ParameterError as exc:
        problems += _cordial(exc.problems)
    if request is not None:  # what only the store can tell (the audience exists), with the rest
        try:
            check_export_against_store(request)
        except ParameterError as exc:
            problems += _cordial(exc.problems)
    if problems:
        raise ParameterError(problems)
    return request, destination, block


class Times(BaseModel):
    start: str | None
    end: str | None


class JobDestination(BaseModel):
    type: str


class Job(BaseModel):
    """Cordial's Job, for an export."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")
    job_id: str = Field(alias="jobID")
    job_name: str = Field(alias="jobName")
    name: str | None
    status: Literal["Pending", "Processing", "Done", "Failed"]
    percent_complete: int = Field(alias="percentComplete")
    times: Times
    total_items: int | None = Field(alias="totalItems")
    completed_items: int | None = Field(alias="completedItems")
    record_count: int | None = Field(alias="recordCount")
    file_size: int | None = Field(alias="fileSize")
    file_name: str | None = Field(alias="fileName")
    export_type: str = Field(alias="exportType")
    show_header: bool = Field(alias="showHeader")
    compress: bool
    destination: JobDestination
    location: str | None
    error: str | None
    download_url: str | None = Field(alias="downloadUrl")
    download_url_expires_at: str | None = Field(alias="downloadUrlExpiresAt")


def job(view: RunView, link: Any = None) -> dict[str, Any]:
    """The Job of an export run."""
    request = view.request
    dtype = service.destination_type(request.get("destination"))
    done = view.status == "succeeded"
    path = view.destination_path
    return {
        "_id": view.id,
        "jobID": view.id,
        "jobName": JOB_NAME,
        "name": request.get("title"),
        "status": _STATUS[view.status],
        "percentComplete": view.progress,
        "times": {"start": _iso(view.started_at), "end": _iso(view.completed_at)},
        "totalItems": view.record_count,
        "completedItems": view.record_count if done else None,
        "recordCount": view.record_count,
        "fileSize": view.file_size,
        "fileName": path.replace("\\", "/").rsplit("/", 1)[-1] if path else None,
        "exportType": request.get("format", "csv"),
        "showHeader": bool(request.get("header", True)) if request.get("format", "csv") == "csv" else True,
        "compress": bool(request.get("gzip", False)),
        "destination": {"type": dtype},
        "location": path if dtype != "aws" else None,
        "error": view.error,
        "downloadUrl": link.url if link else None,
        "downloadUrlExpiresAt": _iso(link.expires_at) if link else None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


_BODY_SCHEMA = ContactExport.model_json_schema(by_alias=True)
_BODY_SCHEMA["properties"]["destination"] = _BODY_SCHEMA.pop("$defs")["Destination"]


@router.post(
    "/contactexports",
    summary="Create a contact export job",
    dependencies=[STARTS_RUN],
    responses={200: {"model": Job, "description": "The job, Pending; follow it at `Location`."}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
def create_contact_export(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("exports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    export = contact_export(body)
    key = run_key(caller, idempotency_key)
    export_request, destination, block = prepare(export, caller, key)
    service.save_destination(destination.plan, block)
    try:
        run_id = start_export(export_request, idempotency_key=key)
    except BaseException:
        service.discard_destination(destination.plan, block)
        raise
    details = {"adapter": "cordial", "name": export.name, "destinationType": export.destination.type, "block": destination.plan.reference}
    record_api_call(caller, "api.export.start", "contacts", run_id, client_ip(request), details | {"status": 200}, None)
    prefix = request.url.path.rsplit("/contactexports", 1)[0]
    return JSONResponse(job(read_run_view(run_id, caller.workspace)), headers={"Location": f"{prefix}/jobs/{run_id}"})


@router.get(
    "/jobs/{job_id}", summary="A job: its state, counts and, for a finished aws export, a download URL", responses={200: {"model": Job}}
)
def get_job(request: Request, job_id: str, caller: Principal = require("runs.read")) -> JSONResponse:
    view = read_run_view(job_id, caller.workspace)
    if view.kind != "export":
        raise RunNotFoundError(f"No export job {job_id} in this workspace.", "Create one with POST /contactexports.")
    link = None
    if view.status == "succeeded" and view.request.get("destination") is None and allows(caller.role, "runs.download"):
        try:
            link = fresh_download_link(view.id, base_url=str(request.base_url))
        except FerryError:  # the file is gone (retention) or the storage cannot sign: the job is shown without one
            pass
    return JSONResponse(job(view, link))
