"""The CLI finds the Prefect server a running ``ferry up`` started, and uses it instead of starting a temporary one.

One real ``ferry up`` for the module (clean environment: no ``PREFECT_*``
variables, a home of its own). The CLI runs as a separate process without
``PREFECT_API_URL`` and with Prefect's temporary server disabled
(``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false``), so a command that did not find
``ferry up``'s server could not run at all. Its runs are taken by ``ferry up``'s
runner in a warm run process (deployments/warm.py). A stale state file (its
server's process gone) is ignored and removed; stopping ``ferry up`` removes
its state file.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import httpx
import psutil
import pytest
from servers import free_port
from servers.prefect import die_with_parent, ferry_executable, wait_for

from ferry import local_server

START_TIMEOUT = 240
CLI_TIMEOUT = 300
CONTACTS = 40


@pytest.fixture(scope="module")
def ferry_up(tmp_path_factory):
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    root = tmp_path_factory.mktemp("ferry-up-discovery")
    data_dir = root / "data"
    data_dir.mkdir()
    store_url = f"sqlite:///{data_dir / 'ferry.db'}"
    engine = get_engine(store_url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=CONTACTS, events=50, products=2), seed=5)
    engine.dispose()

    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
    env.update(HOME=str(home), FERRY_DATA_DIR=str(data_dir), FERRY_DATABASE_URL=store_url, PYTHONUNBUFFERED="1")
    port = free_port()
    stdout, stderr = root / "up.out", root / "up.err"
    argv = [ferry_executable(), "up", "--port", str(port), "--drain-seconds", "30"]
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(die_with_parent(argv), stdout=out, stderr=err, env=env, cwd=root, start_new_session=True)

    def logs() -> str:
        return (
            f"--- ferry up stdout\n{stdout.read_text(errors='replace')[-3000:]}\n--- stderr\n{stderr.read_text(errors='replace')[-6000:]}"
        )

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"ferry up exited with code {process.returncode} while starting\n{logs()}", pytrace=False)
        return "Ferry is up" in stdout.read_text(errors="replace")

    try:
        wait_for(up, START_TIMEOUT, "ferry up announcing it is up", logs=logs, interval=0.5)
        cli_env = {k: v for k, v in env.items() if k != "FERRY_DATABASE_URL"} | {
            "FERRY_DATABASE_URL": store_url,
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",  # no temporary server can stand in for ferry up's
        }
        yield {"process": process, "data_dir": data_dir, "env": cli_env, "root": root, "logs": logs}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _ferry(env: dict, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([ferry_executable(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT)


def _standbys(runner_pid: int) -> set[int]:
    """The runner's warm run processes waiting for a run."""
    found = set()
    for child in psutil.Process(runner_pid).children():
        try:
            if "deployments.warm" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def test_ferry_up_publishes_its_prefect_server(ferry_up):
    path = local_server.state_path(ferry_up["data_dir"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state = json.loads(path.read_text())
    assert state["api_url"].startswith("http://127.0.0.1:") and state["api_url"].endswith("/api")
    assert httpx.get(f"{state['api_url']}/health", timeout=10).json() is True
    assert state["supervisor_pid"] == ferry_up["process"].pid or psutil.Process(state["supervisor_pid"]).ppid() == ferry_up["process"].pid
    assert state["api_url"] in (ferry_up["root"] / "up.out").read_text()


def test_the_cli_runs_an_export_on_ferry_ups_server(ferry_up):
    state = json.loads(local_server.state_path(ferry_up["data_dir"]).read_text())
    api = state["api_url"]
    runner = state["runner_pid"]
    wait_for(lambda: _standbys(runner), 120, "a warm run process waiting", logs=ferry_up["logs"])
    before = _standbys(runner)

    done = _ferry(ferry_up["env"], "export", "contacts", "--workspace", "acme", "--json", cwd=ferry_up["root"])
    assert done.returncode == 0, done.stdout + done.stderr + ferry_up["logs"]()
    record = json.loads(done.stdout)
    assert record["status"] == "success" and record["record_count"] == CONTACTS
    assert f"on the Prefect server of ferry up (pid {state['supervisor_pid']}) at {api}" in done.stderr, done.stderr

    run = httpx.get(f"{api}/flow_runs/{record['run_id']}", timeout=10).json()  # the run is in ferry up's server
    assert run["state_type"] == "COMPLETED", run
    deployment = httpx.get(f"{api}/deployments/{run['deployment_id']}", timeout=10).json()
    assert deployment["name"] == "default"

    # the run went to the warm process that was waiting (it exits once the run is over), and another one waits
    wait_for(lambda: not before & _standbys(runner), 120, "the warm process that ran the export to exit", logs=ferry_up["logs"])
    assert _standbys(runner), "no new warm run process"


def test_the_cli_runs_an_import_on_ferry_ups_server(ferry_up, tmp_path):
    api = json.loads(local_server.state_path(ferry_up["data_dir"]).read_text())["api_url"]
    source = tmp_path / "contacts.csv"
    source.write_text("Email,First Name\nnew.one@example.com,Ada\nnew.two@example.com,Grace\n")
    done = _ferry(ferry_up["env"], "import", "run", str(source), "--resource", "contacts", "--workspace", "acme", "--auto-map", "--json")
    assert done.returncode == 0, done.stdout + done.stderr + ferry_up["logs"]()
    record = json.loads(done.stdout)
    assert record["status"] == "success" and record["created_rows"] == 2, record
    assert httpx.get(f"{api}/flow_runs/{record['run_id']}", timeout=10).json()["state_type"] == "COMPLETED"


def test_a_stale_state_file_is_ignored_and_removed(ferry_up, tmp_path):
    """The file names ferry up's live URL, but a process that is gone: the CLI must not use it (nor keep the file)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    api = json.loads(local_server.state_path(ferry_up["data_dir"]).read_text())["api_url"]
    data_dir = tmp_path / "data"
    stale = local_server.LocalServer(api_url=api, ui_url=api.removesuffix("/api"), pid=dead.pid, started="2026-01-01T00:00:00Z")
    path = local_server.publish(stale, data_dir)

    run_id = "00000000-0000-4000-8000-000000000000"
    done = _ferry(ferry_up["env"], "runs", "show", run_id)  # with ferry up's own (live) file: its server answers
    assert "No run 00000000-0000-4000-8000-000000000000 in this Prefect server's history" in done.stderr, done.stderr

    done = _ferry(ferry_up["env"] | {"FERRY_DATA_DIR": str(data_dir)}, "runs", "show", run_id)
    assert done.returncode != 0
    assert "No Prefect server is configured" in done.stderr, done.stderr  # the stale file's server was not used
    assert not path.exists()


def test_stopping_ferry_up_removes_its_state_file(ferry_up):
    path = local_server.state_path(ferry_up["data_dir"])
    assert path.exists()
    ferry_up["process"].send_signal(signal.SIGTERM)
    assert ferry_up["process"].wait(timeout=150) == 0, ferry_up["logs"]()
    assert not path.exists()


def test_with_nothing_serving_the_cli_runs_here_on_the_published_server(prefect_api, tmp_path):
    """A published server where no runner serves export-data/default: the run executes in the CLI, on that server."""
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    data_dir = tmp_path / "data"
    store_url = f"sqlite:///{tmp_path / 'ferry.db'}"
    engine = get_engine(store_url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=12, events=10, products=2), seed=5)
    engine.dispose()
    pid = prefect_api.server.process.pid
    server = local_server.LocalServer(
        api_url=prefect_api.api_url,
        ui_url=prefect_api.api_url.removesuffix("/api"),
        pid=pid,
        started=local_server.started_now(),
        pid_started=local_server.process_start_ticks(pid),
    )
    local_server.publish(server, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
    env.update(
        HOME=str(tmp_path),
        FERRY_DATA_DIR=str(data_dir),
        FERRY_DATABASE_URL=store_url,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    done = _ferry(env, "export", "contacts", "--workspace", "acme", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "success" and record["record_count"] == 12
    assert f"Running in this process on the Prefect server of ferry up (pid {pid}) at {prefect_api.api_url}" in done.stderr
    run = httpx.get(f"{prefect_api.api_url}/flow_runs/{record['run_id']}", timeout=10).json()
    assert run["state_type"] == "COMPLETED" and run["deployment_id"] is None  # run here, recorded on that server
