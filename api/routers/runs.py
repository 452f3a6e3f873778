"""``/v1/runs``: the workspace's runs, one run's status and outcome, and a fresh download URL for its file."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from api.auth import require
from api.schemas import RunList
from deployments.run_views import RunView, list_run_views, read_run_view
from deployments.service import fresh_download_link, record_api_call
from ferry.errors import FerryError, RunStateError
from ferry.keys import Principal
from ferry.roles import allows

router = APIRouter(tags=["runs"])


@router.get("/runs", summary="The workspace's runs, newest first", responses={200: {"model": RunList}})
def list_runs(
    request: Request,
    caller: Principal = require("runs.read"),
    kind: Literal["export", "import", "rollback"] | None = None,
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = None,
) -> JSONResponse:
    views, next_cursor = list_run_views(caller.workspace, kind, limit, cursor)
    body = {"runs": [v.to_json() for v in views], "nextCursor": next_cursor}
    headers = {}
    if next_cursor:
        query = f"limit={limit}&cursor={next_cursor}" + (f"&kind={kind}" if kind else "")
        headers["Link"] = f'</v1/runs?{query}>; rel="next"'
    return JSONResponse(body, headers=headers)


@router.get("/runs/{run_id}", summary="One run: status, progress, counts, file", responses={200: {"model": RunView}})
def get_run(request: Request, run_id: str, caller: Principal = require("runs.read")) -> JSONResponse:
    view = read_run_view(run_id, caller.workspace)
    if view.kind == "export" and view.status == "succeeded" and allows(caller.role, "runs.download"):
        try:
            link = fresh_download_link(run_id, base_url=str(request.base_url))
            view = view.model_copy(update={"download_url": link.url, "download_url_expires_at": link.expires_at})
        except FerryError:  # the storage cannot sign URLs, or the file is gone: the run is shown without one
            pass
    return JSONResponse(view.to_json())


@router.get("/runs/{run_id}/download", summary="A fresh signed URL for a finished export's file (302 to it)")
def download(request: Request, run_id: str, caller: Principal = require("runs.download"), redirect: bool = True):
    view = read_run_view(run_id, caller.workspace)
    if view.kind != "export" or view.status != "succeeded":
        raise RunStateError(f"Run {run_id} is not a finished export ({view.kind}, {view.status}).", "Only a succeeded export has a file.")
    link = fresh_download_link(run_id, base_url=str(request.base_url))
    record_api_call(
        caller,
        "api.export.download",
        view.resource,
        run_id,
        request.client.host if request.client else None,
        {"location": link.location, "status": 302 if redirect else 200},
        view.file_size,
    )
    if redirect:
        return RedirectResponse(link.url, status_code=302)
    return JSONResponse({"url": link.url, "expiresAt": link.expires_at.isoformat(), "location": link.location})
