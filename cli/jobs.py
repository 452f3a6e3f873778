"""``ferry jobs``, ``ferry runs``, ``ferry serve``, ``ferry worker``, ``ferry deploy``: jobs on Prefect.

Commands and flags are contracts (users' scripts call them). Every command
takes ``--json`` and then prints exactly the JSON the HTTP API will return
(camelCase); errors go to stderr with exit code 2, a failed run exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.console import fail, out, parse_filter, parse_pairs, print_json, require_server, split_list
from deployments.job_model import parse_job
from ferry.errors import FerryError

jobs_app = typer.Typer(help="Scheduled export jobs (Prefect deployments) and their run history.", no_args_is_help=True)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JobArg = Annotated[str, typer.Argument(help="Job name or id.")]


def _service():
    from deployments.jobs import JobService

    require_server()
    return JobService()


# --- create / update options -------------------------------------------------------------


def _filters(values: list[str] | None) -> list[dict]:
    return [parse_filter(v) for v in values or []]


def _notifications(values: list[str] | None) -> list[dict]:
    """``failed:slack-webhook/ops``, ``success,failed:custom-webhook/crm`` or just a block (= failed)."""
    result = []
    for value in values or []:
        on, sep, block = value.partition(":")
        if not sep:
            on, block = "failed", value
        result.append({"on": [o.strip() for o in on.split(",") if o.strip()], "block": block.strip()})
    return result


def _options(values: list[str] | None) -> dict[str, Any]:
    options = {}
    for key, raw in parse_pairs(values, "--option").items():
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _job_body(file: Optional[Path], **given: Any) -> dict[str, Any]:
    """The job as JSON: ``--file`` (the HTTP API's body), overridden by every option given."""
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    scope = dict(body.get("scope") or {})
    for key in (
        "workspace",
        "resource",
        "fields",
        "filters",
        "schema",
        "catalog",
        "dimensionScope",
        "includeVariants",
        "segment",
        "lists",
        "activityTypes",
    ):
        if given.get(key) is not None:
            scope[key] = given[key]
    if scope:
        body["scope"] = scope
    if given.get("cron") is not None:
        body["schedule"] = {"cron": given["cron"], "timezone": given.get("timezone") or "UTC"}
    elif given.get("timezone") is not None and body.get("schedule"):
        body["schedule"]["timezone"] = given["timezone"]
    for key in (
        "name",
        "description",
        "destination",
        "format",
        "compress",
        "filenameTemplate",
        "notifications",
        "active",
        "incremental",
        "options",
    ):
        if given.get(key) is not None:
            body[key] = given[key]
    return body


FileOpt = Annotated[Optional[Path], typer.Option("--file", help="Job as JSON (the HTTP API's body); options override it.")]
NameOpt = Annotated[Optional[str], typer.Option(help="Job name (unique; the deployment is export-data/NAME).")]
DescOpt = Annotated[Optional[str], typer.Option(help="What the job is for.")]
WorkspaceOpt = Annotated[Optional[str], typer.Option(help="Workspace to export from.")]
ResourceOpt = Annotated[Optional[str], typer.Option(help="Resource: contacts, events, products, ...")]
FormatOpt = Annotated[Optional[str], typer.Option(help="csv, tsv, json, jsonl, xml, parquet, xlsx or pdf.")]
DestOpt = Annotated[Optional[str], typer.Option("--dest", "--destination", help="Destination block TYPE/NAME (or a folder).")]
FieldsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated columns, in order.")]
FilterOpt = Annotated[Optional[list[str]], typer.Option("--filter", help="FIELD:OP:VALUE (repeatable).")]
SchemaOpt = Annotated[Optional[str], typer.Option(help="Schema key (products).")]
CatalogOpt = Annotated[Optional[str], typer.Option(help="Catalog key (products).")]
ScopeOpt = Annotated[Optional[list[str]], typer.Option("--scope", help="Dimension scope KEY=VALUE, e.g. language=en (repeatable).")]
VariantsOpt = Annotated[Optional[bool], typer.Option("--include-variants/--no-variants", help="One row per product variant.")]
SegmentOpt = Annotated[Optional[str], typer.Option(help="Audience key of a saved segment.")]
ListsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated list keys.")]
ActivityOpt = Annotated[Optional[str], typer.Option(help="Comma-separated event types.")]
CronOpt = Annotated[Optional[str], typer.Option(help="Cron schedule, e.g. '0 2 * * *'.")]
TzOpt = Annotated[Optional[str], typer.Option(help="IANA timezone of the cron, e.g. Europe/Berlin (default UTC).")]
CompressOpt = Annotated[
    Optional[bool], typer.Option("--compress/--no-compress", "--gzip/--no-gzip", help="gzip the file (--gzip, as in `ferry export`).")
]
FilenameOpt = Annotated[
    Optional[str], typer.Option("--filename", help="File name template: {date} {resource} {workspace} {run_id} {format}.")
]
NotifyOpt = Annotated[Optional[list[str]], typer.Option("--notify", help="[success,failed:]BLOCK_TYPE/NAME (repeatable).")]
ActiveOpt = Annotated[Optional[bool], typer.Option("--active/--paused", help="Start active (default) or paused.")]
IncrementalOpt = Annotated[Optional[bool], typer.Option("--incremental/--full", help="Only rows changed since the last successful run.")]
OptionOpt = Annotated[
    Optional[list[str]], typer.Option("--option", help="Other export option KEY=VALUE (JSON value), e.g. delimiter=';' (repeatable).")
]


def _given(
    name,
    description,
    workspace,
    resource,
    format,
    dest,
    fields,
    filter,
    schema,
    catalog,
    scope,
    include_variants,
    segment,
    lists,
    activity_types,
    cron,
    timezone,
    compress,
    filename,
    notify,
    active,
    incremental,
    option,
) -> dict:
    return {
        "name": name,
        "description": description,
        "workspace": workspace,
        "resource": resource,
        "format": format,
        "destination": dest,
        "fields": (split_list(fields) or None),
        "filters": _filters(filter) if filter else None,
        "schema": schema,
        "catalog": catalog,
        "dimensionScope": parse_pairs(scope, "--scope") if scope else None,
        "includeVariants": include_variants,
        "segment": segment,
        "lists": (split_list(lists) or None),
        "activityTypes": (split_list(activity_types) or None),
        "cron": cron,
        "timezone": timezone,
        "compress": compress,
        "filenameTemplate": filename,
        "notifications": _notifications(notify) if notify else None,
        "active": active,
        "incremental": incremental,
        "options": _options(option) if option else None,
    }


# --- jobs ---------------------------------------------------------------------------------


def _schedule_text(job) -> str:
    if job.schedule is None:
        return "on demand"
    return f"{job.schedule.cron} ({job.schedule.timezone})"


def _print_job(job) -> None:
    state = "[green]active[/green]" if job.active else "[yellow]paused[/yellow]"
    out.print(f"[bold]{job.name}[/bold]  {state}  id {job.id}")
    if job.description:
        out.print(f"  {job.description}")
    out.print(
        f"  exports   {job.scope.resource} of {job.scope.workspace} as {job.format}{' (gzip)' if job.compress else ''}"
        f"{' incrementally' if job.incremental else ''}"
    )
    out.print(f"  to        {job.destination or 'managed storage'} as {job.filename_template}")
    out.print(f"  schedule  {_schedule_text(job)}; next run {job.next_run_at.isoformat() if job.next_run_at else '-'}")
    for n in job.notifications:
        out.print(f"  notify    {n.block} on {', '.join(n.on)}")
    out.print(f"  runs from the Prefect UI, `prefect deployment run '{job.deployment}'` or `ferry jobs run-now {job.name}`")


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
    segment: SegmentOpt = None,
    lists: ListsOpt = None,
    activity_types: ActivityOpt = None,
    cron: CronOpt = None,
    timezone: TzOpt = None,
    compress: CompressOpt = None,
    filename: FilenameOpt = None,
    notify: NotifyOpt = None,
    active: ActiveOpt = None,
    incremental: IncrementalOpt = None,
    option: OptionOpt = None,
    file: FileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a job: a Prefect deployment of export-data with this scope and cron schedule."""
    body = _job_body(
        file,
        **_given(
            name,
            description,
            workspace,
            resource,
            format,
            dest,
            fields,
            filter,
            schema,
            catalog,
            scope,
            include_variants,
            segment,
            lists,
            activity_types,
            cron,
            timezone,
            compress,
            filename,
            notify,
            active,
            incremental,
            option,
        ),
    )
    try:
        job = _service().create(parse_job(body))
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
    segment: SegmentOpt = None,
    lists: ListsOpt = None,
    activity_types: ActivityOpt = None,
    cron: CronOpt = None,
    timezone: TzOpt = None,
    compress: CompressOpt = None,
    filename: FilenameOpt = None,
    notify: NotifyOpt = None,
    active: ActiveOpt = None,
    incremental: IncrementalOpt = None,
    option: OptionOpt = None,
    file: FileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace a job's whole definition (full replace: what is not given takes its default). Id and history stay."""
    body = _job_body(
        file,
        **_given(
            name,
            description,
            workspace,
            resource,
            format,
            dest,
            fields,
            filter,
            schema,
            catalog,
            scope,
            include_variants,
            segment,
            lists,
            activity_types,
            cron,
            timezone,
            compress,
            filename,
            notify,
            active,
            incremental,
            option,
        ),
    )
    try:
        service = _service()
        body.setdefault("name", service.get(job_ref).name)
        job = service.update(job_ref, parse_job(body))
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
        jobs = _service().list()
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
        job = _service().get(job_ref)
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
        job = _service().delete(job_ref)
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
        job = _service().pause(job_ref)
    except FerryError as exc:
        fail(exc)
    print_json(job.to_json()) if as_json else out.print(f"Paused [bold]{job.name}[/bold]: no scheduled run until resume.")


@jobs_app.command("resume")
def jobs_resume(job_ref: JobArg, as_json: JsonFlag = False) -> None:
    """Restart the job's schedule from its next cron match."""
    try:
        job = _service().resume(job_ref)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(job.to_json())
    else:
        out.print(f"Resumed [bold]{job.name}[/bold]: {_schedule_text(job)}.")


def _print_runs(runs) -> None:
    if not runs:
        out.print("No runs yet.")
    for r in runs:
        colour = {"success": "green", "failed": "red"}.get(r.status, "yellow")
        started = r.started_at.isoformat(timespec="seconds") if r.started_at else "-"
        detail = (
            f"{r.record_count:,} rows, {r.file_size:,} bytes -> {r.destination_path}"
            if r.status == "success" and r.record_count is not None
            else (r.error or "").splitlines()[0][:160]
            if r.status == "failed"
            else ""
        )
        out.print(f"{r.id}  [{colour}]{r.status:<7}[/{colour}]  {started}  {detail}", highlight=False)


@jobs_app.command("runs")
def jobs_runs(
    job_ref: JobArg, limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many runs.")] = 50, as_json: JsonFlag = False
) -> None:
    """The job's runs, newest first."""
    try:
        runs = _service().runs(job_ref, limit)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([r.to_json() for r in runs])
    else:
        _print_runs(runs)


@jobs_app.command("run-now")
def jobs_run_now(
    job_ref: JobArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end and print its record.")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="With --wait: give up waiting after this many seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of the job now (also while paused); it runs wherever the job's deployment is served."""
    try:
        run = _service().run_now(job_ref, wait=wait, timeout=timeout)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(run.to_json())
    elif not wait:
        out.print(f"Started run {run.id}; follow it with `ferry runs show {run.id}` or `ferry jobs runs {job_ref}`.")
    else:
        _print_runs([run])
    if wait and run.status == "failed":
        raise typer.Exit(1)
