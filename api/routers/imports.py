"""``/v1/imports``: the import steps over HTTP (preview, suggest-mapping, validate, run) and ``/v1/runs/{id}/rollback``.

Each step reads an upload of the key's workspace (``POST /v1/uploads``) and calls
the same service function as the ``ferry import`` command. ``POST /v1/imports``
starts a run of ``import-data/default`` (202 + ``Location``); its ``sourceUrl``
is fetched by that run, through the SSRF guard, never by the API. A rollback
runs the rollback-import flow in the API process and answers with its record.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

from api.auth import require
from api.body import json_object
from api.idempotency import run_key
from api.ratelimit import STARTS_RUN
from api.schemas import RunStarted
from deployments.run_views import read_run_view
from deployments.service import check_import_file, preview_file, record_api_call, roll_back_import, start_import, suggest_file_mapping
from deployments.uploads import Upload, completed_upload
from ferry.checks import shown_url
from ferry.errors import ParameterError, Problem, RollbackError, RunNotFoundError, UnknownWorkspaceError, problems_from_validation
from ferry.import_params import ImportRequest, parse_request
from ferry.keys import Principal

router = APIRouter(tags=["imports"])

#: The JSON names of an import's options -> ImportRequest's fields: the one place the two are translated.
FIELDS: dict[str, str] = {
    "resource": "resource",
    "mapping": "mapping",
    "autoMap": "auto_map",
    "duplicateStrategy": "duplicates",
    "duplicateMatchFields": "match",
    "mergeMode": "merge",
    "staticValues": "static_values",
    "createMissingReferences": "create_missing_references",
    "skipValidation": "skip_validation",
    "dryRun": "dry_run",
    "maxErrors": "max_errors",
    "maxErrorRate": "max_error_rate",
    "valueMaps": "value_maps",
    "keepUnmapped": "keep_unmapped",
    "dateOrder": "date_order",
    "sheet": "sheet",
}
_BODY_NAMES = {field: name for name, field in FIELDS.items()}
IMPORT_OPTIONS = tuple(FIELDS)
VALIDATE_OPTIONS = tuple(name for name in FIELDS if name not in ("dryRun", "maxErrorRate"))


def _text_encoding(value: str | None) -> str | None:
    """A Python text codec's name (not e.g. base64 or rot13, which the parser cannot read with)."""
    if value is None:
        return None
    try:
        info = codecs.lookup(value)
    except (LookupError, ValueError):
        raise PydanticCustomError("encoding", "not a text encoding Python knows, e.g. utf-8, cp1252 or utf-16") from None
    if not getattr(info, "_is_text_encoding", True) or info.name in ("idna", "punycode"):
        raise PydanticCustomError("encoding", "not a text encoding, e.g. utf-8, cp1252 or utf-16")
    return value


Sheet = Annotated[
    str | None,
    Field(default=None, max_length=200, description="Workbooks: the worksheet to read, by name or 1-based index (`2`)."),
]
Encoding = Annotated[
    str | None,
    AfterValidator(_text_encoding),
    Field(default=None, description="Text encoding, when detection gets it wrong (e.g. cp1252)."),
]


class PreviewBody(BaseModel):
    """``POST /v1/imports/preview``."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    upload_id: str = Field(description="An upload of the workspace whose content is complete (POST /v1/uploads).")
    sample_rows: int = Field(default=50, ge=0, le=50, description="Sample rows to return (at most 50).")
    encoding: Encoding = None
    sheet: Sheet = None


class SuggestBody(BaseModel):
    """``POST /v1/imports/suggest-mapping``."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    upload_id: str = Field(description="An upload of the workspace whose content is complete (POST /v1/uploads).")
    resource: str = Field(description="Resource to import into: contacts, accounts, events, ...")
    encoding: Encoding = None
    sheet: Sheet = None


def _parsed(model: type[BaseModel], body: dict) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body")) from None


