"""What every adapter shares: a router whose errors come out in the vendor's own shape.

The native API answers errors as problem documents (api/problems.py). A vendor's
client expects its vendor's error body, so an adapter's router catches the same
errors (told apart by type, ``api.problems.failure_of``) and renders them with
the adapter's ``render`` function: same status, same headers (``WWW-Authenticate``,
``Retry-After``), the vendor's body. The OpenAPI document shows the vendor's error
model as each operation's ``default`` answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from api.problems import Failure, failure_of
from ferry.errors import FerryError

#: Renders one failure as the vendor's error response.
Render = Callable[[Request, Failure], Response]


@dataclass(frozen=True)
class Adapter:
    prefix: str
    router: APIRouter
    render: Render


def vendor_router(render: Render, error_model: type[BaseModel], tag: str) -> APIRouter:
    """An APIRouter whose Ferry and validation errors are answered by ``render``."""

    class VendorRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except (FerryError, RequestValidationError) as exc:
                    return render(request, failure_of(exc))

            return answer

    default = {"model": error_model, "description": f"An error, in {tag}'s shape."}
    return APIRouter(route_class=VendorRoute, tags=[tag], responses={"default": default})


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
