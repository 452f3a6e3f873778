"""``GET /v1/files/{run_id}?expires=...&signature=...``: an export file in local managed storage, through a signed URL.

No API key: like an S3 presigned URL, the signed, expiring URL is the
permission (``GET /v1/runs/{id}/download`` mints one for a key that may download).
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from deployments.service import local_export_file

router = APIRouter(tags=["files"])


@router.get("/files/{run_id}", summary="Download an export's file through its signed URL", response_class=FileResponse)
def get_file(run_id: str, expires: int = Query(...), signature: str = Query(..., min_length=64, max_length=64)) -> FileResponse:
    path = local_export_file(run_id, expires, signature)
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")
