"""``ferry jobs``: scheduled export jobs on Prefect (``runs`` and ``run-now`` in :mod:`cli.jobs_runs`, options in :mod:`cli.jobs_options`).

Commands and flags are contracts (users' scripts call them). Every command
takes ``--json`` and then prints exactly the JSON the HTTP API will return
(camelCase); errors go to stderr with exit code 2, a failed run exits 1.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.console import fail, out, print_json
from cli.jobs_options import (
    ActiveOpt,
    ActivityOpt,
    CatalogOpt,
    CompressOpt,
    CronOpt,
    DescOpt,
    DestOpt,
    FieldsOpt,
    FilenameOpt,
    FileOpt,
    FilterOpt,
    FormatOpt,
    IncrementalOpt,
    JobArg,
    JsonFlag,
    ListsOpt,
    NameOpt,
    NotifyOpt,
    NoVariantsOpt,
    OptionOpt,
    OverwriteOpt,
    ResourceOpt,
    SchemaOpt,
    ScopeOpt,
    SegmentOpt,
    TzOpt,
    VariantsOpt,
    WorkspaceOpt,
    job_body,
    service,
)
from cli.jobs_runs import mount_job_runs
from deployments.job_model import parse_job
from ferry.errors import FerryError

jobs_app = typer.Typer(help="Scheduled export jobs (Prefect deployments) and their run history.", no_args_is_help=True)


# --- jobs ---------------------------------------------------------------------------------


def _schedule_text(job) -> str:
    if job.schedule is None:
        return "on demand"
    return f"{job.schedule.cron} ({job.schedule.timezone})"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _filter_text(flt) -> str:
    """A filter as `--filter` takes it: FIELD:OP[:VALUE] (lists joined with |)."""
    value = "|".join(map(str, flt.value)) if isinstance(flt.value, list) else ("" if flt.value is None else str(flt.value))
    return f"{flt.field}:{flt.op}" + (f":{value}" if flt.value is not None else "")


def scope_lines(job) -> list[tuple[str, str]]:
    """Every scope parameter the job sets besides workspace and resource, named as its option (fields, filter, scope, ...)."""
    lines: list[tuple[str, str]] = []
    names = {"product_schema": "schema", "dimension_scope": "scope", "activity_types": "activity types"}
    for name in type(job.scope).model_fields:
        value = getattr(job.scope, name)
        if name in ("workspace", "resource") or value in (None, [], {}, False):
            continue
        if name == "filters":
            lines += [("filter", _filter_text(flt)) for flt in value]
        else:
            lines.append((names.get(name, name.replace("_", " ")), _shown(value)))
    return lines


def _print_job(job) -> None:
    """Every parameter of the job: what it exports (filters and all), how, where to, when, and who is told."""
    state = "[green]active[/green]" if job.active else "[yellow]paused[/yellow]"
    out.print(f"[bold]{job.name}[/bold]  {state}  id {job.id}")
    if job.description:
        out.print(f"  {job.description}", markup=False, highlight=False)
    out.print(
        f"  exports   {job.scope.resource} of {job.scope.workspace} as {job.format}{' (gzip)' if job.compress else ''}"
        f"{' incrementally' if job.incremental else ''}",
        highlight=False,
    )
    for label, text in scope_lines(job):
        out.print(f"  {label:<9} {text}", markup=False, highlight=False)
    for key, value in job.options.items():
        out.print(f"  option    {key}={value!r}", markup=False, highlight=False)
    out.print(f"  to        {job.destination or 'managed storage'} as {job.filename_template}", markup=False, highlight=False)
    out.print(f"  schedule  {_schedule_text(job)}; next run {job.next_run_at.isoformat() if job.next_run_at else '-'}", highlight=False)
    for n in job.notifications:
        out.print(f"  notify    {n.block} on {', '.join(n.on)}", markup=False, highlight=False)
    out.print(
        f"  runs from the Prefect UI, `prefect deployment run '{job.deployment}'` or `ferry jobs run-now {job.name}`", highlight=False
    )


@jobs_app.command("create")
def jobs_create(
    name: NameOpt = None,
    description: DescOpt = None,
    workspace: WorkspaceOpt = None,
    resource: ResourceOpt = None,
    format: FormatOpt = None,
    dest: DestOpt = None,
    fields: FieldsOpt = None,
    filter: FilterOpt = None,
    schema: SchemaOpt = None,
    catalog: CatalogOpt = None,
    scope: ScopeOpt = None,
    include_variants: VariantsOpt = None,
    no_variants: NoVariantsOpt = False,
    segment: SegmentOpt = None,
    lists: ListsOpt = None,
    activity_types: ActivityOpt = None,
    cron: CronOpt = None,
    timezone: TzOpt = None,
    compress: CompressOpt = None,
    overwrite: OverwriteOpt = None,
    filename: FilenameOpt = None,
    notify: NotifyOpt = None,
    active: ActiveOpt = None,
    incremental: IncrementalOpt = None,
    option: OptionOpt = None,
    file: FileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a job: a Prefect deployment of export-data with this scope and cron schedule."""
    body = job_body(locals())
    try:
        job = service().create(parse_job(body))
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(job.to_json())
    else:
        out.print("[green]Created[/green]")
        _print_job(job)


