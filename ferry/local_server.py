"""The Prefect server ``ferry up`` started on this machine, and how other Ferry processes find it.

``ferry up`` starts ``prefect server start`` on a free loopback port. While it
runs, it keeps a small state file, ``$FERRY_DATA_DIR/run/prefect-server.json``
(written atomically, owner-only), naming the server's API and UI URLs, its
pid, the pid of ``ferry up`` and of its runner, and when it started; it
removes the file when it stops. The CLI reads it (:func:`discover`) before
anything reads Prefect's settings: when ``PREFECT_API_URL`` is not set (in
the environment or the active Prefect profile), the server is alive and its
URL is loopback, the CLI uses that server instead of starting a temporary one
of its own. A file whose server is gone (a ``kill -9``) is ignored and
removed. ``PREFECT_API_URL``, set explicitly, always wins.

This module imports nothing heavy: it runs before every CLI command.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

STATE_FILE = Path("run") / "prefect-server.json"

#: How a discovered server is named to users (``ferry export``'s run line, ``ferry up``).
ORIGIN = "ferry up"

#: The server this process uses because :func:`discover` found it (None: not discovered).
_in_use: LocalServer | None = None


@dataclass(frozen=True)
class LocalServer:
    """A Prefect server ``ferry up`` started on this machine."""

    api_url: str
    ui_url: str
    pid: int  # the Prefect server's process
    started: str  # ISO 8601, UTC
    supervisor_pid: int | None = None  # ferry up
    runner_pid: int | None = None  # the runner serving every Ferry deployment, once it polls
    pid_started: int | None = None  # the server process's start time (/proc, clock ticks): tells a reused pid

    def describe(self) -> str:
        """``the Prefect server of ferry up (pid N) at URL``."""
        return f"the Prefect server of {ORIGIN} (pid {self.supervisor_pid or self.pid}) at {self.api_url}"


def state_path(data_dir: Path | None = None) -> Path:
    if data_dir is None:
        from ferry.settings import get_settings

        data_dir = get_settings().data_dir
    return Path(data_dir).expanduser().resolve() / STATE_FILE


# --- written by ferry up ---------------------------------------------------------------------


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def publish(server: LocalServer, data_dir: Path | None = None) -> Path:
    """Write the state file atomically (owner-only, 0600, in a 0700 folder); returns its path."""
    path = state_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(server), handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o600)  # whatever the umask or an earlier file said
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def withdraw(pid: int, data_dir: Path | None = None) -> bool:
    """Remove the state file if it still names the server ``pid`` (another ``ferry up`` may have replaced it)."""
    path = state_path(data_dir)
    current = _read(path)
    if current is None or current.pid != pid:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def started_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- read by the CLI ---------------------------------------------------------------------------


def _read(path: Path) -> LocalServer | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LocalServer(
            api_url=str(raw["api_url"]),
            ui_url=str(raw.get("ui_url") or str(raw["api_url"]).removesuffix("/api")),
            pid=int(raw["pid"]),
            started=str(raw.get("started") or ""),
            supervisor_pid=_int_or_none(raw.get("supervisor_pid")),
            runner_pid=_int_or_none(raw.get("runner_pid")),
            pid_started=_int_or_none(raw.get("pid_started")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _int_or_none(value) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` runs (and, when ``started`` is known, is the process that had that start time)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    if started is not None:
        now = process_start_ticks(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie (ended, not reaped yet) is not alive
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def is_loopback(url: str) -> bool:
    """True for an http(s) URL whose host is a loopback address (or ``localhost``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def find(data_dir: Path | None = None) -> LocalServer | None:
    """The live, loopback Prefect server ``ferry up`` published in ``data_dir``; a stale state file is removed."""
    try:
        path = state_path(data_dir)
        if not path.is_file():
            return None
    except Exception:  # noqa: BLE001 - unreadable settings or folder: the command that needs them says so itself
        return None
    server = _read(path)
    if server is None or not is_loopback(server.api_url):
        return None
    if not alive(server.pid, server.pid_started):
        with contextlib.suppress(OSError):
            if _read(path) == server:  # not replaced meanwhile by a new ferry up
                path.unlink()
        return None
    return server


def api_url_configured(environ: dict[str, str] | None = None) -> bool:
    """Whether ``PREFECT_API_URL`` is set: in the environment, or in the active Prefect profile (read without Prefect)."""
    environ = os.environ if environ is None else environ
    if environ.get("PREFECT_API_URL"):
        return True
    home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        import tomllib

        document = tomllib.loads(profiles.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    active = environ.get("PREFECT_PROFILE") or document.get("active") or "ephemeral"
    profile = (document.get("profiles") or {}).get(active) or {}
    return bool(isinstance(profile, dict) and profile.get("PREFECT_API_URL"))


def discover(data_dir: Path | None = None) -> LocalServer | None:
    """Use ``ferry up``'s server in this process when no Prefect server is configured: sets ``PREFECT_API_URL``.

    Call it before Prefect reads its settings (the CLI does, before every
    command). Returns the server now in use, or None (one is configured
    already, or none was found).
    """
    global _in_use
    if _in_use is not None:
        return _in_use
    if api_url_configured():
        return None
    server = find(data_dir)
    if server is None:
        return None
    os.environ["PREFECT_API_URL"] = server.api_url
    if not os.environ.get("PREFECT_UI_URL"):
        os.environ["PREFECT_UI_URL"] = server.ui_url
    _in_use = server
    return server


def in_use() -> LocalServer | None:
    """The server :func:`discover` found for this process, if it did."""
    return _in_use


def wake_runner(server: LocalServer | None = None) -> bool:
    """Ask ``ferry up``'s runner to look for new runs now instead of at its next poll (SIGUSR1); False if not possible.

    Only a process that is that runner gets the signal: its pid must be alive
    and its command line must be the runner's (``deployments.draining``).
    """
    server = server or _in_use
    pid = server.runner_pid if server is not None else None
    if not pid or not hasattr(signal, "SIGUSR1"):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False  # cannot tell what the pid is: do not signal it
    if b"deployments.draining" not in command:
        return False
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return False
    return True
