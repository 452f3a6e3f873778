"""Errors as RFC 9457 problem documents (``application/problem+json``), every problem at once.

A Ferry error's type decides the status (never its message); its message and
hint become ``detail``; a ParameterError lists each problem in ``errors`` as
``{field, value, reason}``. ``instance`` is the request id (``X-Request-Id``).
Values of secret-looking fields are never echoed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferry import errors as e

PROBLEM_JSON = "application/problem+json"

#: Status per error type; the first match in this order wins (subclasses before their bases).
STATUS: list[tuple[type[Exception], int]] = [
    (e.AuthenticationError, 401),
    (e.PermissionDeniedError, 403),
    (e.RateLimitedError, 429),
    (e.MalformedRequestError, 400),
    (e.UnsupportedMediaTypeError, 415),
    (e.PayloadTooLargeError, 413),
    (e.ParameterError, 422),
    (e.IdempotencyKeyReusedError, 422),
    (e.UnknownWorkspaceError, 404),
    (e.RunNotFoundError, 404),
    (e.UploadNotFoundError, 404),
    (e.ReportNotFoundError, 404),
    (e.UploadStateError, 409),
    (e.RollbackError, 409),
    (e.SourceFileError, 422),
    (e.JobNotFoundError, 404),
    (e.UnknownResourceError, 422),
    (e.JobExistsError, 409),
    (e.RunStateError, 409),
    (e.ConfigurationError, 503),
    (e.StoreError, 503),
    (e.DestinationError, 502),
    (e.SourceError, 502),
]
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid parameters",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}


def status_of(exc: Exception) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


def problem(request: Request, status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://ferry.dev/problems/{status}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": getattr(request.state, "request_id", None),
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


@dataclass(frozen=True)
class Failure:
    """What an error says to a client, whatever the body's shape (a problem document here, a vendor's error in api/compat)."""

    status: int
    detail: str
    errors: list[dict] | None = None
    headers: dict[str, str] | None = None


def field_errors(problems: list[e.Problem]) -> list[dict]:
    """``[{field, value, reason}]``, secret-looking values as ``***``."""
    return [{"field": p.field, "value": _shown(p.field, p.value), "reason": p.reason} for p in problems]


def _shown(field: str, value: Any) -> Any:
    if e.looks_secret(field):
        return "***"
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


def failure_of(exc: Exception) -> Failure:
    """The status, detail, field errors and headers of a Ferry error or a request FastAPI could not validate."""
    if isinstance(exc, RequestValidationError):
        raw = exc.errors()
        if any(err.get("type") == "json_invalid" for err in raw):
            return Failure(400, "The request body is not valid JSON.")
        problems = e.problems_from_validation(
            [{**err, "loc": tuple(p for p in err.get("loc", ()) if p != "body")} for err in raw], root="body"
        )
        return Failure(422, f"{len(problems)} invalid parameter(s).", field_errors(problems))
    if not isinstance(exc, e.FerryError):
        raise TypeError(f"not a client error: {type(exc).__name__}")
    status = status_of(exc)
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="ferry", ApiKey header="x-api-key"')
    errors = field_errors(exc.problems) if isinstance(exc, e.ParameterError) else None
    return Failure(status, str(exc), errors, headers or None)


async def _client_error(request: Request, exc: Exception) -> JSONResponse:
    failure = failure_of(exc)
    return problem(request, failure.status, failure.detail, failure.errors, failure.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    import logging

    logging.getLogger("ferry.api").exception("Unexpected error in %s %s", request.method, request.url.path)
    return problem(request, 500, f"An unexpected {type(exc).__name__}; the API's log holds the details.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.FerryError, _client_error)
    app.add_exception_handler(RequestValidationError, _client_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