@jobs_app.command("update")
def jobs_update(
    job_ref: JobArg,
    name: NameOpt = None,
    description: DescOpt = None,
    workspace: WorkspaceOpt = None,
    resource: ResourceOpt = None,
    format: FormatOpt = None,
    dest: DestOpt = None,
    fields: FieldsOpt = None,
    filter: FilterOpt = None,
    schema: SchemaOpt = None,
    catalog: CatalogOpt = None,
    scope: ScopeOpt = None,
    include_variants: VariantsOpt = None,
    no_variants: NoVariantsOpt = False,
    segment: SegmentOpt = None,
    lists: ListsOpt = None,
    activity_types: ActivityOpt = None,
    cron: CronOpt = None,
    timezone: TzOpt = None,
    compress: CompressOpt = None,
    overwrite: OverwriteOpt = None,
    filename: FilenameOpt = None,
    notify: NotifyOpt = None,
    active: ActiveOpt = None,
    incremental: IncrementalOpt = None,
    option: OptionOpt = None,
    file: FileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace a job's whole definition (full replace: what is not given takes its default). Id and history stay."""
    body = job_body(locals())
    try:
        jobs = service()
        body.setdefault("name", jobs.get(job_ref).name)
        job = jobs.update(job_ref, parse_job(body))
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(job.to_json())
    else:
        out.print("[green]Updated[/green]")
        _print_job(job)


@jobs_app.command("list")
def jobs_list(as_json: JsonFlag = False) -> None:
    """List the export jobs."""
    try:
        jobs = service().list()
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([j.to_json() for j in jobs])
        return
    if not jobs:
        out.print("No export jobs. Create one with `ferry jobs create`.")
    for job in jobs:
        state = "active" if job.active else "paused"
        nxt = job.next_run_at.isoformat() if job.next_run_at else "-"
        out.print(
            f"{job.name:<28} {state:<7} {_schedule_text(job):<32} next {nxt:<26} "
            f"{job.scope.resource}/{job.scope.workspace} {job.format} -> {job.destination or 'managed storage'}",
            highlight=False,
        )


@jobs_app.command("show")
def jobs_show(job_ref: JobArg, as_json: JsonFlag = False) -> None:
    """Show a job's definition, state and next run."""
    try:
        job = service().get(job_ref)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(job.to_json())
    else:
        _print_job(job)


@jobs_app.command("delete")
def jobs_delete(
    job_ref: JobArg, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False, as_json: JsonFlag = False
) -> None:
    """Delete a job and its run history (exported files stay where they were delivered)."""
    if not yes and not as_json:
        typer.confirm(f"Delete job {job_ref!r} and all its runs?", abort=True)
    try:
        job = service().delete(job_ref)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json({"deleted": job.to_json()})
    else:
        out.print(f"Deleted job [bold]{job.name}[/bold] and its run history.")


@jobs_app.command("pause")
def jobs_pause(job_ref: JobArg, as_json: JsonFlag = False) -> None:
    """Stop the job's schedule (configuration and history are kept)."""
    try:
        job = service().pause(job_ref)
    except FerryError as exc:
        fail(exc)
    print_json(job.to_json()) if as_json else out.print(f"Paused [bold]{job.name}[/bold]: no scheduled run until resume.")


@jobs_app.command("resume")
def jobs_resume(job_ref: JobArg, as_json: JsonFlag = False) -> None:
    """Restart the job's schedule from its next cron match."""
    try:
        job = service().resume(job_ref)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(job.to_json())
    else:
        out.print(f"Resumed [bold]{job.name}[/bold]: {_schedule_text(job)}.")


mount_job_runs(jobs_app)  # runs, run-now
