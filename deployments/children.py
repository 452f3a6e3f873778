"""Child processes of ``ferry up``: started in a session of their own, killed with their parent, stopped by group.

``PR_SET_PDEATHSIG`` (Linux) makes each child get SIGTERM when ``ferry up``
dies, so a killed supervisor leaves no Prefect server or runner behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigurationError

_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)  # the parent died before prctl took effect\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` (an absolute executable first) run so that it gets SIGTERM when this process dies (Linux)."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


@dataclass
class Child:
    """One process ``ferry up`` started: in a session of its own, so its process group id is its pid."""

    name: str
    process: subprocess.Popen
    log: Path | None = None

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], log: Path | None = None) -> Child:
        output = open(log, "ab") if log is not None else None  # handed to the child, closed below
        try:
            process = subprocess.Popen(
                die_with_parent(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
        return cls(name, process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (within ``timeout``)."""
        try:
            self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the child's process group (e.g. run processes of a killed runner)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.process.kill()
            self.wait(10)
        self.kill_group()
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"--host {host!r} is not an address this machine can listen on ({exc}).") from None
    family, socktype, proto, _, address = infos[0]
    with socket.socket(family, socktype, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return True
    return False


def display_url(host: str, port: int) -> str:
    """The URL to print for a server listening on ``host`` (a wildcard address is shown as loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
