"""``ferry api``: serve the HTTP API on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.console import require_server


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve Ferry's HTTP API (OpenAPI at /openapi.json, docs at /docs) against the Prefect server in PREFECT_API_URL."""
    from api.server import serve

    require_server()
    serve(host=host, port=port)
