"""Vendor-compatible adapters: the APIs Ferry is modelled on, each a thin router under ``/compat/<vendor>``.

A client written against one of those products works against Ferry by changing
its base URL and key. Each adapter only translates: the vendor's request into
the native service calls (``deployments.*``, the same ones ``/v1`` uses) and the
native result back into the vendor's response shape, errors included
(:mod:`api.compat.base`). Auth, roles, rate limits, idempotency, audit and the
Prefect run history are the native ones. Where a vendor's document is silent,
the adapter's docstring says what Ferry chose.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from api.compat import coherence, connectif, cordial, sendora
from api.compat.base import Adapter
from api.problems import Failure, problem

#: Every adapter, mounted by api/app.py under its prefix.
ADAPTERS: list[Adapter] = [
    Adapter("/compat/coherence", coherence.router, coherence.render),
    Adapter("/compat/connectif", connectif.router, connectif.render),
    Adapter("/compat/cordial", cordial.router, cordial.render),
    Adapter("/compat/sendora", sendora.router, sendora.render),
]


def error_response(request: Request, failure: Failure) -> Response:
    """An error answered outside a route (rate limit, idempotency): in the adapter's shape under its prefix, else a problem."""
    for adapter in ADAPTERS:
        if request.url.path.startswith(adapter.prefix + "/"):
            return adapter.render(request, failure)
    return problem(request, failure.status, failure.detail, failure.errors, failure.headers)
