"""Real servers for tests, and the destination cases the conformance suite runs over.

``DESTINATIONS`` lists one :class:`DestinationCase` per destination kind. Each
names a pytest fixture returning a :class:`DestinationHandle`: a configured
destination block plus a way to read back what landed at the server, so one
test body (tests/blocks/test_conformance.py) checks every backend the same
way. The fixtures live next to their servers (``servers.s3``, ...), registered
for every test by the root conftest's ``pytest_plugins``, so adding a backend is
one line here and a fixture next to its server.

:func:`spawn` starts a server binary (moto, Azurite, the GCS emulator, ...):
free loopback port, log file, a readiness check that speaks the server's
protocol under a deadline, and terminate -> wait -> kill on stop. A server that
does not come up is a test ERROR carrying its log, never a skip.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from ._process import ServerProcess


class DestinationHandle(Protocol):
    destination: object  # a blocks.destination.Destination

    def read(self, key: str) -> bytes:
        """The bytes stored at ``key`` (raises if missing)."""

    def keys(self) -> list[str]:
        """Every object/file stored, including temporary ones, relative to the destination's root."""


@dataclass(frozen=True)
class DestinationCase:
    name: str
    fixture: str  # pytest fixture name returning a DestinationHandle
    # Optional parts of the contract this destination must offer ("read", "url", "delete", "list");
    # None = not checked. The suite asserts the block offers exactly these and exercises each.
    capabilities: frozenset[str] | None = None


ALL = frozenset({"read", "url", "delete", "list"})

DESTINATIONS: list[DestinationCase] = [
    DestinationCase("local-directory", "local_directory_handle", frozenset({"read", "delete", "list"})),
    DestinationCase("s3", "s3_handle", ALL),
    DestinationCase("azure-blob", "azure_blob_handle", ALL),
    DestinationCase("gcs", "gcs_handle", ALL),
    DestinationCase("sftp", "sftp_handle", frozenset({"read", "delete", "list"})),
    DestinationCase("ftp", "ftp_handle", frozenset({"read", "delete", "list"})),
    DestinationCase("ftps", "ftps_handle", frozenset({"read", "delete", "list"})),
    DestinationCase("webhook", "webhook_handle", frozenset()),
]


def free_port() -> int:
    """A loopback port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(
    name: str,
    argv: Callable[[int], Sequence[str]],
    ready: Callable[[int], bool],
    workdir: Path,
    deadline: float = 30.0,
    env: dict[str, str] | None = None,
    attempts: int = 3,
) -> tuple[ServerProcess, int]:
    """Start ``argv(port)`` on a free port; wait until ``ready(port)`` says the server answers its protocol.

    Retries on a fresh port when the process dies early (another process took
    the port between our probe and its bind); otherwise fails the test with the log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    failure = ""
    for attempt in range(1, attempts + 1):
        port = free_port()
        log = workdir / f"{name}.{attempt}.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                list(argv(port)), stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True
            )
        server = ServerProcess(name, process, log)
        end = time.monotonic() + deadline
        while time.monotonic() < end and process.poll() is None:
            try:
                if ready(port):
                    return server, port
            except Exception as exc:  # noqa: BLE001 - not answering yet
                failure = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        alive = process.poll() is None
        server.stop()
        if alive:  # running but never answered: another attempt will not help
            break
    pytest.fail(
        f"{name} did not start within {deadline:.0f} s (last readiness error: {failure or 'none'}; "
        f"exit code {process.returncode}); its log:\n{server.log_text()}",
        pytrace=False,
    )
