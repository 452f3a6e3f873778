"""What the Coherence routes share: the error envelope, the ``{success, data}`` answer, modules, field slugs, times.

A *module* is a Ferry resource, named by its slug or an alias (``contacts``,
``accounts``, ``events``, ``profiles``, ...). A Coherence *field slug* is a
Ferry field in camelCase (``firstName``, ``lifecycleStage``) or what the
native mapping suggestion makes of it (``displayName`` -> ``full_name``,
``account`` -> ``company``), and ``<x>DateTime`` is ``<x>_at``
(``createdDateTime`` -> ``created_at``); Ferry answers with the camelCase form
(``full_name`` -> ``fullName``, ``created_at`` -> ``createdDateTime``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.alias_generators import to_camel, to_snake

from api.compat.base import vendor_router
from api.problems import Failure
from deployments.inline import suggest_columns
from ferry.catalog import FieldType, Resource, get_resource
from ferry.errors import FerryError, ParameterError, Problem, RunNotFoundError, UnknownResourceError

#: The seed's messages, by status, for what it documents (the message of every other error is Ferry's own).
ACCESS_DENIED = "Access denied"
FILE_TOO_LARGE = "File too large"
#: Coherence's data types by Ferry's field types (a multi-value field is its values' type: phone).
DATA_TYPES = {
    FieldType.TEXT: "text",
    FieldType.EMAIL: "email",
    FieldType.PHONE: "phone",
    FieldType.URL: "url",
    FieldType.INTEGER: "number",
    FieldType.NUMBER: "number",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.ENUM: "select",
    FieldType.JSON: "json",
    FieldType.REFERENCE: "reference",
    FieldType.ADDRESS: "address",
}


class ErrorDetail(BaseModel):
    code: int = Field(description="The HTTP status.")
    message: str = Field(description="The seed's message (`Module not found`, `Access denied`, ...), else Ferry's.")
    details: list[dict[str, Any]] = Field(description="`[{field, value, reason}]`: every problem at once.")


class CoherenceError(BaseModel):
    success: bool = Field(description="Always false.")
    error: ErrorDetail


def render(request: Request, failure: Failure) -> JSONResponse:
    """``{"success": false, "error": {"code", "message", "details"}}``; a file over the limit is Coherence's 400."""
    status, message, details = failure.status, failure.detail, list(failure.errors or [])
    if status == 413:
        status, details, message = 400, [{"field": "file", "value": None, "reason": message}], FILE_TOO_LARGE
    elif status == 403:
        details, message = [{"field": None, "value": None, "reason": message}], ACCESS_DENIED
    elif failure.errors is not None:
        message = message.splitlines()[0].rstrip(":.")
    body = {"success": False, "error": {"code": status, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=failure.headers)


router = vendor_router(render, CoherenceError, "compat: coherence")


class Answer(BaseModel):
    success: bool = Field(description="Always true.")
    data: Any = Field(description="What was asked for.")


#: An answer started in the background: 202 and the job (``Location``).
STARTED = {202: {"model": Answer, "description": "Started in the background: the job, followed at `Location`."}}


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status, headers=headers)


def not_found(message: str) -> FerryError:
    """A 404 with exactly the seed's message (``Module not found``, ``Import job not found``)."""
    return RunNotFoundError(message)


def module_of(module: str) -> Resource:
    try:
        return get_resource(module)
    except UnknownResourceError:
        raise not_found("Module not found") from None


def when(value: datetime | None) -> str | None:
    """``2024-01-15T10:30:00Z``."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parsed(model: type[BaseModel], body: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from ferry.errors import problems_from_validation

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body")) from None


# --- field slugs ------------------------------------------------------------------------------------


def coherence_slug(key: str | None) -> str | None:
    """A Ferry field slug or column key as Coherence names it: ``first_name`` -> ``firstName``, ``phone.mobile`` -> ``phone``."""
    if not key:
        return None
    slug = key.split(".", 1)[0]
    if slug.endswith("_at"):
        return to_camel(slug[:-3]) + "DateTime"
    return to_camel(slug)


def ferry_key(resource: Resource, slug: Any) -> Any:
    """The Ferry field slug or column key a Coherence slug names; what it is (snake_case) when nothing matches."""
    if not isinstance(slug, str) or not slug:
        return slug
    snake = ".".join(to_snake(part) for part in slug.split("."))
    if resource.has_field(snake) or resource.column(snake) is not None:
        return snake
    if snake == "display_name" and resource.has_field("name"):  # Coherence's record name: an account's, a list's
        return "name"
    if (dated := re.fullmatch(r"(.+)_date_time", snake)) and resource.has_field(f"{dated[1]}_at"):
        return f"{dated[1]}_at"
    if resource.importable:
        try:
            (suggestion,), _ = suggest_columns([slug], [], resource.slug)
        except ParameterError:
            return snake
        if suggestion.target_key is not None:
            return suggestion.target_key
    return snake


def target_fields(fields: list[dict]) -> list[dict]:
    """The native target fields (``deployments.service``) as Coherence's ``{fieldSlug, label, dataType}``."""
    shown = []
    for f in fields:
        kind = FieldType(f["type"])
        data_type = DATA_TYPES.get(kind, "phone" if kind is FieldType.MULTI_VALUE else "text")
        entry = {"fieldSlug": coherence_slug(f["slug"]), "label": f["label"], "dataType": data_type, "required": f["required"]}
        if f["valueTypes"]:
            entry["valueTypes"] = [v.capitalize() for v in f["valueTypes"]]
        if f["addressParts"]:
            entry["addressParts"] = f["addressParts"]
        shown.append(entry)
    return shown


def renamed(problems: list[Problem], names: dict[str, str]) -> list[Problem]:
    """Problems named as the Coherence body names them (``mapping[0]`` -> ``columnMapping[0]``, ``uploadId`` -> ``fileId``)."""
    out = []
    for p in problems:
        head, rest = re.match(r"([A-Za-z_]*)(.*)", p.field, re.S).groups()
        out.append(Problem(names.get(p.field) or names.get(head, head) + rest, p.value, p.reason))
    return out
