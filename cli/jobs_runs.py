"""``ferry jobs runs`` and ``ferry jobs run-now``: a job's runs, to come and done, and starting one by hand.

``run-now`` says so (on stderr, also with ``--json``) when nothing would
execute the run: Prefect shows the job's deployment NOT_READY, no worker is
online in its work pool and no ``ferry serve`` polls Ferry's deployments.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Optional

import typer

from cli.console import err, fail, out, print_json
from cli.jobs_options import JobArg, JsonFlag, service
from ferry.errors import FerryError


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else "-"


def print_runs(runs) -> None:
    if not runs:
        out.print("No runs yet.")
    for r in runs:
        colour = {"success": "green", "failed": "red", "scheduled": "cyan", "pending": "cyan"}.get(r.status, "yellow")
        upcoming = r.status in ("scheduled", "pending")
        when = _when(getattr(r, "scheduled_at", None)) if upcoming else _when(r.started_at)
        if upcoming:
            detail = (
                "late: nothing has started it yet" if getattr(r, "late", False) else ("claimed, starting" if r.status == "pending" else "")
            )
        elif r.status == "success" and r.record_count is not None:
            detail = f"{r.record_count:,} rows, {r.file_size:,} bytes -> {r.destination_path}"
        else:
            detail = (r.error or "").splitlines()[0][:160] if r.status == "failed" and r.error else ""
        out.print(f"{r.id}  [{colour}]{r.status:<9}[/{colour}]  {when:<25}  {detail}", highlight=False)


def jobs_runs(
    job_ref: JobArg,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many runs.")] = 50,
    upcoming: Annotated[
        int, typer.Option(min=0, max=200, help="Also this many runs that have not started (scheduled, pending, late), soonest first.")
    ] = 5,
    as_json: JsonFlag = False,
) -> None:
    """The job's runs, newest first: those scheduled or pending (a run-now waiting for `ferry serve`), then its history."""
    try:
        runs = service().runs(job_ref, limit, upcoming=upcoming)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([r.to_json() for r in runs])
    else:
        print_runs(runs)


def jobs_run_now(
    job_ref: JobArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end and print its record.")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="With --wait: give up waiting after this many seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of the job now (also while paused); it runs wherever the job's deployment is served."""
    try:
        jobs = service()
        ready = jobs.readiness(job_ref)
        if not ready.ready:
            err.print("[yellow]Warning:[/yellow] ", end="")
            err.print(ready.message(), markup=False, highlight=False)
        run = jobs.run_now(job_ref, wait=wait, timeout=timeout)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(run.to_json())
    elif not wait:
        out.print(f"Started run {run.id}; follow it with `ferry runs show {run.id}` or `ferry jobs runs {job_ref}`.")
    else:
        print_runs([run])
    if wait and run.status == "failed":
        raise typer.Exit(1)


def mount_job_runs(app: typer.Typer) -> None:
    app.command("runs")(jobs_runs)
    app.command("run-now")(jobs_run_now)