def _inline(node: Any, defs: dict) -> Any:
    """A JSON schema with its ``$ref``s replaced by the definitions (so it stands alone inside the OpenAPI document)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    return [_inline(value, defs) for value in node] if isinstance(node, list) else node


def _body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _import_schema(options: tuple[str, ...], source_url: bool) -> dict:
    base = ImportRequest.model_json_schema()
    defs = base.pop("$defs", {})
    properties: dict[str, Any] = {"uploadId": {"type": "string", "description": "An upload of the workspace (POST /v1/uploads)."}}
    if source_url:
        properties["sourceUrl"] = {
            "type": "string",
            "description": "An http(s) URL the run downloads (public addresses only); or uploadId.",
        }
    properties |= {name: _inline(base["properties"][FIELDS[name]], defs) for name in options}
    return {"type": "object", "properties": properties, "required": ["resource"]}


def _shown(value: Any) -> Any:
    return shown_url(value) if isinstance(value, str) else value


def _renamed(problem: Problem, upload_id: Any, url: Any) -> Problem:
    """A problem named by the body's field (``duplicateStrategy``), not ImportRequest's (``duplicates``)."""
    head, rest = re.match(r"([A-Za-z_]*)(.*)", problem.field, re.S).groups()
    if head == "source":
        return Problem(
            ("sourceUrl" if url is not None else "uploadId") + rest, _shown(url) if url is not None else upload_id, problem.reason
        )
    return Problem(_BODY_NAMES.get(head, head) + rest, problem.value, problem.reason)


def import_request(body: dict, caller: Principal, options: tuple[str, ...], source_url: bool) -> tuple[ImportRequest, Upload | None]:
    """The body as an ImportRequest of the caller's workspace, and the upload it names; every problem at once (422)."""
    accepted = {to_snake(name): name for name in ("uploadId", *(("sourceUrl",) if source_url else ()), *options)}
    given: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in body.items():
        if key == "workspace":
            if value != caller.workspace:
                raise UnknownWorkspaceError(
                    f"No workspace {value!r} for this key.", "A key imports only into its own workspace; omit `workspace`."
                )
        elif (name := accepted.get(to_snake(key))) is None:
            problems.append(Problem(key, value, f"not a field of this request; use {', '.join(accepted.values())}"))
        else:
            given[name] = value
    upload_id, url = given.pop("uploadId", None), given.pop("sourceUrl", None)
    upload, source = None, None
    if upload_id is not None and url is not None:
        problems.append(Problem("sourceUrl", _shown(url), "give uploadId or sourceUrl, not both"))
    elif url is not None:
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            source = url
        else:
            problems.append(Problem("sourceUrl", _shown(url), "must be an http:// or https:// URL (block sources are the CLI's)"))
    elif isinstance(upload_id, str):
        upload = completed_upload(caller.workspace, upload_id)
        source = str(upload.path)
    else:
        problems.append(
            Problem("uploadId", upload_id, "give the uploadId of POST /v1/uploads" + (", or a sourceUrl" if source_url else ""))
        )
    data = {FIELDS[name]: value for name, value in given.items()}
    request = None
    try:
        request = parse_request({**data, "source": source or "-", "workspace": caller.workspace, "actor": f"api:{caller.key_id}"})
    except ParameterError as exc:
        problems += [_renamed(p, upload_id, url) for p in exc.problems if source is not None or not p.field.startswith("source")]
    if problems:
        raise ParameterError(problems)
    return request, upload


def _audit(request: Request, caller: Principal, action: str, resource: str | None, upload: Upload, status: int = 200) -> None:
    client_ip = request.client.host if request.client else None
    record_api_call(caller, action, resource, None, client_ip, {"uploadId": upload.upload_id, "status": status}, upload.size_bytes)


def _json(content: Any, **kwargs: Any) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(content, default=str)), **kwargs)


@router.post(
    "/imports/preview",
    summary="What an upload is: format, encoding, columns, sample rows, row count",
    openapi_extra=_body(PreviewBody.model_json_schema(by_alias=True)),
)
def preview(request: Request, body: dict = Depends(json_object), caller: Principal = require("imports.create")) -> JSONResponse:
    wanted = _parsed(PreviewBody, body)
    upload = completed_upload(caller.workspace, wanted.upload_id)
    result = preview_file(upload.path, sample_rows=wanted.sample_rows, encoding=wanted.encoding, sheet=wanted.sheet)
    _audit(request, caller, "api.import.preview", None, upload)
    return _json(result.to_json())


