"""``GET /v1/audit-events``: who moved which data of the workspace (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.auth import require
from ferry.audit import read_audit
from ferry.keys import Principal
from ferry.store.engine import get_engine

router = APIRouter(tags=["audit"])


@router.get("/audit-events", summary="The workspace's audit log, newest first")
def list_audit_events(caller: Principal = require("audit.read"), limit: int = Query(default=100, ge=1, le=1000)) -> JSONResponse:
    return JSONResponse({"events": read_audit(get_engine(), caller.workspace, limit)})
