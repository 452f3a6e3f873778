"""``Idempotency-Key`` on a POST: the first answer for a repeat, 422 for another body, 409 while the first runs.

Applies to every JSON ``POST`` that carries the header (the native routes that
start work, and the vendor adapters' alike); the rules and the store are
:mod:`ferry.idempotency`. Only a successful JSON answer (2xx) is kept; a
failed request, or one answered with a file (``Prefer: respond=sync``), gives
its key up, so a retry runs again. A replayed answer carries
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from api.problems import Failure
from ferry import idempotency
from ferry.store.engine import get_engine

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
#: Response headers a replay repeats (the rest, such as the rate limit and request id, belong to the new request).
_REPLAYED_HEADERS = ("location", "x-ferry-run-id", "preference-applied")


def applies(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return request.method == "POST" and HEADER in request.headers and (not content_type or "json" in content_type)


async def answer(request: Request, scope: str, call_next, refuse: Callable[[Request, Failure], Response]) -> Response:
    """The response to an idempotent POST: replayed, refused (``refuse`` renders why), or the app's own (then kept)."""
    key = request.headers[HEADER].strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        reason = f"must be 1 to {MAX_KEY_LENGTH} characters"
        return refuse(
            request, Failure(422, "Invalid Idempotency-Key.", [{"field": "Idempotency-Key", "value": key[:40], "reason": reason}])
        )
    engine = get_engine()
    request_fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
    found = await run_in_threadpool(idempotency.claim, engine, scope, key, request_fingerprint)
    if found.outcome == "mismatch":
        detail = "This Idempotency-Key was used for another request (method, path or body); use a new key for a new request."
        return refuse(
            request, Failure(422, detail, [{"field": "Idempotency-Key", "value": key, "reason": "already used with another body"}])
        )
    if found.outcome == "in_flight":
        detail = "The first request with this Idempotency-Key is still being answered; retry shortly for its answer."
        return refuse(request, Failure(409, detail, headers={"Retry-After": "1"}))
    if found.outcome == "replay":
        kept = found.response or {}
        headers = {**kept.get("headers", {}), "Idempotent-Replayed": "true"}
        return JSONResponse(kept.get("body"), status_code=found.status_code or 200, headers=headers)
    try:
        response = await call_next(request)
    except BaseException:
        await run_in_threadpool(idempotency.release, engine, scope, key)
        raise
    if not (200 <= response.status_code < 300 and "json" in response.headers.get("content-type", "")):
        await run_in_threadpool(idempotency.release, engine, scope, key)
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])
    kept = {"headers": {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}, "body": json.loads(body or b"null")}
    await run_in_threadpool(idempotency.complete, engine, scope, key, response.status_code, kept)
    return Response(body, status_code=response.status_code, headers=dict(response.headers), media_type=response.media_type)


def run_key(caller, idempotency_key: str | None) -> str | None:
    """The key Prefect's ``run_deployment`` gets for a run a request starts: namespaced per workspace and API key."""
    return f"ferry-api:{caller.workspace}:{caller.key_id}:{idempotency_key}" if idempotency_key else None
