"""``ferry up``: Ferry as a service on one machine (Prefect server, runner and HTTP API) in one command."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli.console import fail, out
from ferry.errors import FerryError


def up(
    host: Annotated[str, typer.Option(help="Address the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the HTTP API.")] = 8000,
    drain_seconds: Annotated[
        float, typer.Option(min=0, help="On Ctrl-C / SIGTERM: how long runs in progress may take to finish before they are cancelled.")
    ] = 60.0,
    limit: Annotated[int, typer.Option(min=1, help="Runs at a time.")] = 4,
    poll_seconds: Annotated[
        Optional[float], typer.Option(min=0.5, help="How often to ask for due runs (default PREFECT_RUNNER_POLL_FREQUENCY).")
    ] = None,
) -> None:
    """Run Ferry as a service on this machine: a Prefect server (unless PREFECT_API_URL names one), every deployment and job, and the HTTP API."""
    from deployments.up import up as run_up

    try:
        code = run_up(
            host=host,
            port=port,
            drain_seconds=drain_seconds,
            limit=limit,
            poll_seconds=poll_seconds,
            say=lambda line: out.print(line, markup=False, highlight=False),
        )
    except FerryError as exc:
        fail(exc)
    if code:
        raise typer.Exit(code)
