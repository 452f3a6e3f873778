"""Coherence's import steps: parse, suggest-mapping, validate, execute, and import jobs (status, history, rollback)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.body import json_object
from api.compat.base import client_ip
from api.compat.coherence.common import (
    STARTED,
    coherence_slug,
    ferry_key,
    module_of,
    not_found,
    ok,
    parsed,
    renamed,
    router,
    target_fields,
    when,
)
from api.compat.coherence.form import FormFile
from api.idempotency import run_key
from api.ratelimit import STARTS_RUN
from api.routers.imports import IMPORT_OPTIONS, VALIDATE_OPTIONS, import_request
from deployments.inline import rows_upload, save_upload, suggest_columns
from deployments.job_facts import JobFacts, created_record_ids, list_jobs, read_job
from deployments.service import (
    check_import_file,
    preview_file,
    record_api_call,
    roll_back_import,
    run_import,
    start_import,
    suggest_file_mapping,
)
from deployments.uploads import Upload, completed_upload
from ferry.catalog import Resource
from ferry.errors import ParameterError, Problem, RollbackError, RunNotFoundError
from ferry.keys import Principal
from ferry.records import ImportRecord
from ferry.settings import get_settings

#: The seed's processing modes: the most rows each takes.
SYNC_MAX_ROWS = 5_000
STREAM_MAX_ROWS = 50_000
SAMPLE_ROWS = 50
_STATUS = {"queued": "pending", "running": "processing", "succeeded": "completed", "failed": "failed", "cancelled": "cancelled"}
#: Native body names -> Coherence's, for problems.
_NAMES = {"mapping": "columnMapping", "uploadId": "fileId", "autoMap": "columnMapping"}
_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}
            }
        },
    }
}


def processing_mode(total_rows: int) -> Literal["sync", "stream", "background"]:
    """The seed's table: up to 5,000 rows sync, 5,001-50,000 stream, more background."""
    if total_rows <= SYNC_MAX_ROWS:
        return "sync"
    return "stream" if total_rows <= STREAM_MAX_ROWS else "background"


# --- parse ----------------------------------------------------------------------------------------


@router.post("/v1/modules/{module}/import/parse", summary="Upload and parse file", openapi_extra=_MULTIPART)
async def parse(request: Request, module: str, caller: Principal = require("imports.create")) -> JSONResponse:
    module_of(module)
    form = FormFile(request)
    chunks = form.chunks()
    first = await anext(chunks, b"")  # the part's headers are read (and checked) before anything is kept; no part: 400

    async def content():
        if first:
            yield first
        async for data in chunks:
            yield data

    upload = await save_upload(caller, form.name, content())
    preview = await run_in_threadpool(preview_file, upload.path, SAMPLE_ROWS)
    details = {"adapter": "coherence", "uploadId": upload.upload_id, "status": 200}
    await run_in_threadpool(record_api_call, caller, "api.import.preview", None, None, client_ip(request), details, upload.size_bytes)
    return ok(
        {
            "sourceColumns": preview.columns,
            "sampleRows": preview.sample_rows,
            "totalRows": preview.total_rows,
            "fileType": preview.file_type,
            "fileName": form.name,
            "encoding": preview.encoding,
            "fileId": upload.upload_id,
        }
    )


# --- suggest-mapping ------------------------------------------------------------------------------


class SuggestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source_columns: list[str] | None = Field(default=None, alias="sourceColumns", description="Column headers from the file.")
    sample_data: list[dict[str, Any]] = Field(default_factory=list, alias="sampleData", description="Sample rows for better matching.")
    file_id: str | None = Field(default=None, alias="fileId", description="Or a parsed file (its columns and first rows).")


def _suggestion(mapping) -> dict[str, Any]:
    return {
        "sourceColumn": mapping.source_column,
        "targetFieldSlug": coherence_slug(mapping.target_field_slug),
        "confidence": mapping.confidence,
        "valueType": mapping.value_type.capitalize() if mapping.value_type else None,
        "addressPart": mapping.address_part,
        "reason": mapping.reason,
    }


