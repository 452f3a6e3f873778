"""Run an export or import from the terminal: on a served deployment when there is one, else in this process.

With a Prefect server that serves Ferry's deployments, the run's id and UI
address are printed at once (stderr) and the run is followed with a live view
of its stages; ``--no-wait`` stops after the id. Without one, the run executes
here, with the same view fed by the stages themselves.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import typer

from cli.console import err, out
from cli.progress import LiveProgress


def announce(run_id: str, as_json: bool, waiting: bool) -> None:
    """The run's id and where to watch it; with ``--no-wait`` (``waiting`` false) that is the command's whole output."""
    from deployments.adhoc import ui_url

    url = ui_url(run_id)
    if not waiting:
        if as_json:
            print(json.dumps({"run_id": run_id, "status": "submitted", "url": url}, indent=2))
        else:
            out.print(f"Started run {run_id}" + (f": {url}" if url else ""), soft_wrap=True, highlight=False)
            out.print(f"Follow it with `ferry runs show {run_id}`.", soft_wrap=True)
        raise typer.Exit(0)
    err.print(
        f"Run {run_id}" + (f": {url}" if url else "") + _on_server() + " (Ctrl-C stops watching, not the run)",
        soft_wrap=True,
        highlight=False,
    )


def _on_server() -> str:
    """`` on the Prefect server of ferry up (pid N) at URL`` when that is the server this process found, else nothing."""
    from ferry.local_server import in_use

    server = in_use()
    return f" on {server.describe()}" if server is not None else ""


def run_live(deployment: str, request, run_here: Callable, record_of: Callable, *, as_json: bool, wait: bool = True):
    """The run's record: followed on ``deployment`` when served (or only started, ``wait=False``), else ``run_here(request)``."""
    from deployments.adhoc import submit

    live = LiveProgress(err, enabled=not as_json and sys.stderr.isatty())
    run_id = submit(deployment, request)
    if run_id is None:
        if where := _on_server():  # nothing serves the deployment there (yet): the run executes here
            err.print(f"Running in this process{where} (no runner serves {deployment})", soft_wrap=True, highlight=False)
        with live:
            return run_here(request)
    announce(run_id, as_json, wait)
    return follow(run_id, deployment, request, record_of, live)


def follow(run_id: str, deployment: str, request, record_of: Callable, live: LiveProgress):
    """Follow run ``run_id`` with ``live`` to its end and return its record."""
    from deployments.adhoc import follow_run

    with live:
        return record_of(follow_run(run_id, deployment, live.percent if live.enabled else None), request)
