"""Child processes that die with the Ferry process that started them.

A ``kill -9`` runs no ``finally`` and no ``atexit``, so a child that should not
outlive its parent must notice by itself. Two children need this:

* the data-quality summary (great-expectations, ~290 MB): started by Ferry with
  :func:`die_with_parent_preexec` (``PR_SET_PDEATHSIG``: the kernel sends
  SIGKILL the moment the forking thread's process goes);
* Prefect's temporary ("ephemeral") API server, which Prefect starts itself
  (``SubprocessASGIServer``, ~400 MB, listening on a port) with no hook for a
  ``preexec_fn``. :func:`install_ephemeral_server_lifeline` makes Prefect start
  it through a small launcher whose watchdog thread ends the server within a
  second or so of its parent's death. PDEATHSIG is not used there: Prefect may
  start that server from a short-lived thread (its events worker), and
  PDEATHSIG fires when the *thread* that forked ends, not the process.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1

#: Runs ``python -m uvicorn ARGS`` after starting a thread that stops the server once its parent is gone:
#: SIGTERM first (uvicorn shuts down cleanly), a hard exit if that takes longer than 5 s.
_WATCHED_MODULE = (
    "import os, runpy, signal, sys, threading, time\n"
    "parent = int(sys.argv[1])\n"
    "def watch():\n"
    "    while os.getppid() == parent:\n"
    "        time.sleep(0.25)\n"
    "    os.kill(os.getpid(), signal.SIGTERM)\n"
    "    time.sleep(5)\n"
    "    os._exit(1)\n"
    "threading.Thread(target=watch, name='ferry-lifeline', daemon=True).start()\n"
    "sys.argv = [sys.argv[2], *sys.argv[3:]]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)

_install_lock = threading.Lock()
_popen_lock = threading.Lock()
_installed = False


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False where prctl is unavailable."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent_preexec(nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGKILL when this process dies.

    Captures this process's pid before the fork: a parent that died between
    fork and prctl is caught by comparing ``getppid()`` after it.
    """
    parent = os.getpid()

    def preexec() -> None:
        if nice:
            os.nice(nice)
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def watched_module_argv(argv: list[str], parent: int | None = None) -> list[str]:
    """``[python, -m, MODULE, *ARGS]`` rewritten to run under the parent-watching launcher."""
    if len(argv) < 3 or argv[1] != "-m":
        return argv
    return [argv[0], "-c", _WATCHED_MODULE, str(parent or os.getpid()), *argv[2:]]


class _WatchedSubprocess:
    """Stands in for the ``subprocess`` module inside Prefect's server module while it starts the server."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
        env = dict(kwargs.pop("env", None) or os.environ)
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # Ferry's processes send nothing anywhere
        return subprocess.Popen(watched_module_argv(list(args)), env=env, **kwargs)


_SERVER_MODULE = "prefect.server.api.server"


def install_ephemeral_server_lifeline() -> bool:
    """Make Prefect's temporary API server die with this process (idempotent, cheap).

    Prefect imports its server module (~2 s of imports) only when it is about to
    start a temporary server, so this does not import it: the patch is applied
    when Prefect imports that module (at once if it already has). Returns False
    only when the module is already imported and has no such server.
    """
    with _install_lock:
        if _installed:
            return True
        module = sys.modules.get(_SERVER_MODULE)
        if module is not None:
            return _patch_server_module(module)
        if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _PatchOnImport())
        return True


def _patch_server_module(server_module: Any) -> bool:
    """Wrap ``SubprocessASGIServer._run_uvicorn_command`` so the server starts under the watching launcher."""
    global _installed
    if _installed:
        return True
    cls = getattr(server_module, "SubprocessASGIServer", None)
    original = getattr(cls, "_run_uvicorn_command", None)
    if original is None:
        return False

    def _run_uvicorn_command(self: Any) -> subprocess.Popen:
        with _popen_lock:
            server_module.subprocess = _WatchedSubprocess()
            try:
                return original(self)
            finally:
                server_module.subprocess = subprocess

    _run_uvicorn_command.__wrapped__ = original  # type: ignore[attr-defined]
    cls._run_uvicorn_command = _run_uvicorn_command
    _installed = True
    return True


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches Prefect's server module right after it is first imported, then leaves ``sys.meta_path``."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _SERVER_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        with _install_lock:
            _patch_server_module(module)
            sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _PatchOnImport)]


def exit_without_teardown(code: object = 0) -> None:
    """End this process as Python would, minus freeing every object: 0.5-1 s once Prefect, pydantic and pyarrow are loaded.

    Python's own exit steps run first (non-daemon threads joined and the
    threading exit hooks, where Prefect's log and event workers drain; then the
    ``atexit`` handlers), the standard streams are flushed, then ``os._exit``
    with ``code`` as ``sys.exit`` reads it. Returns (does nothing) where those
    steps cannot be run this way.
    """
    import atexit

    if not hasattr(threading, "_shutdown") or not hasattr(atexit, "_run_exitfuncs"):
        return
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
