"""After a kill -9: children die with their parent (real processes, real signals).

A ``kill -9`` runs no ``finally`` and no ``atexit``; what must not outlive a
Ferry process has to notice its parent's death by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _kill_tree(pid: int) -> None:
    """Clean up after a failing test: whatever is left of the process and its children."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
    env.update(
        FERRY_DATA_DIR=str(tmp_path / "data"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def _ephemeral_server(cli: psutil.Process, deadline: float) -> psutil.Process | None:
    """The temporary Prefect server among ``cli``'s children, once it answers on its port."""
    while time.monotonic() < deadline and cli.is_running():
        for child in cli.children(recursive=True):
            try:
                command = " ".join(child.cmdline())
                if "prefect.server.api.server:create_app" not in command:
                    continue
                ports = [c.laddr.port for c in child.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
            except psutil.Error:
                continue
            for port in ports:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json() is True:
                        return child
                except httpx.HTTPError:
                    pass
        time.sleep(0.2)
    return None


def test_a_killed_cli_takes_its_temporary_prefect_server_with_it(tmp_path):
    """No PREFECT_API_URL: Prefect starts a server for the CLI; kill -9 the CLI, the server goes within seconds."""
    ferry = Path(sys.executable).with_name("ferry")
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(  # `make demo`: seeds the embedded store, then runs an export flow on a temporary server
        [str(ferry), "demo"],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = None
    try:
        server = _ephemeral_server(psutil.Process(proc.pid), time.monotonic() + 50)
        assert server is not None, (tmp_path / "demo.log").read_text(errors="replace")[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone(server.pid, within=8), f"the temporary Prefect server (pid {server.pid}) outlived its killed parent"
    finally:
        _kill_tree(proc.pid)
        if server is not None:
            _kill_tree(server.pid)
        log.close()


_QUALITY_PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pyarrow as pa
    from ferry.import_params import ColumnMapping, ImportRequest
    from ferry.import_plan import build_plan
    from ferry.spool import write_spool
    from tasks.imports.quality import start_quality_summary
    from tasks.imports.validate import ROW

    folder = Path(sys.argv[1])
    source = folder / "f.csv"
    source.write_text("Mail\\n")
    entries = [ColumnMapping.from_json({"sourceColumn": "Mail", "targetFieldSlug": "email"})]
    request = ImportRequest(source=str(source), resource="contacts", workspace="w", mapping=entries).validated()
    plan = build_plan(request, ["Mail"], entries)
    schema = pa.schema([("Mail", pa.string()), (ROW, pa.int64())])
    rows = [{"Mail": f"a{i}@example.com", ROW: i + 2} for i in range(1000)]
    write_spool(folder / "source.arrow", schema, [pa.RecordBatch.from_pylist(rows, schema=schema)])
    child = start_quality_summary(folder / "source.arrow", plan, folder)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def test_a_killed_import_takes_its_data_quality_child_with_it(tmp_path):
    """The GX child (5-8 s just to import) is gone within 2 s of a kill -9 of the import's process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", _QUALITY_PARENT, str(tmp_path)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent printed {line!r}"
        child_pid = int(line)
        assert psutil.Process(child_pid).ppid() == parent.pid
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _gone(child_pid, within=2), f"the data-quality child (pid {child_pid}) outlived its killed parent"
    finally:
        _kill_tree(parent.pid)
        if child_pid is not None:
            _kill_tree(child_pid)
