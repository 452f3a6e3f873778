"""A scheduled export job as users write it and read it back: name, scope, schedule, notifications.

The scope *is* part of an :class:`~ferry.params.ExportRequest` (the same field
definitions, generated from it), so a job validates exactly like an ad-hoc
export and every problem is reported at once. JSON names are camelCase (the
export-jobs seed, the CLI's ``--json`` and the HTTP API).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.alias_generators import to_camel

from ferry.errors import ParameterError, Problem
from ferry.params import DEFAULT_FILENAME, ExportRequest, Format, type_problems

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
#: Names taken by the deployments prefect.yaml declares for the export flow.
RESERVED_NAMES = ("default",)
NotifyOn = Literal["success", "failed"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


#: ExportRequest fields that say *what* a job exports; JobScope takes them, definitions and all, from the request.
SCOPE_FIELDS = (
    "workspace",
    "resource",
    "fields",
    "filters",
    "product_schema",
    "catalog",
    "dimension_scope",
    "include_variants",
    "segment",
    "lists",
    "activity_types",
)
#: ExportRequest fields a job sets from its own attributes (not through ``options``).
JOB_OWNED = frozenset(SCOPE_FIELDS) | {"format", "gzip", "filename", "destination", "incremental", "actor"}

JobScope = create_model(
    "JobScope",
    __base__=_Camel,
    __doc__="What a job exports: one resource of one workspace, narrowed like an ad-hoc export (the ExportRequest's own fields).",
    **{name: (ExportRequest.model_fields[name].annotation, ExportRequest.model_fields[name]) for name in SCOPE_FIELDS},
)


class JobSchedule(_Camel):
    """A cron schedule in an explicit timezone (a sixth field, if given, is seconds)."""

    cron: str = Field(description="Cron expression, e.g. `0 2 * * *` (02:00 every day).")
    timezone: str = Field(default="UTC", description="IANA timezone the cron is read in, e.g. `Europe/Berlin`.")


class JobNotification(_Camel):
    """Tell someone when a run ends: a Prefect notification block, sent by a Prefect automation."""

    on: list[NotifyOn] = Field(default_factory=lambda: ["failed"], min_length=1, description="Run outcomes that notify.")
    block: str = Field(description="Notification block as `TYPE/NAME`, e.g. `slack-webhook/ops` or `custom-webhook/crm`.")


class ExportJob(_Camel):
    """A scheduled export job as users write it (create / update bodies, full replace)."""

    name: str = Field(description="Unique job name; the deployment is `export-data/<name>`.")
    description: str | None = Field(default=None, description="What the job is for.")
    destination: str | None = Field(default=None, description="Destination block `TYPE/NAME` (or a folder); default managed storage.")
    format: Format = Field(default="csv", description="File format.")
    scope: JobScope
    schedule: JobSchedule | None = Field(default=None, description="Cron schedule; none = run on demand only.")
    compress: bool = Field(default=False, description="gzip the file (adds `.gz`).")
    filename_template: str = Field(
        default=DEFAULT_FILENAME, description="File name; placeholders {date} {resource} {workspace} {run_id} {format}."
    )
    notifications: list[JobNotification] = Field(default_factory=list)
    active: bool = Field(default=True, description="False = paused: the schedule fires no runs.")
    incremental: bool = Field(default=False, description="Export only rows created or changed since the last successful run.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Other export options by their ExportRequest names, e.g. delimiter, date_format, labels."
    )

    # --- to and from the deployment's parameters -------------------------------------------

    def request_data(self) -> dict[str, Any]:
        scope = self.scope.model_dump(exclude_defaults=True)
        return {
            **self.options,
            **scope,
            "format": self.format,
            "gzip": self.compress,
            "filename": self.filename_template,
            "destination": self.destination,
            "incremental": self.incremental,
            "actor": f"job:{self.name}",
        }

    def to_request(self) -> ExportRequest:
        return ExportRequest.model_validate(self.request_data())

    def parameters(self) -> dict[str, Any]:
        """The deployment's parameters: the request, without defaults, as the Prefect UI shows it."""
        return {"request": self.to_request().model_dump(mode="json", by_alias=True, exclude_defaults=True)}

    # --- validation: every problem at once ---------------------------------------------------

    def problems(self) -> list[Problem]:
        problems: list[Problem] = []
        if not re.fullmatch(NAME_PATTERN, self.name):
            problems.append(
                Problem("name", self.name, "use letters, digits, '.', '_' or '-' (at most 100), starting with a letter or digit")
            )
        elif self.name in RESERVED_NAMES:
            problems.append(Problem("name", self.name, "is reserved for ad-hoc exports (export-data/default); pick another name"))
        if self.schedule is not None:
            problems += schedule_problems(self.schedule)
        allowed = set(ExportRequest.model_fields) - JOB_OWNED
        for key in sorted(set(self.options) - allowed):
            hint = "set it on the job itself" if key in JOB_OWNED else "not an export option"
            problems.append(Problem(f"options.{key}", self.options[key], hint))
        for i, notification in enumerate(self.notifications):
            if not re.fullmatch(r"[a-z0-9-]+/[^/]+", notification.block):
                problems.append(Problem(f"notifications[{i}].block", notification.block, "use TYPE/NAME of a Prefect notification block"))
        checked = self.model_copy(update={"options": {k: v for k, v in self.options.items() if k in allowed}})
        try:
            request = checked.to_request()
        except ValidationError as exc:
            problems += type_problems(exc.errors(), field_name=job_field)
        else:
            problems += [Problem(job_field((p.field,)), p.value, p.reason) for p in request.catalog_problems()]
        return problems

    def validated(self) -> ExportJob:
        problems = self.problems()
        if problems:
            raise ParameterError(problems)
        return self


