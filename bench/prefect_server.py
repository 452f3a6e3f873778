"""A Prefect server of a benchmark's own, started once (untimed) for the runs it measures.

Measured processes talk to it through ``PREFECT_API_URL``, as a flow run in
production talks to the server of ``ferry up``. A process that started its own
temporary server instead (``prefect_test_harness``) would carry Prefect's
server modules in its memory: about 64 MB that a production run does not have.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def prefect_server(workdir: Path, log) -> Iterator[dict[str, str]]:
    """Start a server on SQLite under ``workdir``; this process's children find it in their environment."""
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    log(f"Prefect server at {server.api_url}")
    try:
        yield {"api_url": server.api_url, "prefect_home": str(home)}
    finally:
        server.stop()
        os.environ.pop("PREFECT_API_URL", None)
