"""``ferry api`` as a child process on a free port, for the HTTP API tests."""

from __future__ import annotations

from pathlib import Path

import httpx

from . import spawn
from .prefect import die_with_parent, ferry_executable


def start_api(workdir: Path, env: dict[str, str], name: str = "ferry-api"):
    """``ferry api`` on a free port; (process, base URL) once /v1/health answers."""

    def ready(port: int) -> bool:
        return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code in (200, 503)

    process, port = spawn(
        name, lambda port: die_with_parent([ferry_executable(), "api", "--port", str(port)]), ready, workdir, deadline=60, env=env
    )
    return process, f"http://127.0.0.1:{port}"
