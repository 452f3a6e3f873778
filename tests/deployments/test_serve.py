"""``ferry serve``, ``ferry worker`` and ``prefect deploy --all`` against a real Prefect server (PostgreSQL).

What plain ``prefect serve`` gets wrong for Ferry and ``ferry serve`` must get
right: a restart keeps what operators paused, stopping pauses nothing, jobs
created while it runs are served, and the same deployments move to workers on
other hosts without being re-created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers.prefect import FerryProcess, deployment_ready, ferry_env, wait_for

from deployments import project

RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    url = f"sqlite:///{tmp_path_factory.mktemp('serve-store') / 'ferry.db'}"
    engine = get_engine(url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=30, events=50, products=2), seed=9)
    return url


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def test_prefect_deploy_all_accepts_prefect_yaml(prefect_api, tmp_path):
    """Prefect's own CLI deploys the file as is (the many-machines path: deploy once, then workers)."""
    with _client() as client:
        project.ensure_work_pool(client)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=prefect_api.api_url, PREFECT_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=project.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with _client() as client:
        cleanup = client.read_deployment_by_name("cleanup-managed-exports/daily")
        imports = client.read_deployment_by_name("import-data/default")
        example = client.read_deployment_by_name("export-data/nightly-contacts-example")
    assert cleanup.work_pool_name == imports.work_pool_name == "ferry"
    assert cleanup.pull_steps == project.PULL_STEPS  # resolved on the worker's host, not at deploy time
    assert cleanup.schedules[0].schedule.cron == "30 3 * * *" and cleanup.schedules[0].active
    assert example.schedules[0].schedule.timezone == "Europe/Berlin" and not example.schedules[0].active
    assert example.parameters["request"]["destination"] == "local-directory/nightly-exports"


def test_serve_keeps_paused_state_serves_new_jobs_and_workers_take_over(prefect_api, store_url, tmp_path):
    from deployments.job_model import ExportJob, JobScope
    from deployments.jobs import JobService

    data_dir = tmp_path / "data"
    env = ferry_env(prefect_api.api_url, data_dir, store_url)
    service = JobService()

    with _client() as client:  # an operator paused the retention deployment in the UI
        from deployments.serve import apply_project_deployments

        ids = apply_project_deployments(client)
        client.pause_deployment(ids["cleanup-managed-exports/daily"])

    serve = FerryProcess(["serve", "--poll-seconds", "1", "--sync-seconds", "1", "--limit", "2"], env, tmp_path, "serve")
    worker = FerryProcess(
        ["worker", "--limit", "2", "--name", "test-worker"], {**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, tmp_path, "worker"
    )
    logs = lambda: serve.log_text() + worker.log_text() + prefect_api.log_text()  # noqa: E731
    try:
        serve.start()
        wait_for(lambda: deployment_ready("export-data/default"), 180, "ferry serve polling", logs=logs)
        with _client() as client:
            assert client.read_deployment_by_name("cleanup-managed-exports/daily").paused is True  # not re-activated
            assert client.read_deployment_by_name("cleanup-managed-exports/daily").schedules  # nor its schedule dropped

        # a job created while serve runs is discovered and served without a restart
        job = service.create(ExportJob(name="late-comer", scope=JobScope(workspace="acme", resource="contacts")))
        run = service.run_now(job.id, wait=True, timeout=RUN_TIMEOUT)
        assert run.status == "success" and run.record_count == 30, (run, logs())
        with _client() as client:
            state = client.read_flow_run(run.id).state
        results = (data_dir / "results").resolve()
        assert Path(state.data.storage_key).parent == results  # run records under the Ferry data dir

        # concurrent runs on the PostgreSQL backend (SQLite's server database says "database is locked" here)
        started = [service.run_now("late-comer") for _ in range(3)]

        def all_final():
            with _client() as client:
                states = [client.read_flow_run(r.id).state for r in started]
            return states if all(s.is_final() for s in states) else None

        finals = wait_for(all_final, RUN_TIMEOUT * 2, "three concurrent runs to end", logs=logs)
        assert all(s.is_completed() for s in finals), [s.message for s in finals]
        assert [r.status for r in service.runs("late-comer", limit=4)] == ["success"] * 4

        assert serve.stop() == 0, serve.log_text()
        with _client() as client:  # stopping paused nothing (plain serve pauses everything it served)
            assert client.read_deployment(job.id).paused is False
            assert client.read_deployment_by_name("export-data/default").paused is False

        # many machines: the same deployments, now executed by a process worker polling the `ferry` pool
        worker.start()
        again = service.run_now("late-comer", wait=True, timeout=RUN_TIMEOUT)
        assert again.status == "success" and again.record_count == 30, (again, logs())
        with _client() as client:
            flow_run = client.read_flow_run(again.id)
        assert flow_run.work_pool_name == "ferry"
        assert again.id in worker.log_text()  # this run went through the worker, not a runner
    finally:
        serve.stop()
        worker.stop()
