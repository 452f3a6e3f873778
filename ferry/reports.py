"""Saved reports: a named export definition of a workspace (``ferry reports``, ``/v1/reports``, Coherence's report exports).

A report is what to export, saved under a name: the resource, its columns
(``fields``, in order), header ``labels``, ``filters``, ``sort``, and the
``title`` and ``description`` a PDF prints above the table. It holds no format:
that is chosen each time it is exported (:func:`export_request`), to any format
an export has.

A definition is validated as the export request it becomes (``ferry.params``),
so every problem (unknown resource, columns, filters on columns the resource
lacks, labels of columns not exported, a taken name) is listed at once, named
as the report's JSON names it. Reports live in the store's ``reports`` table,
one workspace each: asking for another workspace's report is the same
:class:`~ferry.errors.ReportNotFoundError` as asking for one that never
existed. Ids look like ``rpt_<24 hex>``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel, to_snake
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ferry.columns import FieldFilter
from ferry.errors import ParameterError, Problem, ReportNotFoundError, problems_from_validation
from ferry.params import ExportRequest, SortSpec, parse_request
from ferry.store.engine import workspace_id
from ferry.store.schema import reports
from ferry.workspaces import store_errors, to_store, utc

ID_PREFIX = "rpt_"
NAME_MAX = 200
#: The definition's fields: what is stored as JSON (the name has a column of its own).
DEFINITION = ("resource", "fields", "labels", "filters", "sort", "title", "description")
#: Set by the store: ignored when a client sends them back (a GET's body PUT again).
READ_ONLY = ("id", "workspace", "created_at", "updated_at")
#: Export options chosen when a report is exported (besides the definition), as ExportRequest names them.
EXPORT_OPTIONS = (
    "format",
    "title",
    "description",
    "limit",
    "delimiter",
    "header",
    "date_format",
    "gzip",
    "filename",
    "neutralize_formulas",
    "notify_email",
    "notify_webhook",
    "destination",
)


class Report(BaseModel):
    """One saved report. JSON names are camelCase (``createdAt``); snake_case is accepted too."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    id: str | None = Field(default=None, description="`rpt_<24 hex>`, given by the store.")
    workspace: str | None = Field(default=None, description="The workspace the report belongs to.")
    name: str = Field(description=f"The report's name, unique in its workspace (1-{NAME_MAX} characters).")
    resource: str = Field(description="Resource slug or alias, e.g. `contacts`.")
    fields: list[str] | None = Field(default=None, description="Columns, in order (as an export's `fields`). Default: every column.")
    labels: dict[str, str] = Field(default_factory=dict, description="Header names: column key -> label.")
    filters: list[FieldFilter] = Field(default_factory=list, description="Field filters, all of which must hold.")
    sort: SortSpec | None = Field(default=None, description="Sort order: `{field, direction}` or `field:desc`.")
    title: str | None = Field(default=None, description="Title of the PDF (default: the report's name).")
    description: str | None = Field(default=None, description="Printed under the PDF's title.")
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("sort", mode="before")
    @classmethod
    def _parse_sort(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, direction = value.partition(":")
            return {"field": name.strip(), "direction": (direction or "asc").strip().lower()}
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def definition(self) -> dict[str, Any]:
        """What is stored as JSON: the definition's fields, snake_case."""
        return self.model_dump(mode="json", include=set(DEFINITION), exclude_none=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def export_request(self, workspace: str, options: dict[str, Any] | None = None, actor: str = "ferry") -> ExportRequest:
        """The export this report is, with ``options`` chosen now (``format``, ...): every problem at once (ParameterError).

        The PDF's title is the report's title, else its name; ``options`` may
        override title and description for one export.
        """
        problems = [
            Problem(key, value, f"not an option of a report's export; use {', '.join(to_camel(o) for o in EXPORT_OPTIONS)}")
            for key, value in (options or {}).items()
            if to_snake(key) not in EXPORT_OPTIONS
        ]
        data = {**self.definition(), "title": self.title or self.name}
        data |= {to_snake(k): v for k, v in (options or {}).items() if to_snake(k) in EXPORT_OPTIONS and v is not None}
        data |= {"workspace": workspace, "actor": actor}
        try:
            request = parse_request(data)
        except ParameterError as exc:
            raise ParameterError(problems + exc.problems) from None
        if problems:
            raise ParameterError(problems)
        return request


def _name_problems(name: str) -> list[Problem]:
    shown = name.strip()
    if not shown or len(shown) > NAME_MAX or any(ord(c) < 32 for c in shown):
        return [Problem("name", name, f"give 1-{NAME_MAX} characters of text, without control characters")]
    return []


def parse_report(data: dict[str, Any] | Report) -> Report:
    """``data`` as a report definition: every problem at once, the export's own checks included (ParameterError).

    Read-only fields (``id``, ``workspace``, ``createdAt``, ``updatedAt``) are
    ignored, so a report read back can be sent again as it is.
    """
    if isinstance(data, Report):
        data = data.model_dump(exclude_none=True)
    known = {to_snake(name) for name in Report.model_fields}
    problems = [
        Problem(key, value, f"not a field of a report; use name, {', '.join(to_camel(d) for d in DEFINITION)}")
        for key, value in data.items()
        if to_snake(key) not in known
    ]
    data = {key: value for key, value in data.items() if to_snake(key) in known and to_snake(key) not in READ_ONLY}
    if isinstance(data.get("name"), str):
        problems += _name_problems(data["name"])
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:  # types first: the export's checks need them
        raise ParameterError(problems + problems_from_validation(exc.errors(), root="report")) from None
    try:
        parse_request({**report.definition(), "workspace": "-"})
    except ParameterError as exc:
        problems += exc.problems
    if problems:
        raise ParameterError(problems)
    return report.model_copy(update={"name": report.name.strip()})


# --- the store ------------------------------------------------------------------------------------


def _not_found(report_id: object) -> ReportNotFoundError:
    return ReportNotFoundError(
        f"No report {report_id} in this workspace.", "List the workspace's reports: `ferry reports list` or GET /v1/reports."
    )


def _taken(name: str) -> Problem:
    return Problem("name", name, "a report of this name exists already in the workspace; pick another name")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _row_report(row, workspace: str) -> Report:
    return Report(
        id=row.id,
        workspace=workspace,
        name=row.name,
        **(row.definition or {}),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def _check_name(conn, ws: int, name: str, other_than: str | None = None) -> list[Problem]:
    query = select(reports.c.id).where(reports.c.workspace_id == ws, reports.c.name == name)
    found = conn.execute(query).scalar_one_or_none()
    return [_taken(name)] if found is not None and found != other_than else []


def _write(engine: Engine, workspace: str, data: dict[str, Any] | Report, report_id: str | None) -> Report:
    """Insert (``report_id`` None) or replace a report: one ParameterError with every problem, a taken name included."""
    problems: list[Problem] = []
    try:
        report = parse_report(data)
    except ParameterError as exc:
        report, problems = None, exc.problems
    name = report.name if report else (data.get("name") if isinstance(data, dict) else None)
    now = _now()
    with store_errors(engine):
        try:
            with engine.begin() as conn:
                ws = workspace_id(conn, workspace)
                if report_id is not None:
                    created = conn.execute(
                        select(reports.c.created_at).where(reports.c.id == report_id, reports.c.workspace_id == ws)
                    ).scalar_one_or_none()
                    if created is None:
                        raise _not_found(report_id)
                if isinstance(name, str) and name.strip():
                    problems += _check_name(conn, ws, name.strip(), other_than=report_id)
                if problems:
                    raise ParameterError(problems)
                values = {"name": report.name, "definition": report.definition(), "updated_at": to_store(now)}
                if report_id is None:
                    report_id = ID_PREFIX + secrets.token_hex(12)
                    created = to_store(now)
                    conn.execute(insert(reports).values(id=report_id, workspace_id=ws, created_at=created, **values))
                else:
                    conn.execute(update(reports).where(reports.c.id == report_id, reports.c.workspace_id == ws).values(**values))
        except IntegrityError:  # the name was taken between the check and the write
            raise ParameterError([_taken(report.name)]) from None
    return report.model_copy(update={"id": report_id, "workspace": workspace, "created_at": utc(created), "updated_at": now})


def create_report(engine: Engine, workspace: str, data: dict[str, Any] | Report) -> Report:
    """Save a new report in ``workspace``; every problem with it at once (ParameterError)."""
    return _write(engine, workspace, data, None)


def replace_report(engine: Engine, workspace: str, report_id: str, data: dict[str, Any] | Report) -> Report:
    """Replace report ``report_id`` of ``workspace`` with ``data`` (the whole definition); its id and created time stay."""
    return _write(engine, workspace, data, report_id)


def list_reports(engine: Engine, workspace: str) -> list[Report]:
    """The workspace's reports, by name."""
    with store_errors(engine), engine.connect() as conn:
        ws = workspace_id(conn, workspace)
        rows = conn.execute(select(reports).where(reports.c.workspace_id == ws).order_by(reports.c.name, reports.c.id)).all()
    return [_row_report(row, workspace) for row in rows]


def get_report(engine: Engine, workspace: str, report_id: str) -> Report:
    """Report ``report_id`` of ``workspace``; ReportNotFoundError when there is none (or it is another workspace's)."""
    with store_errors(engine), engine.connect() as conn:
        ws = workspace_id(conn, workspace)
        row = conn.execute(select(reports).where(reports.c.id == str(report_id), reports.c.workspace_id == ws)).first()
    if row is None:
        raise _not_found(report_id)
    return _row_report(row, workspace)


def find_report(engine: Engine, workspace: str, id_or_name: str) -> Report:
    """Report ``id_or_name`` of ``workspace``: by id, else by name (what the CLI takes)."""
    with store_errors(engine), engine.connect() as conn:
        ws = workspace_id(conn, workspace)
        mine = select(reports).where(reports.c.workspace_id == ws)
        row = conn.execute(mine.where(reports.c.id == id_or_name)).first() or conn.execute(mine.where(reports.c.name == id_or_name)).first()
    if row is None:
        raise _not_found(id_or_name)
    return _row_report(row, workspace)


def delete_report(engine: Engine, workspace: str, report_id: str) -> Report:
    """Delete report ``report_id`` of ``workspace``; the report as it was."""
    report = get_report(engine, workspace, report_id)
    with store_errors(engine), engine.begin() as conn:
        conn.execute(delete(reports).where(reports.c.id == report.id, reports.c.workspace_id == workspace_id(conn, workspace)))
    return report
