"""Scheduled export jobs: a small service over Prefect deployments (used by the CLI, later the HTTP API).

A job *is* a deployment of the ``export-data`` flow named ``export-data/<job name>``:

* its scope and file options are the deployment's ``request`` parameter (an
  :class:`~ferry.params.ExportRequest`, validated by Prefect on every run);
* its cron schedule and timezone are the deployment's schedule;
* ``active`` is the deployment's paused flag (the UI's toggle);
* its notifications are Prefect automations on the deployment's run states;
* its runs are the deployment's flow runs (see :mod:`ferry.runs`).

Nothing is stored anywhere else, so a job edited in the Prefect UI reads back
here as edited, and a job created here can be run from the UI or the API.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from deployments import project
from ferry.errors import FerryError, InvalidJobError, JobExistsError, JobNotFoundError, ParameterError, Problem
from ferry.params import DEFAULT_FILENAME, ExportRequest, FieldFilter, Format
from ferry.runs import JobRun, job_run, list_runs, read_record

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
#: Names taken by the deployments prefect.yaml declares for the export flow.
RESERVED_NAMES = ("default",)
#: ExportRequest fields a job sets from its own attributes (not through ``options``).
_JOB_OWNED = {
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
    "format",
    "gzip",
    "filename",
    "destination",
    "incremental",
    "actor",
}
NotifyOn = Literal["success", "failed"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class JobScope(_Camel):
    """What a job exports: one resource of one workspace, narrowed like an ad-hoc export."""

    workspace: str = Field(min_length=1, description="Workspace whose data is exported.")
    resource: str = Field(description="Resource slug or alias, e.g. `contacts`.")
    fields: list[str] | None = Field(default=None, description="Columns, in order; default all.")
    filters: list[FieldFilter] = Field(default_factory=list, description="Field filters, all of which must hold.")
    product_schema: str | None = Field(default=None, alias="schema", description="Schema key (products).")
    catalog: str | None = Field(default=None, description="Catalog key (products).")
    dimension_scope: dict[str, str] = Field(default_factory=dict, description='Localized values, e.g. {"language": "en"} (products).')
    include_variants: bool = Field(default=False, description="One row per product variant (products).")
    segment: str | None = Field(default=None, description="Audience key of a saved segment.")
    lists: list[str] = Field(default_factory=list, description="List keys: one 1/0 membership column each (contacts).")
    activity_types: list[str] = Field(default_factory=list, description="Event types to keep (events, analytics).")


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
        allowed = set(ExportRequest.model_fields) - _JOB_OWNED
        for key in sorted(set(self.options) - allowed):
            hint = "set it on the job itself" if key in _JOB_OWNED else "not an export option"
            problems.append(Problem(f"options.{key}", self.options[key], hint))
        for i, notification in enumerate(self.notifications):
            if not re.fullmatch(r"[a-z0-9-]+/[^/]+", notification.block):
                problems.append(Problem(f"notifications[{i}].block", notification.block, "use TYPE/NAME of a Prefect notification block"))
        checked = self.model_copy(update={"options": {k: v for k, v in self.options.items() if k in allowed}})
        try:
            request = checked.to_request()
        except ValidationError as exc:
            problems += [Problem(_job_field(e["loc"]), e.get("input"), e["msg"]) for e in exc.errors()]
        else:
            problems += [Problem(_job_field((p.field,)), p.value, p.reason) for p in request.catalog_problems()]
        return problems

    def validated(self) -> ExportJob:
        problems = self.problems()
        if problems:
            raise ParameterError(problems)
        return self


def _job_field(loc: tuple) -> str:
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


# --- the service ---------------------------------------------------------------------------


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _export_parameter_schema() -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    from flows.export import export_data

    return parameter_schema(export_data).model_dump()


class JobService:
    """Create, read, change and run export jobs; every call is a few Prefect API requests."""

    # --- reading --------------------------------------------------------------------------

    def _deployment(self, client, ref: str):
        """A job's deployment by job id or name; JobNotFoundError if it is not a job."""
        from prefect.exceptions import ObjectNotFound

        try:
            deployment = (
                client.read_deployment(uuid.UUID(ref)) if _is_uuid(ref) else client.read_deployment_by_name(f"{project.EXPORT_FLOW}/{ref}")
            )
        except ObjectNotFound:
            deployment = None
        if deployment is None or project.JOB_TAG not in (deployment.tags or []):
            raise JobNotFoundError(f"No export job {ref!r} on this Prefect server.", "List the jobs with `ferry jobs list`.")
        return deployment

    def _view(self, client, deployment) -> JobView:
        request = dict((deployment.parameters or {}).get("request") or {})
        try:
            parsed = ExportRequest.model_validate(request)
        except ValidationError as exc:  # edited into something invalid outside Ferry (UI, API)
            raise InvalidJobError(
                f"Job {deployment.name!r} has parameters that no longer validate ({exc.error_count()} problem(s)).",
                f"Fix them with `ferry jobs update {deployment.name} ...` (or in the Prefect UI).",
            ) from None
        data = parsed.model_dump(exclude_defaults=True)
        scope = {k: data.pop(k) for k in list(data) if k in JobScope.model_fields}
        scope.setdefault("workspace", parsed.workspace)
        scope.setdefault("resource", parsed.resource)
        cron = next((s.schedule for s in deployment.schedules or [] if getattr(s.schedule, "cron", None)), None)
        return JobView(
            id=str(deployment.id),
            deployment=f"{project.EXPORT_FLOW}/{deployment.name}",
            name=deployment.name,
            description=deployment.description or None,
            destination=parsed.destination,
            format=parsed.format,
            scope=JobScope(**scope),
            schedule=JobSchedule(cron=cron.cron, timezone=cron.timezone or "UTC") if cron else None,
            compress=parsed.gzip,
            filename_template=parsed.filename,
            incremental=parsed.incremental,
            notifications=_read_notifications(client, deployment.id),
            active=not deployment.paused,
            options={k: v for k, v in parsed.model_dump(mode="json", exclude_defaults=True).items() if k not in _JOB_OWNED},
            created_at=deployment.created,
            updated_at=deployment.updated,
            next_run_at=None if deployment.paused else _next_run(client, deployment, cron),
        )

    def get(self, ref: str) -> JobView:
        with _client() as client:
            return self._view(client, self._deployment(client, ref))

    def list(self) -> list[JobView]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

        with _client() as client:
            deployments = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[project.JOB_TAG])))
            views = []
            for deployment in sorted(deployments, key=lambda d: d.name):
                try:
                    views.append(self._view(client, deployment))
                except FerryError as exc:  # one job broken outside Ferry must not hide the others
                    logging.getLogger("ferry.jobs").warning("%s", exc)
            return views

    def runs(self, ref: str, limit: int = 50) -> list[JobRun]:
        """The job's runs, newest first."""
        if limit < 1:
            raise ParameterError([Problem("limit", limit, "must be at least 1")])
        with _client() as client:
            return list_runs(client, self._deployment(client, ref).id, limit)

    # --- writing --------------------------------------------------------------------------

    def create(self, job: ExportJob) -> JobView:
        from prefect.exceptions import ObjectNotFound

        job.validated()
        with _client() as client:
            try:
                client.read_deployment_by_name(f"{project.EXPORT_FLOW}/{job.name}")
            except ObjectNotFound:
                pass
            else:
                raise JobExistsError(
                    f"An export job (or deployment) named {job.name!r} already exists.",
                    "Pick another name, or change it with `ferry jobs update`.",
                )
            deployment_id = self._write(client, job)
            return self._view(client, client.read_deployment(deployment_id))

    def update(self, ref: str, job: ExportJob) -> JobView:
        """Full replace: the job becomes exactly ``job`` (its id and run history stay)."""
        job.validated()
        with _client() as client:
            current = self._deployment(client, ref)
            if current.name != job.name:
                raise ParameterError(
                    [Problem("name", job.name, f"a job cannot be renamed (it is {current.name!r}); create a new job and delete this one")]
                )
            deployment_id = self._write(client, job)
            _drop_pending_runs(client, deployment_id, late_only=False)
            return self._view(client, client.read_deployment(deployment_id))

    def _write(self, client, job: ExportJob) -> uuid.UUID:
        """Create or replace (upsert by name) the job's deployment, then its notification automations."""
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule

        project.ensure_work_pool(client)
        _check_notification_blocks(client, job)
        schedules = []
        if job.schedule is not None:
            schedules = [
                DeploymentScheduleCreate(schedule=CronSchedule(cron=job.schedule.cron, timezone=job.schedule.timezone), active=True)
            ]
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(project.EXPORT_FLOW),
            name=job.name,
            description=job.description or "",
            parameters=job.parameters(),
            parameter_openapi_schema=_export_parameter_schema(),
            enforce_parameter_schema=True,
            schedules=schedules,
            paused=not job.active,
            tags=[project.FERRY_TAG, project.JOB_TAG],
            work_pool_name=project.WORK_POOL,
            entrypoint=project.EXPORT_ENTRYPOINT,
            pull_steps=project.PULL_STEPS,
        )
        _write_notifications(client, deployment_id, job)
        return deployment_id

    def delete(self, ref: str) -> JobView:
        """Delete the job: its deployment, its notification automations and all its flow runs."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            view = self._view(client, deployment)
            client.pause_deployment(deployment.id)  # no new runs while the history goes
            _delete_runs(client, deployment.id)
            _delete_notifications(client, deployment.id)
            client.delete_deployment(deployment.id)
            return view

    def pause(self, ref: str) -> JobView:
        """Stop the schedule: no run fires until resume; configuration and history stay."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            client.pause_deployment(deployment.id)
            settle_paused(client, deployment.id)
            return self._view(client, client.read_deployment(deployment.id))

    def resume(self, ref: str) -> JobView:
        """Restart the schedule from its next cron match (runs missed while paused are not made up)."""
        with _client() as client:
            deployment = self._deployment(client, ref)
            _drop_pending_runs(client, deployment.id, late_only=True)
            client.resume_deployment(deployment.id)
            return self._view(client, client.read_deployment(deployment.id))

    def run_now(self, ref: str, wait: bool = False, timeout: float | None = None) -> JobRun:
        """Start a run at once (even while paused); with ``wait``, block until it ends and return its record."""
        from prefect.deployments import run_deployment

        job = self.get(ref)
        flow_run = run_deployment(
            job.deployment, timeout=(timeout if wait else 0), poll_interval=1, as_subflow=False, tags=["ferry-run-now"]
        )
        return job_run(flow_run, read_record(flow_run))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _scheduled_runs(client, deployment_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.sorting import FlowRunSort

    from ferry.runs import deployment_filter

    return client.read_flow_runs(
        # PENDING: a runner prefetches runs due within seconds; claimed is not started, so pause drops those too.
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED", "PENDING"]))),
        deployment_filter=deployment_filter(deployment_id),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        limit=200,
    )


def _next_run(client, deployment, cron) -> datetime | None:
    """The schedule's next run: Prefect's earliest scheduled run, or the next cron match before it made one."""
    from zoneinfo import ZoneInfo

    from prefect._vendor.croniter import croniter

    runs = [r for r in _scheduled_runs(client, deployment.id) if r.auto_scheduled]
    if runs:
        return runs[0].next_scheduled_start_time or runs[0].expected_start_time
    if cron is None:
        return None
    start = datetime.now(ZoneInfo(cron.timezone or "UTC"))
    return croniter(cron.cron, start).get_next(datetime).astimezone(UTC)


def _drop_pending_runs(client, deployment_id, late_only: bool) -> int:
    """Delete the schedule's runs that have not started.

    Prefect's pause leaves runs that are already due ("Late") in place, and a
    runner executes them even for a paused deployment; resuming would also
    replay every run missed meanwhile. Deleting them makes pause stop the
    schedule now and resume restart it from the next cron match. Runs started
    by hand (run-now, the UI's "Quick run") are never touched.
    """
    from prefect.exceptions import ObjectNotFound

    dropped = 0
    now = datetime.now(UTC)
    while True:
        pending = [
            r
            for r in _scheduled_runs(client, deployment_id)
            if r.auto_scheduled and (not late_only or (r.next_scheduled_start_time or r.expected_start_time) <= now)
        ]
        if not pending:
            return dropped
        for run in pending:
            try:
                client.delete_flow_run(run.id)
                dropped += 1
            except ObjectNotFound:
                pass
        if late_only or len(pending) < 200:
            return dropped


def settle_paused(client, deployment_id, quiet_checks: int = 2, max_seconds: float = 10.0) -> int:
    """Drop a paused deployment's pending scheduled runs until the scheduler has stopped adding any.

    Prefect's scheduler reads the deployments to schedule, computes their runs,
    then inserts them in a second transaction; an iteration that read the
    deployment just before the pause inserts its runs just after it. So drop,
    look again a second later, and stop after ``quiet_checks`` empty looks.
    ``ferry serve`` also drops stragglers of paused deployments while it runs.
    """
    import time

    dropped, quiet, deadline = 0, 0, time.monotonic() + max_seconds
    while quiet < quiet_checks and time.monotonic() < deadline:
        found = _drop_pending_runs(client, deployment_id, late_only=False)
        dropped += found
        quiet = quiet + 1 if found == 0 else 0
        if quiet < quiet_checks:
            time.sleep(1.0)
    return dropped


def _delete_runs(client, deployment_id) -> int:
    from prefect.exceptions import ObjectNotFound

    from ferry.runs import deployment_filter

    deleted = 0
    while True:
        runs = client.read_flow_runs(deployment_filter=deployment_filter(deployment_id), limit=200)
        if not runs:
            return deleted
        for run in runs:
            try:
                client.delete_flow_run(run.id)
                deleted += 1
            except ObjectNotFound:
                pass


# --- notifications: Prefect automations ------------------------------------------------------

_AUTOMATION_PREFIX = "ferry-job"
_EVENTS = {"success": "prefect.flow-run.Completed", "failed": "prefect.flow-run.Failed"}
_EXTRA_FAILED = ("prefect.flow-run.Crashed",)


def _automation_name(deployment_id, index: int) -> str:
    return f"{_AUTOMATION_PREFIX}:{deployment_id}:notify:{index}"


def _check_notification_blocks(client, job: ExportJob) -> None:
    problems = []
    for i, notification in enumerate(job.notifications):
        if _block_document(client, notification.block) is None:
            problems.append(
                Problem(
                    f"notifications[{i}].block",
                    notification.block,
                    "no such Prefect block; create it first (Prefect UI > Blocks, or `prefect block create`)",
                )
            )
    if problems:
        raise ParameterError(problems)


def _block_document(client, reference: str):
    from prefect.exceptions import ObjectNotFound

    slug, _, name = reference.partition("/")
    try:
        return client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=False)
    except ObjectNotFound:
        return None