@router.post("/v1/modules/{module}/import/suggest-mapping", summary="Get mapping suggestions")
def suggest_mapping(
    request: Request, module: str, body: dict[str, Any] = Depends(json_object), caller: Principal = require("imports.create")
) -> JSONResponse:
    resource = module_of(module)
    wanted: SuggestBody = parsed(SuggestBody, body)
    if wanted.source_columns is None and wanted.file_id is None:
        raise ParameterError([Problem("sourceColumns", None, "give the file's column headers (or the fileId of .../import/parse)")])
    if wanted.source_columns is None:
        upload = completed_upload(caller.workspace, wanted.file_id)
        mapping, fields = suggest_file_mapping(upload.path, resource.slug, workspace=caller.workspace)
    else:
        samples = [{k: None if v is None else str(v) for k, v in row.items()} for row in wanted.sample_data]
        mapping, fields = suggest_columns(wanted.source_columns, samples, resource.slug, workspace=caller.workspace)
    record_api_call(caller, "api.import.suggest_mapping", resource.slug, None, client_ip(request), {"adapter": "coherence"}, None)
    data = {"suggestions": [_suggestion(m) for m in mapping], "aiUsed": False, "targetFields": target_fields(fields)}
    return ok(data)


# --- validate and execute -------------------------------------------------------------------------


