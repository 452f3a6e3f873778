"""Run a test server as a child process: free port, log file, readiness deadline, clean stop.

Every real server the tests talk to starts through :func:`start_server`. A server
that does not come up within its deadline is a test ERROR that carries the
server's log, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class ServerProcess:
    """A running child server: its process, log and what it announced when ready."""

    name: str
    process: subprocess.Popen
    log: Path
    info: dict = field(default_factory=dict)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """terminate -> wait -> kill, by PID only."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no server outlives a killed test run (Linux)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_server(name: str, script: Path, args: list[str], workdir: Path, deadline: float = 20.0) -> ServerProcess:
    """Start ``python script args --ready-file F``; wait until it writes its JSON ready file.

    The script binds 127.0.0.1 on a free port and writes ``{"port": ...}`` once it
    accepts connections; anything else within the deadline fails the test with the log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    ready = workdir / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(script), *args, "--ready-file", str(ready)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            preexec_fn=_die_with_parent,
        )
    server = ServerProcess(name, process, log)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ready.exists():
            try:
                server.info = json.loads(ready.read_text())
                return server
            except json.JSONDecodeError:
                pass  # half written; try again
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    pytest.fail(f"{name} server did not start (exit code {process.returncode}); its log:\n{server.log_text()}", pytrace=False)


def write_ready(path: str, info: dict) -> None:
    """Publish the ready file atomically (called by the server scripts)."""
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
