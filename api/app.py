"""The application: routers under ``/v1``, problem+json errors, a request id and rate limits on every response, idempotent POSTs."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from starlette.responses import Response

from api import idempotency, openapi, problems
from api.auth import presented_key
from api.compat import ADAPTERS, error_response
from api.problems import Failure
from api.ratelimit import RateLimiter, caller_identity
from api.routers import audit, export_jobs, exports, files, health, imports, reports, runs, uploads

DESCRIPTION = """Ferry's native API: start exports, follow runs, download files through signed URLs.

Authenticate with an API key (`x-api-key: KEY` or `Authorization: Bearer KEY`; `ferry keys create`).
A key sees one workspace; every other workspace's objects are 404. Errors are RFC 9457 problem documents.
"""


def create_app() -> FastAPI:
    app = FastAPI(title="Ferry", version="1", description=DESCRIPTION, openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    problems.install(app)
    openapi.install(app)
    limiter = app.state.limiter = RateLimiter()

    @app.middleware("http")
    async def context(request: Request, call_next) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        caller = caller_identity(presented_key(request), request.client.host if request.client else None)
        verdict = limiter.check(caller)
        if not verdict.allowed:
            response = error_response(request, Failure(429, f"Rate limit {verdict.policy!r} reached; try again in {verdict.reset} s."))
        elif idempotency.applies(request):
            response = await idempotency.answer(request, caller, call_next, error_response)
        else:
            response = await call_next(request)
        if "RateLimit-Policy" not in response.headers:  # a run budget's 429 says its own budget
            response.headers.update(verdict.headers())
        response.headers["X-Request-Id"] = request.state.request_id
        return response

    app.include_router(health.router, prefix="/v1")
    app.include_router(exports.router, prefix="/v1")
    app.include_router(runs.router, prefix="/v1")
    app.include_router(export_jobs.router, prefix="/v1")
    app.include_router(audit.router, prefix="/v1")
    app.include_router(files.router, prefix="/v1")
    app.include_router(uploads.router, prefix="/v1")
    app.include_router(reports.router, prefix="/v1")
    app.include_router(imports.router, prefix="/v1")
    for adapter in ADAPTERS:
        app.include_router(adapter.router, prefix=adapter.prefix)
    return app
