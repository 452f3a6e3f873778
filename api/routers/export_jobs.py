"""``/v1/export-jobs``: the key's workspace's scheduled export jobs (the export-jobs seed), a thin layer over JobService.

A job is the Prefect deployment ``export-data/<name>``; the JSON and its
destination blocks are translated in :mod:`deployments.job_api`. Another
workspace's job is a 404, like a job that does not exist. Viewers read;
operators (and admins) write and run.

``POST /v1/export-jobs/{id}/runs`` records a run done elsewhere: it creates a
flow run of the job's deployment directly in a final state (``Completed`` for
``status: success``, ``Failed`` with ``error`` as its message for ``failed``;
tagged ``ferry-recorded``), whose persisted result is an ``ExportRecord`` of
the posted fields (in ``$FERRY_DATA_DIR/results`` or the configured result
storage). Nothing runs; the run appears in ``GET .../runs`` and ``GET /v1/runs/{id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api.auth import require
from api.body import json_object
from api.ratelimit import STARTS_RUN
from deployments.job_api import (
    JobBody,
    RunReport,
    create_job,
    delete_job,
    job_json,
    list_jobs,
    owned,
    record_run,
    replace_job,
)
from deployments.jobs import JobService
from deployments.service import record_api_call
from ferry.keys import Principal

router = APIRouter(tags=["export jobs"])


def _body(model) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}}}}


def _audit(request: Request, caller: Principal, action: str, job: dict[str, Any] | None, run_id: str | None = None, **details) -> None:
    """An audit entry for a change to a job, or a run of one (it moves the workspace's data)."""
    record_api_call(
        caller,
        action,
        (job or {}).get("resource"),
        run_id,
        request.client.host if request.client else None,
        {"job": (job or {}).get("name"), **details},
        getattr(request.state, "payload_bytes", None),
    )


def _job_links(job: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"/v1/export-jobs/{job['id']}"}


@router.get("/export-jobs", summary="The workspace's export jobs, by name")
def list_export_jobs(caller: Principal = require("export_jobs.read")) -> JSONResponse:
    return JSONResponse({"jobs": list_jobs(caller.workspace)})


@router.post("/export-jobs", status_code=201, summary="Create an export job", openapi_extra=_body(JobBody))
def create_export_job(
    request: Request, caller: Principal = require("export_jobs.write"), body: dict[str, Any] = Depends(json_object)
) -> JSONResponse:
    job = create_job(body, caller.workspace)
    _audit(request, caller, "api.export_job.create", job, status=201)
    return JSONResponse(job, status_code=201, headers=_job_links(job))


@router.get("/export-jobs/{job_id}", summary="One export job")
def get_export_job(job_id: str, caller: Principal = require("export_jobs.read")) -> JSONResponse:
    return JSONResponse(job_json(owned(job_id, caller.workspace)))


@router.put("/export-jobs/{job_id}", summary="Replace an export job (send the full object)", openapi_extra=_body(JobBody))
def replace_export_job(
    request: Request, job_id: str, caller: Principal = require("export_jobs.write"), body: dict[str, Any] = Depends(json_object)
) -> JSONResponse:
    job = replace_job(job_id, body, caller.workspace)
    _audit(request, caller, "api.export_job.update", job, status=200)
    return JSONResponse(job)


@router.delete("/export-jobs/{job_id}", status_code=204, summary="Delete an export job and all its run history")
def delete_export_job(request: Request, job_id: str, caller: Principal = require("export_jobs.write")) -> Response:
    job = job_json(owned(job_id, caller.workspace))
    delete_job(job_id, caller.workspace)
    _audit(request, caller, "api.export_job.delete", job, status=204)
    return Response(status_code=204)


@router.post("/export-jobs/{job_id}/pause", summary="Pause: the schedule stops, configuration and history stay")
def pause_export_job(job_id: str, caller: Principal = require("export_jobs.write")) -> JSONResponse:
    return JSONResponse(job_json(JobService().pause(owned(job_id, caller.workspace).id)))


@router.post("/export-jobs/{job_id}/resume", summary="Resume: the schedule restarts at its next cron match")
def resume_export_job(job_id: str, caller: Principal = require("export_jobs.write")) -> JSONResponse:
    return JSONResponse(job_json(JobService().resume(owned(job_id, caller.workspace).id)))


@router.get("/export-jobs/{job_id}/runs", summary="The job's runs, newest first")
def list_job_runs(
    job_id: str, caller: Principal = require("export_jobs.read"), limit: int = Query(default=50, ge=1, le=200)
) -> JSONResponse:
    return JSONResponse({"runs": [run.to_json() for run in JobService().runs(owned(job_id, caller.workspace).id, limit)]})


@router.post("/export-jobs/{job_id}/runs", status_code=201, summary="Record a run done elsewhere", openapi_extra=_body(RunReport))
def record_job_run(
    job_id: str, caller: Principal = require("export_jobs.write"), body: dict[str, Any] = Depends(json_object)
) -> JSONResponse:
    run = record_run(job_id, caller.workspace, body)
    return JSONResponse(run.to_json(), status_code=201, headers={"Location": f"/v1/runs/{run.id}"})


@router.post("/export-jobs/{job_id}/run-now", status_code=202, summary="Start a run now (also while paused)", dependencies=[STARTS_RUN])
def run_export_job_now(request: Request, job_id: str, caller: Principal = require("export_jobs.run")) -> JSONResponse:
    job = owned(job_id, caller.workspace)
    run = JobService().run_now(job.id)
    _audit(request, caller, "api.export_job.run_now", job_json(job), run.id, status=202)
    links = {"self": f"/v1/runs/{run.id}", "job": f"/v1/export-jobs/{run.job_id}", "jobRuns": f"/v1/export-jobs/{run.job_id}/runs"}
    body = {"id": run.id, "jobId": run.job_id, "status": "queued", "links": links}
    return JSONResponse(body, status_code=202, headers={"Location": links["self"]})
