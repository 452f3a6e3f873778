"""Finding the Prefect server ``ferry up`` started (ferry/local_server.py): the state file and the rules for using it.

The end-to-end test (a real ``ferry up``, the CLI using its server) is in
tests/deployments/test_up_discovery.py; these check the rules one by one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from ferry import local_server
from ferry.local_server import LocalServer


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No Prefect URL configured, no profile, nothing discovered yet; PREFECT_API_URL restored afterwards."""
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.setenv(name, "")  # recorded, so whatever discover() sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setattr(local_server, "_in_use", None)
    data = tmp_path / "data"
    data.mkdir()
    return data


def _server(pid: int | None = None, url: str = "http://127.0.0.1:4999/api", **extra) -> LocalServer:
    pid = pid or os.getpid()
    return LocalServer(
        api_url=url, ui_url=url.removesuffix("/api"), pid=pid, started="2026-12-01T00:00:00Z",
        pid_started=local_server.process_start_ticks(pid), **extra,
    )  # fmt: skip


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_published_state_is_owner_only_and_found(clean):
    path = local_server.publish(_server(), clean)
    assert path == clean.resolve() / "run" / "prefect-server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left
    assert local_server.find(clean) == _server()


def test_discover_sets_prefect_api_url_for_this_process(clean):
    local_server.publish(_server(), clean)
    found = local_server.discover(clean)
    assert found is not None and local_server.in_use() == found
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:4999/api"
    assert os.environ["PREFECT_UI_URL"] == "http://127.0.0.1:4999"
    assert "ferry up" in found.describe() and found.api_url in found.describe()


def test_a_stale_state_file_is_ignored_and_removed(clean):
    path = local_server.publish(_server(pid=_dead_pid()), clean)
    assert local_server.discover(clean) is None
    assert "PREFECT_API_URL" not in os.environ
    assert not path.exists()


def test_a_reused_pid_is_not_the_server(clean):
    """The pid is alive, but it is another process than the one that started the server (start time differs)."""
    server = _server()
    if server.pid_started is None:
        pytest.skip("no /proc start times here")
    local_server.publish(LocalServer(**{**server.__dict__, "pid_started": server.pid_started - 1}), clean)
    assert local_server.discover(clean) is None


def test_explicit_prefect_api_url_wins(clean, monkeypatch):
    local_server.publish(_server(), clean)
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert local_server.discover(clean) is None
    assert os.environ["PREFECT_API_URL"] == "http://prefect.example:4200/api"


def test_a_profile_naming_a_server_wins(clean, tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://prefect.example:4200/api"\n')
    local_server.publish(_server(), clean)
    assert local_server.discover(clean) is None
    assert "PREFECT_API_URL" not in os.environ


def test_only_loopback_servers_are_used(clean):
    local_server.publish(_server(url="http://10.1.2.3:4200/api"), clean)
    assert local_server.discover(clean) is None
    for url, loopback in [
        ("http://127.0.0.1:1/api", True),
        ("http://localhost:1/api", True),
        ("http://[::1]:1/api", True),
        ("http://127.5.0.1:1/api", True),
        ("https://prefect.example/api", False),
        ("file:///tmp/x", False),
        ("not a url", False),
    ]:
        assert local_server.is_loopback(url) is loopback, url


def test_a_broken_state_file_is_ignored(clean):
    path = local_server.state_path(clean)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert local_server.discover(clean) is None
    path.write_text(json.dumps({"api_url": "http://127.0.0.1:1/api"}))  # no pid
    assert local_server.discover(clean) is None


def test_withdraw_removes_only_its_own_state(clean):
    path = local_server.publish(_server(), clean)
    assert not local_server.withdraw(os.getpid() + 1, clean)  # another ferry up's file stays
    assert path.exists()
    assert local_server.withdraw(os.getpid(), clean)
    assert not path.exists()


def test_wake_runner_signals_only_a_runner(clean):
    """The pid must be a live runner (``deployments.draining``): this test process is not, so nothing is signalled."""
    assert not local_server.wake_runner(_server(runner_pid=os.getpid()))
    assert not local_server.wake_runner(_server(runner_pid=_dead_pid()))
    assert not local_server.wake_runner(_server())


def test_the_cli_uses_the_published_server_before_prefect_reads_its_settings(clean, tmp_path):
    """In a fresh ``ferry`` process: the callback sets PREFECT_API_URL from the file, and Prefect's settings say so."""
    local_server.publish(_server(), clean)
    probe = (
        "import sys\n"
        "from cli.main import app\n"
        "@app.command('probe-settings', hidden=True)\n"
        "def probe():\n"
        "    from prefect.settings import get_current_settings\n"
        "    print(get_current_settings().api.url)\n"
        "sys.argv = ['ferry', 'probe-settings']\n"
        "app()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(FERRY_DATA_DIR=str(clean), PREFECT_HOME=str(tmp_path / "prefect-home"))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1:] == ["http://127.0.0.1:4999/api"], done.stdout + done.stderr

    env["PREFECT_API_URL"] = "http://127.0.0.1:5999/api"  # set explicitly: it wins
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1:] == ["http://127.0.0.1:5999/api"], done.stdout + done.stderr