class ColumnMapping(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    source_column: str = Field(alias="sourceColumn", min_length=1)
    target_field_slug: str | None = Field(default=None, alias="targetFieldSlug")
    ignored: bool = False
    value_type: str | None = Field(default=None, alias="valueType")
    address_part: Literal["street", "street2", "city", "state", "zip", "country"] | None = Field(default=None, alias="addressPart")


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rows: list[Any] | None = Field(default=None, description="All rows, as objects of column -> value.")
    file_id: str | None = Field(default=None, alias="fileId", description="Or a parsed file (.../import/parse) instead of the rows.")
    column_mapping: list[ColumnMapping] | None = Field(default=None, alias="columnMapping")
    duplicate_strategy: Literal["skip", "update", "create"] = Field(default="skip", alias="duplicateStrategy")
    duplicate_match_fields: list[str] | None = Field(default=None, alias="duplicateMatchFields")
    merge_mode: Literal["fill_empty", "overwrite", "prefer_import"] = Field(default="prefer_import", alias="mergeMode")
    ai_mapping_used: bool = Field(default=False, alias="aiMappingUsed")
    skip_validation: bool = Field(default=False, alias="skipValidation")
    create_missing_references: bool = Field(default=False, alias="createMissingReferences")
    static_values: dict[str, Any] = Field(default_factory=dict, alias="staticValues")

    def native(self, resource: Resource, upload_id: str) -> dict[str, Any]:
        """The body of the native import steps (``api.routers.imports``), fields as Ferry names them."""
        body: dict[str, Any] = {
            "uploadId": upload_id,
            "resource": resource.slug,
            "duplicateStrategy": self.duplicate_strategy,
            "mergeMode": self.merge_mode,
            "skipValidation": self.skip_validation,
            "createMissingReferences": self.create_missing_references,
            "staticValues": {ferry_key(resource, k): v for k, v in self.static_values.items()},
        }
        if self.duplicate_match_fields is not None:
            body["duplicateMatchFields"] = [ferry_key(resource, f) for f in self.duplicate_match_fields]
        if self.column_mapping is None:
            body["autoMap"] = True
        else:
            body["mapping"] = [
                {
                    "sourceColumn": m.source_column,
                    "targetFieldSlug": None if m.ignored else ferry_key(resource, m.target_field_slug),
                    "valueType": m.value_type.lower() if m.value_type else None,
                    "addressPart": m.address_part,
                }
                for m in self.column_mapping
            ]
        return body


def _import_source(caller: Principal, wanted: ImportBody) -> Upload:
    """The upload the rows are in: the rows sent, written as one, or the parsed file."""
    if (wanted.rows is None) == (wanted.file_id is None):
        raise ParameterError([Problem("rows", None, "give the rows, or the fileId of .../import/parse (one of them)")])
    if wanted.rows is not None:
        return rows_upload(caller, wanted.rows)
    return completed_upload(caller.workspace, wanted.file_id)


def _native_request(caller: Principal, resource: Resource, wanted: ImportBody, upload: Upload, options: tuple[str, ...]):
    try:
        body = wanted.native(resource, upload.upload_id)
        if "maxErrorRate" in options:  # Coherence's jobs complete and count their failed rows; they never fail for them
            body["maxErrorRate"] = 1
        request, _ = import_request(body, caller, options, source_url=False)
    except ParameterError as exc:
        raise ParameterError(renamed(exc.problems, _NAMES)) from None
    return request


def _error(item: dict[str, Any]) -> dict[str, Any]:
    return {"row": item.get("row"), "field": coherence_slug(item.get("field")), "value": item.get("value"), "error": item.get("error")}


@router.post("/v1/modules/{module}/import/validate", summary="Validate mapped data")
def validate(
    request: Request, module: str, body: dict[str, Any] = Depends(json_object), caller: Principal = require("imports.create")
) -> JSONResponse:
    resource = module_of(module)
    wanted: ImportBody = parsed(ImportBody, body)
    upload = _import_source(caller, wanted)
    native = _native_request(caller, resource, wanted, upload, VALIDATE_OPTIONS)
    options = native.model_dump(include={"duplicates", "match", "merge", "static_values", "create_missing_references", "skip_validation"})
    report = check_import_file(upload.path, native.resource, mapping=native.mapping, auto_map=native.auto_map, **options)
    record_api_call(
        caller, "api.import.validate", resource.slug, None, client_ip(request), {"adapter": "coherence", "uploadId": upload.upload_id}, None
    )
    warnings = [{"row": None, "field": None, "message": text} for text in report["warnings"]]
    return ok(
        {
            "isValid": report["errorRows"] == 0,
            "totalRows": report["totalRows"],
            "validRows": report["validRows"],
            "errorRows": report["errorRows"],
            "errors": [_error(e) for e in report["errors"]],
            "warnings": warnings,
        }
    )


def _reference_warnings(resource: Resource, record: ImportRecord | None) -> list[dict[str, Any]]:
    shown = []
    for w in record.reference_warnings if record else []:
        slug = w.get("field")
        label = resource.get_field(slug).label if slug and resource.has_field(slug) else slug
        shown.append(
            {
                "fieldSlug": coherence_slug(slug),
                "fieldLabel": label,
                "unresolvedValues": [v.get("value") for v in w.get("values", [])],
                "targetModuleSlug": w.get("resource"),
            }
        )
    return shown


def _execution(run_id: str, mode: str, resource: Resource, record: ImportRecord | None) -> dict[str, Any]:
    status = "pending" if record is None else ("completed" if record.status in ("success", "partial") else "failed")
    errors = [_error(e) for e in record.errors] if record else []
    if record is not None and record.status == "failed" and record.error and not errors:
        errors = [{"row": None, "field": None, "value": None, "error": record.error}]
    created = [str(i) for i in created_record_ids(run_id, resource.slug)] if record is not None and not record.dry_run else []
    return {
        "importJobId": run_id,
        "status": status,
        "processingMode": mode,
        "successRows": record.created_rows + record.updated_rows if record else 0,
        "errorRows": record.error_rows if record else 0,
        "skippedRows": record.skipped_rows if record else 0,
        "createdRecordIds": created,
        "errors": errors,
        "referenceWarnings": _reference_warnings(resource, record),
    }


@router.post("/v1/modules/{module}/import/execute", summary="Execute the import", dependencies=[STARTS_RUN], responses=STARTED)
def execute(
    request: Request,
    module: str,
    body: dict[str, Any] = Depends(json_object),
    caller: Principal = require("imports.create"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    resource = module_of(module)
    wanted: ImportBody = parsed(ImportBody, body)
    upload = _import_source(caller, wanted)
    native = _native_request(caller, resource, wanted, upload, IMPORT_OPTIONS)
    total = len(wanted.rows) if wanted.rows is not None else preview_file(upload.path, 0).total_rows
    mode = processing_mode(total)
    details = {
        "adapter": "coherence",
        "uploadId": upload.upload_id,
        "processingMode": mode,
        "totalRows": total,
        "aiMappingUsed": wanted.ai_mapping_used,
        "fileName": None if wanted.rows is not None else upload.filename,
        "duplicateStrategy": wanted.duplicate_strategy,
    }
    if mode == "sync":
        record = run_import(native.model_copy(update={"processing": "inline"}))
        details |= {"status": 200}
        record_api_call(caller, "api.import.sync", resource.slug, record.run_id, client_ip(request), details, upload.size_bytes)
        return ok(_execution(record.run_id, mode, resource, record))
    run_id = start_import(native, idempotency_key=run_key(caller, idempotency_key))
    record_api_call(caller, "api.import.start", resource.slug, run_id, client_ip(request), details | {"status": 202}, upload.size_bytes)
    location = f"/compat/coherence/v1/modules/{module}/import/jobs/{run_id}"
    return ok(_execution(run_id, mode, resource, None), status=202, headers={"Location": location})


# --- import jobs ----------------------------------------------------------------------------------


def import_job(facts: JobFacts, workspace: str) -> dict[str, Any]:
    """The seed's import job status."""
    view, record, details = facts.view, facts.record, facts.details
    request = view.request
    total = record.total_rows if isinstance(record, ImportRecord) else details.get("totalRows")
    status = "cancelled" if facts.rolled_back else _STATUS[view.status]
    if isinstance(record, ImportRecord):
        processed = record.processed_rows or (total if view.status == "succeeded" else 0)
    else:
        processed = round((total or 0) * view.progress / 100)
    source = Path(str(request.get("source") or ""))
    expires = facts.created_at + timedelta(days=get_settings().upload_retention_days) if facts.created_at else None
    return {
        "importJobId": view.id,
        "accountId": workspace,
        "moduleId": view.resource,
        "status": status,
        "processingMode": details.get("processingMode") or processing_mode(total or 0),
        "fileName": details["fileName"] if "fileName" in details else (source.name or None),
        "fileType": (record.file_type if isinstance(record, ImportRecord) else None) or (source.suffix.lstrip(".") or None),
        "totalRows": total or 0,
        "processedRows": processed or 0,
        "successRows": record.created_rows + record.updated_rows if isinstance(record, ImportRecord) else 0,
        "errorRows": record.error_rows if isinstance(record, ImportRecord) else 0,
        "skippedRows": record.skipped_rows if isinstance(record, ImportRecord) else 0,
        "aiMappingUsed": bool(details.get("aiMappingUsed", request.get("auto_map", False))),
        "duplicateStrategy": request.get("duplicates", "skip"),
        "createdDateTime": when(facts.created_at),
        "startedDateTime": when(view.started_at),
        "completedDateTime": when(view.completed_at) if view.status in ("succeeded", "failed", "cancelled") else None,
        "expiresDateTime": when(expires),
    }


def _job_of(job_id: str, resource: Resource, caller: Principal) -> JobFacts:
    try:
        facts = read_job(job_id, caller.workspace, "import")
    except RunNotFoundError:
        raise not_found("Import job not found") from None
    if facts.view.resource != resource.slug:
        raise not_found("Import job not found")
    return facts


@router.get("/v1/modules/{module}/import/jobs", summary="List import history")
def list_import_jobs(module: str, limit: int = Query(default=50, ge=1, le=100), caller: Principal = require("runs.read")) -> JSONResponse:
    resource = module_of(module)
    return ok([import_job(f, caller.workspace) for f in list_jobs(caller.workspace, "import", limit, resource=resource.slug)])


@router.get("/v1/modules/{module}/import/jobs/{job_id}", summary="Get job status")
def get_import_job(module: str, job_id: str, caller: Principal = require("runs.read")) -> JSONResponse:
    resource = module_of(module)
    return ok(import_job(_job_of(job_id, resource, caller), caller.workspace))


@router.delete("/v1/modules/{module}/import/jobs/{job_id}", summary="Rollback import", dependencies=[STARTS_RUN])
def rollback_import(request: Request, module: str, job_id: str, caller: Principal = require("runs.rollback")) -> JSONResponse:
    resource = module_of(module)
    facts = _job_of(job_id, resource, caller)
    record = roll_back_import(facts.view.id, f"api:{caller.key_id}")
    status = 200 if record.status == "success" else 409
    details = {"adapter": "coherence", "importRunId": facts.view.id, "deletedRows": record.deleted_rows, "status": status}
    record_api_call(caller, "api.import.rollback", resource.slug, record.run_id, client_ip(request), details, None)
    if record.status != "success":
        raise RollbackError(f"The rollback of import {facts.view.id} was refused: {record.error}", f"(rollback run {record.run_id})")
    return ok({"deletedCount": record.deleted_rows})
