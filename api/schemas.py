"""The shapes the API answers with, where no service model already is one (the OpenAPI document declares them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from deployments.run_views import RunView


class ProblemField(BaseModel):
    field: str = Field(description="The parameter, as the request named it (`filters[0].op`).")
    value: Any = Field(default=None, description="The value given (secret-looking ones as `***`).")
    reason: str = Field(description="Why it is refused and what to send instead.")


class Problem(BaseModel):
    """An error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request id (`X-Request-Id`).")
    errors: list[ProblemField] | None = Field(default=None, description="Every problem of the request at once.")


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RunStarted(_Camel):
    """A run was started (202): follow it at ``links.self``."""

    id: str = Field(description="The Prefect flow run id.")
    status: Literal["queued"]
    links: dict[str, str]


class RunList(_Camel):
    runs: list[RunView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Check(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    prefect: Check
    store: Check
