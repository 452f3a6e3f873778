"""The OpenAPI document tells the truth about errors: every operation's error answers are problem documents.

FastAPI documents a 422 as its own ``HTTPValidationError``; Ferry answers every
error, 422 included, as an RFC 9457 problem (api/problems.py). This rewrites
the generated document once: the ``Problem`` schema as a component, each
documented 4xx/5xx with ``application/problem+json`` and a ``default`` answer
for the rest (a vendor adapter's routes declare their vendor's error model as
``default`` instead, api/compat/base.py), so a client generator (and schemathesis) sees what is sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_JSON
from api.schemas import Problem

_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": _REF}}


def install(app: FastAPI) -> None:
    """Serve the rewritten document at ``app.openapi_url``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = problem_answers(document)
        return app.openapi_schema

    app.openapi = openapi


def problem_answers(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schemas["Problem"].pop("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            default = responses.setdefault("default", {"description": "An error (RFC 9457 problem document).", "content": _PROBLEM_CONTENT})
            for status, answer in responses.items():
                declared = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if status != "default" and int(status) >= 400 and (not declared or "HTTPValidationError" in str(declared)):
                    answer["content"] = default["content"]  # the problem document, or an adapter's own error model
    return document
