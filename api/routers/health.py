"""``GET /v1/health``: is the service usable? (No key needed.)"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.schemas import Health
from deployments.service import health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Prefect and the store reachable",
    responses={200: {"model": Health}, 503: {"model": Health, "description": "Prefect or the store does not answer."}},
)
def get_health() -> JSONResponse:
    checks = health()
    ok = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)
