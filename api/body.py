"""Reading a JSON body the way every POST does: 415 without a JSON content type, 400 when it is not JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic.alias_generators import to_snake

from ferry.errors import MalformedRequestError, ParameterError, Problem, UnsupportedMediaTypeError


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(f"The body must be JSON (Content-Type: application/json), not {content_type or 'nothing'!r}.")
    try:
        body = json.loads(await request.body() or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequestError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ParameterError([Problem("body", type(body).__name__, "must be a JSON object")])
    request.state.payload_bytes = len(await request.body())
    return body


def snake_keys(body: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """camelCase keys as the models' snake_case names (snake_case passes through; ``keep`` stays as is)."""
    return {key if key in keep else to_snake(key): value for key, value in body.items()}