def job_field(loc: tuple) -> str:
    """An ExportRequest error location, named as the job's field."""
    head = str(loc[0]) if loc else "request"
    rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    match = re.match(r"([A-Za-z_]+)(.*)", head)  # catalog problems name paths as one string: "fields[0]"
    if match:
        head, rest = match.group(1), match.group(2) + rest
    renamed = {
        "gzip": "compress",
        "filename": "filenameTemplate",
        "format": "format",
        "destination": "destination",
        "incremental": "incremental",
    }
    if head in renamed:
        return renamed[head] + rest
    scope_names = {n: (f.alias or to_camel(n)) for n, f in JobScope.model_fields.items()}
    scope_names["schema"] = "schema"
    if head in scope_names:
        return f"scope.{scope_names[head]}{rest}"
    return f"options.{head}{rest}"


def schedule_problems(schedule: JobSchedule) -> list[Problem]:
    from prefect.client.schemas.schedules import CronSchedule

    problems = []
    try:
        CronSchedule(cron=schedule.cron, timezone="UTC")
    except ValidationError:
        problems.append(Problem("schedule.cron", schedule.cron, "not a cron expression: MIN HOUR DAY MONTH WEEKDAY, e.g. `0 2 * * *`"))
    try:
        CronSchedule(cron="0 0 * * *", timezone=schedule.timezone)
    except ValidationError:
        problems.append(Problem("schedule.timezone", schedule.timezone, "not an IANA timezone, e.g. `Europe/Berlin` or `UTC`"))
    return problems


class JobView(ExportJob):
    """A job as read back from Prefect, with what Prefect knows about it."""

    id: str = Field(description="The job's id: its Prefect deployment id.")
    deployment: str = Field(description="`export-data/<name>`: run it from the Prefect UI, API or `prefect deployment run`.")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    next_run_at: datetime | None = Field(default=None, description="When the schedule fires next; null when paused or unscheduled.")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def parse_job(body: dict[str, Any]) -> ExportJob:
    """A job from its JSON body, or a ParameterError listing every problem of it."""
    try:
        return ExportJob.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(type_problems(exc.errors(), root="job")) from None