def _job_automations(client, deployment_id) -> list:
    prefix = f"{_AUTOMATION_PREFIX}:{deployment_id}:notify:"
    related = client.read_resource_related_automations(f"prefect.deployment.{deployment_id}")
    return sorted((a for a in related if a.name.startswith(prefix)), key=lambda a: int(a.name.rsplit(":", 1)[1]))


def _write_notifications(client, deployment_id, job: ExportJob) -> None:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    _delete_notifications(client, deployment_id)
    for i, notification in enumerate(job.notifications):
        block = _block_document(client, notification.block)
        events = {_EVENTS[on] for on in notification.on}
        if "failed" in notification.on:
            events |= set(_EXTRA_FAILED)
        body = (
            f"Ferry export job {job.name!r}: run {{{{ flow_run.name }}}} ended {{{{ flow_run.state.name }}}}.\n"
            f"{{{{ flow_run.state.message }}}}\nRun id: {{{{ flow_run.id }}}}"
        )
        client.create_automation(
            AutomationCore(
                name=_automation_name(deployment_id, i),
                description=f"Ferry job {job.name}: notify {notification.block} on {', '.join(notification.on)}",
                enabled=True,
                owner_resource=f"prefect.deployment.{deployment_id}",  # found again via the deployment, deleted with it
                trigger=EventTrigger(
                    expect=events,
                    match_related={"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
                    posture=Posture.Reactive,
                    threshold=1,
                    within=0,
                ),
                actions=[
                    SendNotification(block_document_id=block.id, subject=f"Ferry job {job.name}: {{{{ flow_run.state.name }}}}", body=body)
                ],
            )
        )


def _read_notifications(client, deployment_id) -> list[JobNotification]:
    notifications = []
    for automation in _job_automations(client, deployment_id):
        action = automation.actions[0]
        document = client.read_block_document(action.block_document_id, include_secrets=False)
        expect = set(getattr(automation.trigger, "expect", set()))
        on = [outcome for outcome, event in _EVENTS.items() if event in expect]
        notifications.append(JobNotification(on=on, block=f"{document.block_type.slug}/{document.name}"))
    return notifications


def _delete_notifications(client, deployment_id) -> None:
    for automation in _job_automations(client, deployment_id):
        client.delete_automation(automation.id)
