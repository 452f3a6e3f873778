"""``ferry runs show`` and the commands that execute runs: ``ferry serve``, ``ferry worker``, ``ferry deploy``."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from cli.console import fail, out, print_json, require_server
from ferry.errors import FerryError

runs_app = typer.Typer(help="Any run of any Ferry flow: its record and artifacts.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def mount_runs(app: typer.Typer) -> None:
    """Add ``runs``, ``serve``, ``worker`` and ``deploy`` to the ``ferry`` app."""
    app.add_typer(runs_app, name="runs")
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("deploy")(deploy)


# --- runs ---------------------------------------------------------------------------------


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="Flow run id.")], as_json: JsonFlag = False) -> None:
    """Print any Ferry run: flow, deployment, state, parameters, its run record and its artifacts."""
    from ferry.runs import read_run

    require_server()

    try:
        view = read_run(run_id)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(view)
        return
    run = view["run"]
    out.print(f"[bold]{run['flow']}[/bold] run {run['id']} ({run['name']})  {run['state']}", highlight=False)
    if run.get("deployment"):
        out.print(f"  deployment {run['deployment']}", highlight=False)
    out.print(f"  started {run.get('startedAt') or '-'}  completed {run.get('completedAt') or '-'}", highlight=False)
    if run.get("message"):
        out.print(f"  {run['message']}", highlight=False)
    if view["record"] is not None:
        out.print("[bold]Record[/bold]")
        for key, value in view["record"].items():
            if value not in (None, [], {}, ""):
                out.print(f"  {key}: {value}", highlight=False)
    for artifact in view["artifacts"]:
        out.print(f"[bold]Artifact {artifact.get('key') or ''}[/bold] ({artifact['type']}): {artifact.get('description') or ''}")
        data = artifact.get("data")
        if artifact["type"] == "table":
            rows = json.loads(data) if isinstance(data, str) else data
            out.print(f"  a table of {len(rows)} rows (--json prints them)")
        else:
            out.print(data if isinstance(data, str) else json.dumps(data, indent=2, default=str), highlight=False, markup=False)


# --- serve / worker / deploy ------------------------------------------------------------------


def serve(
    limit: Annotated[int, typer.Option(min=1, help="Runs at a time in this process.")] = 4,
    sync_seconds: Annotated[float, typer.Option(min=1, help="How often to look for new jobs.")] = 10.0,
    poll_seconds: Annotated[
        Optional[float], typer.Option(min=0.5, help="How often to ask for due runs (default PREFECT_RUNNER_POLL_FREQUENCY).")
    ] = None,
    no_deploy: Annotated[bool, typer.Option("--no-deploy", help="Do not (re)apply prefect.yaml's deployments first.")] = False,
) -> None:
    """Run every Ferry deployment and job in this process (one machine, nothing else to start)."""
    from deployments.serve import serve as run_serve

    require_server()

    try:
        run_serve(limit=limit, sync_seconds=sync_seconds, deploy=not no_deploy, poll_seconds=poll_seconds)
    except FerryError as exc:
        fail(exc)


def worker(
    pool: Annotated[str, typer.Option(help="Process work pool to poll.")] = "ferry",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Runs at a time on this worker.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Worker name shown in the UI.")] = None,
    deploy: Annotated[bool, typer.Option("--deploy", help="(Re)apply prefect.yaml's deployments before starting.")] = False,
) -> None:
    """Start a Prefect process worker for Ferry's pool (run one per machine; they share the work)."""
    from deployments.serve import worker as run_worker

    require_server()

    try:
        run_worker(pool=pool, limit=limit, name=name, deploy=deploy)
    except FerryError as exc:
        fail(exc)


def deploy(as_json: JsonFlag = False) -> None:
    """Create or refresh the deployments prefect.yaml declares (paused ones stay paused)."""
    from prefect import get_client

    from deployments.serve import apply_project_deployments

    require_server()

    try:
        with get_client(sync_client=True) as client:
            ids = apply_project_deployments(client)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json({name: str(i) for name, i in ids.items()})
    else:
        for name in ids:
            out.print(f"Deployed {name}")
