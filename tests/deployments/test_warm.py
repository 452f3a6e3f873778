"""Warm run processes (deployments/warm.py) under a real ``ferry serve`` and Prefect server (PostgreSQL).

A probe flow, deployed with Ferry's tag so ``ferry serve`` serves it, records
the process it ran in. Checked: a run goes to the warm process that was waiting
(and a new one waits after it), a SIGUSR1 makes the runner take a run long
before its next poll, a warm run can be cancelled like any other, and with
``FERRY_WARM_RUNS=0`` runs start the usual way. The module form of Ferry's own
entrypoints is checked without a server.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from servers.prefect import FerryProcess, deployment_ready, ferry_env, wait_for

from deployments import project
from deployments.warm import direct_entrypoint

POLL_SECONDS = 120  # longer than any wait below: a run taken sooner was taken because the runner was woken

PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from prefect import flow

    @flow(name="ferry-warm-probe")
    def probe(out: str, seconds: float = 0.0):
        Path(out).write_text(json.dumps({"pid": os.getpid(), "argv": sys.orig_argv, "cwd": os.getcwd()}))
        time.sleep(seconds)
        return os.getpid()
    """
)


def test_direct_entrypoints_are_ferrys_own_flow_modules():
    ferry = project.PULL_STEPS
    assert direct_entrypoint(SimpleNamespace(pull_steps=ferry, entrypoint="flows/export.py:export_data")) == "flows.export:export_data"
    assert direct_entrypoint(SimpleNamespace(pull_steps=ferry, entrypoint="flows/import_.py:import_data")) == "flows.import_:import_data"
    other = [{"prefect.deployments.steps.git_clone": {"repository": "https://example.com/x.git"}}]
    for pull_steps, entrypoint in [
        (other, "flows/export.py:export_data"),  # another pull step: Prefect runs it
        (ferry, "/abs/flows/export.py:export_data"),
        (ferry, "../flows/export.py:export_data"),
        (ferry, "flows/missing.py:export_data"),
        (ferry, "flows/export.py:not-a-name"),
        (ferry, "flows.export:export_data"),
        (None, "flows/export.py:export_data"),
    ]:
        assert direct_entrypoint(SimpleNamespace(pull_steps=pull_steps, entrypoint=entrypoint)) is None, (pull_steps, entrypoint)


@pytest.fixture(scope="module")
def probe_deployment(prefect_api, tmp_path_factory):
    """The probe flow as a deployment ``ferry serve`` serves (tag ``ferry``), its pull step into the probe's folder."""
    from prefect import get_client
    from prefect.utilities.callables import parameter_schema

    folder = tmp_path_factory.mktemp("warm-probe")
    (folder / "probe_flow.py").write_text(PROBE)
    sys.path.insert(0, str(folder))
    try:
        import probe_flow
    finally:
        sys.path.remove(str(folder))
    with get_client(sync_client=True) as client:
        project.ensure_work_pool(client)
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("ferry-warm-probe"),
            name="probe",
            entrypoint=f"{folder / 'probe_flow.py'}:probe",
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(folder)}}],
            parameter_openapi_schema=parameter_schema(probe_flow.probe).model_dump(),
            tags=[project.FERRY_TAG],
            work_pool_name=project.WORK_POOL,
        )
    return SimpleNamespace(id=deployment_id, folder=folder)


def _serve(prefect_api, tmp_path, name: str, **extra: str) -> FerryProcess:
    store = f"sqlite:///{tmp_path / 'ferry.db'}"
    env = ferry_env(prefect_api.api_url, tmp_path / "data", store, **extra)
    args = ["serve", "--no-deploy", "--poll-seconds", str(POLL_SECONDS), "--sync-seconds", "2", "--limit", "2"]
    return FerryProcess(args, env, tmp_path, name).start()


def _standbys(pid: int) -> set[int]:
    found = set()
    for child in psutil.Process(pid).children():
        try:
            if "deployments.warm" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def _start_run(deployment_id, out: Path, seconds: float = 0.0):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id, parameters={"out": str(out), "seconds": seconds})


def _state(run_id) -> str:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.type.value if state else "NONE"


def _polled(serve: FerryProcess) -> bool:
    """The runner has polled for the probe's runs (Prefect marks the deployment READY)."""
    return "Serving ferry-warm-probe/probe" in serve.log_text() and deployment_ready("ferry-warm-probe/probe")


def test_runs_go_to_the_warm_process_when_woken_and_can_be_cancelled(prefect_api, probe_deployment, tmp_path):
    serve = _serve(prefect_api, tmp_path, "serve")
    logs = lambda: serve.log_text() + prefect_api.log_text()[-3000:]  # noqa: E731
    try:
        wait_for(lambda: _polled(serve) and _standbys(serve.process.pid), 180, "ferry serve with a warm process", logs=logs)
        waiting = _standbys(serve.process.pid)

        out = tmp_path / f"{uuid.uuid4().hex}.json"
        run = _start_run(probe_deployment.id, out)
        serve.process.send_signal(signal.SIGUSR1)  # the runner looks for runs now, not in POLL_SECONDS
        wait_for(lambda: _state(run.id) == "COMPLETED", POLL_SECONDS - 20, "the woken runner to run the probe", logs=logs)
        ran = json.loads(out.read_text())
        assert ran["pid"] in waiting, (ran, waiting)  # the run went to the warm process that was waiting
        assert ran["argv"][-2:] == ["-m", "deployments.warm"]
        assert Path(ran["cwd"]).resolve() == probe_deployment.folder.resolve()  # its pull step ran
        wait_for(lambda: _standbys(serve.process.pid) - waiting, 120, "a new warm process", logs=logs)

        # a warm run is cancelled as any run is: Cancelling -> its process ends -> Cancelled
        from prefect import get_client
        from prefect.states import Cancelling

        out = tmp_path / f"{uuid.uuid4().hex}.json"
        run = _start_run(probe_deployment.id, out, seconds=600)
        serve.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: out.exists() and _state(run.id) == "RUNNING", POLL_SECONDS - 20, "the long probe running", logs=logs)
        pid = json.loads(out.read_text())["pid"]
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(), force=True)
        wait_for(lambda: _state(run.id) == "CANCELLED", 120, "the warm run to be cancelled", logs=logs)
        wait_for(lambda: not _alive(pid), 60, "its process to end")
        waiting = _standbys(serve.process.pid)
    finally:
        assert serve.stop() == 0, serve.log_text()
    wait_for(lambda: not any(_alive(p) for p in waiting), 30, "the warm process to end with ferry serve")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_warm_runs_can_be_turned_off(prefect_api, probe_deployment, tmp_path):
    serve = _serve(prefect_api, tmp_path, "serve-cold", FERRY_WARM_RUNS="0")
    logs = lambda: serve.log_text()  # noqa: E731
    try:
        wait_for(lambda: _polled(serve), 180, "ferry serve polling", logs=logs)
        out = tmp_path / "cold.json"
        run = _start_run(probe_deployment.id, out)
        serve.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: _state(run.id) == "COMPLETED", POLL_SECONDS - 20, "the probe to run", logs=logs)
        assert json.loads(out.read_text())["argv"][1:3] == ["-m", "prefect.engine"]  # Prefect's own way
        assert not _standbys(serve.process.pid)
    finally:
        serve.stop()