@router.post(
    "/imports/suggest-mapping",
    summary="The suggested mapping of an upload's columns, and the target fields",
    openapi_extra=_body(SuggestBody.model_json_schema(by_alias=True)),
)
def suggest_mapping(request: Request, body: dict = Depends(json_object), caller: Principal = require("imports.create")) -> JSONResponse:
    wanted = _parsed(SuggestBody, body)
    upload = completed_upload(caller.workspace, wanted.upload_id)
    mapping, fields = suggest_file_mapping(
        upload.path, wanted.resource, workspace=caller.workspace, encoding=wanted.encoding, sheet=wanted.sheet
    )
    _audit(request, caller, "api.import.suggest_mapping", wanted.resource, upload)
    return _json({"mapping": [m.to_json() for m in mapping], "targetFields": fields})


@router.post(
    "/imports/validate",
    summary="Every check of an import of an upload, against a throw-away store",
    openapi_extra=_body(_import_schema(VALIDATE_OPTIONS, source_url=False)),
)
def validate(request: Request, body: dict = Depends(json_object), caller: Principal = require("imports.create")) -> JSONResponse:
    wanted, upload = import_request(body, caller, VALIDATE_OPTIONS, source_url=False)
    options = wanted.model_dump(
        include={
            "duplicates",
            "match",
            "merge",
            "static_values",
            "value_maps",
            "keep_unmapped",
            "date_order",
            "sheet",
            "create_missing_references",
            "skip_validation",
        }
    )
    report = check_import_file(
        upload.path, wanted.resource, mapping=wanted.mapping, auto_map=wanted.auto_map, max_errors=wanted.max_errors, **options
    )
    _audit(request, caller, "api.import.validate", wanted.resource_def.slug, upload)
    return _json({**report, "source": upload.filename, "uploadId": upload.upload_id})


@router.post(
    "/imports",
    status_code=202,
    dependencies=[STARTS_RUN],
    summary="Start an import of an upload (or an http(s) URL) into the workspace",
    openapi_extra=_body(_import_schema(IMPORT_OPTIONS, source_url=True)),
    responses={202: {"model": RunStarted, "description": "The run started; follow it at `Location`."}},
)
def create_import(
    request: Request,
    body: dict = Depends(json_object),
    caller: Principal = require("imports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    wanted, upload = import_request(body, caller, IMPORT_OPTIONS, source_url=True)
    run_id = start_import(wanted, idempotency_key=run_key(caller, idempotency_key))
    details = {
        "source": f"upload:{upload.upload_id}" if upload else shown_url(wanted.source),
        "duplicates": wanted.duplicates,
        "dryRun": wanted.dry_run,
        "status": 202,
    }
    size = upload.size_bytes if upload else getattr(request.state, "payload_bytes", None)
    record_api_call(
        caller, "api.import.start", wanted.resource_def.slug, run_id, request.client.host if request.client else None, details, size
    )
    links = {"self": f"/v1/runs/{run_id}", "rollback": f"/v1/runs/{run_id}/rollback"}
    return JSONResponse({"id": run_id, "status": "queued", "links": links}, status_code=202, headers={"Location": links["self"]})


@router.post(
    "/runs/{run_id}/rollback", summary="Undo an import of the workspace exactly (the rollback's record)", dependencies=[STARTS_RUN]
)
def rollback(request: Request, run_id: str, caller: Principal = require("runs.rollback")) -> JSONResponse:
    view = read_run_view(run_id, caller.workspace)
    if view.kind != "import":
        raise RunNotFoundError(f"No import run {run_id} in this workspace.", "List the workspace's imports: GET /v1/runs?kind=import.")
    record = roll_back_import(view.id, f"api:{caller.key_id}")
    ok = record.status == "success"
    details = {
        "importRunId": view.id,
        "deletedRows": record.deleted_rows,
        "restoredRows": record.restored_rows,
        "status": 200 if ok else 409,
    }
    record_api_call(
        caller, "api.import.rollback", view.resource, record.run_id, request.client.host if request.client else None, details, None
    )
    if not ok:
        raise RollbackError(f"The rollback of import {view.id} was refused: {record.error}", f"(rollback run {record.run_id})")
    answer = {
        "id": record.run_id,
        "kind": "rollback",
        "status": "succeeded",
        "importRunId": record.import_run_id,
        "resource": record.resource,
        "deletedRows": record.deleted_rows,
        "restoredRows": record.restored_rows,
        "deletedReferences": record.deleted_references,
        "startedAt": record.started_at.isoformat(),
        "completedAt": record.completed_at.isoformat() if record.completed_at else None,
        "links": {"self": f"/v1/runs/{record.run_id}", "import": f"/v1/runs/{view.id}"},
    }
    return _json(answer, headers={"Location": answer["links"]["self"]})
