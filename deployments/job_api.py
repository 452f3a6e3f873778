"""The export-jobs API (``/v1/export-jobs``): its job JSON to and from :class:`ExportJob`, a workspace's view of the jobs.

The JSON is the export-jobs seed's, field for field (``destinationType``,
``destinationConfig``, ``schemaId``, ``catalogId``, ``schedule`` as a cron
string, ...) plus Ferry's own (``resource``, default ``products``; ``fields``,
``filters``, ``timezone``, ``incremental``, ...). Everything is translated here,
never in the router; a job is read and written through :class:`JobService`.

* **Workspace:** always the key's. A job of another workspace is reported like a
  job that does not exist, and so is a body naming another workspace.
* **Destinations:** ``destinationConfig`` is saved at once as Prefect blocks named
  after the job (:func:`block_name`), e.g. a prefect-aws ``AwsCredentials`` +
  ``S3Bucket`` pair for ``s3``; the deployment's parameters hold only the
  reference (``s3-bucket/job-NAME``). Responses show every secret as ``"***"``;
  a PUT that sends ``"***"`` back keeps the saved secret, and a destination sent
  back exactly as read stays as it is.
* **Recorded runs** (:func:`record_run`): a flow run of the job's deployment,
  moved at once to its final state, whose persisted result is the run record.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from deployments import project
from deployments.job_destinations import DestinationType, Plan, block_name, delete_blocks, describe_destination, plan_destination
from deployments.job_model import NAME_PATTERN, ExportJob, JobNotification, JobSchedule, JobView, parse_job, schedule_problems
from deployments.jobs import JobService
from ferry.columns import FieldFilter
from ferry.errors import JobNotFoundError, ParameterError, Problem, UnknownWorkspaceError, problems_from_validation
from ferry.params import DEFAULT_FILENAME, Format
from ferry.records import ExportRecord
from ferry.runs import JobRun, job_run

READ_ONLY = ("id", "createdAt", "updatedAt", "nextRunAt", "deployment")
#: API name=the job scope's (camelCase) name.
_SCOPE = dict(
    pair.split("=")
    for pair in "resource=resource schemaId=schema catalogId=catalog dimensionScope=dimensionScope "
    "includeVariants=includeVariants fields=fields filters=filters segment=segment lists=lists activityTypes=activityTypes".split()
)
#: Names the API shares with ExportJob.
_SAME = ("name", "description", "format", "compress", "filenameTemplate", "active", "incremental", "notifications", "options")
_ORDER = (
    "id name description destinationType destinationConfig format schemaId catalogId dimensionScope schedule includeVariants "
    "compress filenameTemplate active resource fields filters timezone incremental segment lists activityTypes notifications "
    "options createdAt updatedAt nextRunAt deployment"
).split()


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class JobBody(_Camel):
    """A create / PUT body (PUT is a full replace). Read-only fields of a GET (id, createdAt, ...) may be sent back: ignored."""

    name: str = Field(description="Unique job name; the deployment is `export-data/<name>`.")
    description: str | None = None
    destination_type: DestinationType = Field(description="Where files go; `local` (a folder on the server) is read back only.")
    destination_config: dict[str, Any] = Field(default_factory=dict, description="The destination's settings; secrets read back as ***.")
    format: Format = "csv"
    schema_id: str | None = Field(default=None, description="Schema key (products).")
    catalog_id: str | None = Field(default=None, description="Catalog key (products).")
    dimension_scope: dict[str, str] = Field(default_factory=dict, description='Localized values, e.g. {"language": "en"} (products).')
    schedule: str | None = Field(description="Cron expression, e.g. `0 2 * * *`; null: the job runs only on demand.")
    include_variants: bool = False
    compress: bool = False
    filename_template: str = Field(default=DEFAULT_FILENAME, description="Placeholders {date} {resource} {workspace} {run_id} {format}.")
    active: bool = True
    resource: str = Field(default="products", description="What to export (Ferry): products, contacts, events, ...")
    fields: list[str] | None = None
    filters: list[FieldFilter] = Field(default_factory=list)
    timezone: str | None = Field(default=None, description="IANA timezone of the cron (default UTC).")
    incremental: bool = False
    segment: str | None = None
    lists: list[str] = Field(default_factory=list)
    activity_types: list[str] = Field(default_factory=list)
    notifications: list[JobNotification] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="Other export options by their ExportRequest names.")


class RunReport(_Camel):
    """``POST /v1/export-jobs/{id}/runs``: a finished run done elsewhere (the seed's Run object, less its ids)."""

    job_id: str | None = Field(default=None, description="If given, the job's id.")
    status: Literal["success", "failed"] = Field(description="How the run ended (only finished runs are recorded).")
    started_at: datetime
    completed_at: datetime | None = Field(default=None, description="Default: now.")
    record_count: int | None = Field(default=None, ge=0)
    file_size: int | None = Field(default=None, ge=0)
    destination_path: str | None = None
    error: str | None = None


# --- jobs: JSON in and out, workspace-scoped ----------------------------------------------------


def _api_field(name: str) -> str:
    """A job-model problem named as the API's field (``scope.schema`` -> ``schemaId``)."""
    for old, new in (
        ("scope.schema", "schemaId"),
        ("scope.catalog", "catalogId"),
        ("schedule.cron", "schedule"),
        ("schedule.timezone", "timezone"),
    ):
        if name == old or name.startswith((old + ".", old + "[")):
            return new + name[len(old) :]
    return {"destination": "destinationType", "job": "body"}.get(name, name.removeprefix("scope."))


def to_job(body: dict[str, Any], workspace: str, current: JobView | None = None) -> tuple[ExportJob, Plan]:
    """A body as an ExportJob of ``workspace`` and its destination's blocks; every problem at once (ParameterError)."""
    named = body.get("workspace")
    if named is not None and named != workspace:
        raise UnknownWorkspaceError(
            f"No workspace {named!r} for this key.", "A key manages only its own workspace's jobs; omit `workspace`."
        )
    data = {k: v for k, v in body.items() if k not in (*READ_ONLY, "workspace")}
    problems: list[Problem] = []
    try:
        parsed = JobBody.model_validate(data).model_dump(mode="json", by_alias=True)
    except ValidationError as exc:
        parsed, problems = None, problems_from_validation(exc.errors(), root="body")
    name = data["name"] if isinstance(data.get("name"), str) else ""
    plan, more = plan_destination(name, data.get("destinationType"), data.get("destinationConfig", {}), current)
    problems += more
    if parsed is None:  # the body's types are wrong; still report what can be checked without them
        if name and not re.fullmatch(NAME_PATTERN, name):
            problems.append(Problem("name", name, "use letters, digits, '.', '_' or '-' (at most 100), starting with a letter or digit"))
        if isinstance(data.get("schedule"), str):
            zone = data["timezone"] if isinstance(data.get("timezone"), str) else "UTC"
            problems += schedule_problems(JobSchedule(cron=data["schedule"], timezone=zone))
        raise ParameterError(_named(problems))
    scope = {s: parsed[a] for a, s in _SCOPE.items() if parsed[a] is not None}
    job_data = {k: parsed[k] for k in _SAME} | {
        "destination": plan.reference,
        "scope": {**scope, "workspace": workspace},
        "schedule": {"cron": parsed["schedule"], "timezone": parsed["timezone"] or "UTC"} if parsed["schedule"] is not None else None,
    }
    try:
        job = parse_job(job_data)
    except ParameterError as exc:
        raise ParameterError(_named(problems + exc.problems)) from None
    problems += job.problems()
    if problems:
        raise ParameterError(_named(problems))
    return job, plan


def _named(problems: list[Problem]) -> list[Problem]:
    named = [Problem(_api_field(p.field), p.value, p.reason) for p in problems]
    return list({(p.field, repr(p.value), p.reason): p for p in named}.values())  # each problem once


def job_json(view: JobView) -> dict[str, Any]:
    """A job as the API shows it: the seed's fields, then Ferry's, then the read-only ones."""
    dtype, config = describe_destination(view)
    data = view.to_json()
    values = {a: data["scope"].get(s) for a, s in _SCOPE.items()} | {k: data[k] for k in (*_SAME, *READ_ONLY)}
    values |= {
        "destinationType": dtype,
        "destinationConfig": config,
        "schedule": view.schedule.cron if view.schedule else None,
        "timezone": view.schedule.timezone if view.schedule else None,
    }
    return {k: values[k] for k in _ORDER}


def owned(ref: str, workspace: str) -> JobView:
    """Job ``ref`` (id or name) of ``workspace``; another workspace's job is JobNotFoundError, like a missing one."""
    view = None
    try:
        if re.fullmatch(NAME_PATTERN, ref) or _is_uuid(ref):  # anything else cannot name a job: Prefect is not asked
            view = JobService().get(ref)
    except JobNotFoundError:
        pass
    if view is None or view.scope.workspace != workspace:
        raise JobNotFoundError(f"No export job {ref!r} in this workspace.", "List the workspace's jobs with GET /v1/export-jobs.")
    return view


def _is_uuid(value: str) -> bool:
    try:
        return bool(uuid.UUID(value))
    except ValueError:
        return False


def list_jobs(workspace: str) -> list[dict[str, Any]]:
    return [job_json(view) for view in JobService().list() if view.scope.workspace == workspace]


def create_job(body: dict[str, Any], workspace: str) -> dict[str, Any]:
    """Create the job (JobService: 409 when the name is taken), then save its destination's blocks."""
    job, plan = to_job(body, workspace)
    view = JobService().create(job)
    try:
        for block in plan.blocks:
            block.save(block_name(job.name), overwrite=True)
    except BaseException:
        JobService().delete(view.id)
        raise
    return job_json(view)


def replace_job(ref: str, body: dict[str, Any], workspace: str) -> dict[str, Any]:
    """Full replace; blocks of a destination the job no longer uses are deleted."""
    current = owned(ref, workspace)
    job, plan = to_job(body, workspace, current)
    view = JobService().update(current.id, job)
    for block in plan.blocks:
        block.save(block_name(job.name), overwrite=True)
    delete_blocks(current.destination, current.name, keep=view.destination)
    return job_json(view)


def delete_job(ref: str, workspace: str) -> None:
    """The job, its run history and notification automations (JobService.delete), then its own destination blocks."""
    view = JobService().delete(owned(ref, workspace).id)
    delete_blocks(view.destination, view.name)


def _result_store():
    """Where run records go: ``$FERRY_DATA_DIR/results``, as for ``ferry serve``'s runs, unless result storage is configured."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    key = "PREFECT_RESULTS_LOCAL_STORAGE_PATH"
    folder = project.run_environment().get(key) or os.environ.get(key)  # set here, or by prepare_run_environment()
    if folder is None:
        return ResultStore()
    Path(folder).mkdir(parents=True, exist_ok=True)
    return ResultStore(result_storage=LocalFileSystem(basepath=folder))


def record_run(ref: str, workspace: str, body: dict[str, Any]) -> JobRun:
    """Record a finished run done elsewhere into the job's Prefect history; the run as the history shows it.

    Creates a flow run of the job's deployment (tag ``ferry-recorded``) and
    moves it at once to its final state (``Completed``, or ``Failed`` with the
    error as its message), whose persisted result is an :class:`ExportRecord`
    of the posted fields, so every reader of the run ledger sees it like any
    run. Prefect sets the flow run's start and end times itself (now); the
    posted ``startedAt`` / ``completedAt`` are the record's.
    """
    from prefect import get_client
    from prefect.states import Completed, Failed, Pending

    view = owned(ref, workspace)
    try:
        report = RunReport.model_validate(body)
    except ValidationError as exc:
        raise ParameterError(problems_from_validation(exc.errors(), root="body")) from None
    started, completed = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (report.started_at, report.completed_at or datetime.now(UTC)))
    problems = []
    if report.job_id not in (None, view.id):
        problems.append(Problem("jobId", report.job_id, f"is not this job's id ({view.id}); omit it"))
    if completed < started:
        problems.append(Problem("completedAt", report.completed_at, "is before startedAt"))
    if report.status == "success" and report.error:
        problems.append(Problem("error", report.error, "only a failed run has an error"))
    if problems:
        raise ParameterError(problems)
    error = report.error or ("The run failed (recorded without an error message)." if report.status == "failed" else None)
    counts = {"record_count": report.record_count or 0, "file_size": report.file_size or 0, "destination_path": report.destination_path}
    record = ExportRecord(
        run_id="",  # the flow run's id, once it exists
        status=report.status,
        resource=view.scope.resource,
        workspace=workspace,
        format=view.format,
        **counts,
        started_at=started,
        completed_at=completed,
        error=error,
    )
    store = _result_store()
    with get_client(sync_client=True) as client:
        # Prefect cannot create a deployment's run in a final state carrying a result (its API answers 500), so the
        # run is created Pending (no runner takes those) and moved to its final state at once, with the record.
        flow_run = client.create_flow_run_from_deployment(uuid.UUID(view.id), state=Pending(), tags=["ferry-recorded"])
        try:
            record = record.model_copy(update={"run_id": str(flow_run.id)})
            result = store.create_result_record(record)
            store.persist_result_record(result)
            final = Completed(data=result, message="Recorded run") if report.status == "success" else Failed(data=result, message=error)
            client.set_flow_run_state(flow_run.id, final, force=True)
        except BaseException:
            client.delete_flow_run(flow_run.id)
            raise
        return job_run(client.read_flow_run(flow_run.id), record)
