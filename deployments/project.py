"""What every Ferry deployment shares: work pool, pull step, tags, and the environment runs need.

All of Ferry's deployments (those declared in ``prefect.yaml`` and the export
jobs) sit in one ``process`` work pool and find their code through one pull
step, ``set_working_directory: {{ $FERRY_CODE_DIR }}``, resolved on the machine
that executes the run. So the same deployments run under ``ferry serve`` (one
process, nothing else to start) and under ``ferry worker`` / ``prefect worker
start --pool ferry`` on any number of hosts, without being re-created when an
operator moves from one to the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"

WORK_POOL = os.environ.get("FERRY_WORK_POOL", "ferry")
#: Every deployment Ferry manages carries this tag; export jobs carry JOB_TAG too.
FERRY_TAG = "ferry"
JOB_TAG = "ferry-job"
EXPORT_FLOW = "export-data"
EXPORT_ENTRYPOINT = "flows/export.py:export_data"
ADHOC_EXPORT_DEPLOYMENT = f"{EXPORT_FLOW}/default"

CODE_DIR_VARIABLE = "FERRY_CODE_DIR"
PULL_STEPS: list[dict[str, Any]] = [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $" + CODE_DIR_VARIABLE + " }}"}}]

_RESULT_SETTINGS = (
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH",
    "PREFECT_LOCAL_STORAGE_PATH",
    "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK",
    "PREFECT_DEFAULT_RESULT_STORAGE_BLOCK",
)


def results_dir() -> Path:
    """Where run records are persisted when the operator configured nothing: ``$FERRY_DATA_DIR/results``."""
    from ferry.settings import get_settings

    return (get_settings().data_dir / "results").resolve()


def run_environment() -> dict[str, str]:
    """Environment variables that flow runs started from this process need, unless already set.

    * ``FERRY_CODE_DIR``: where the pull step finds ``flows/`` (this checkout).
    * ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``: run records (the flows' persisted
      results) go under the Ferry data dir, an absolute path stored in each run's
      state, so ``ferry jobs runs`` on this machine reads them back. With several
      hosts, point ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`` at shared storage
      (an S3/GCS/Azure block) instead; then this default steps aside.
    """
    env: dict[str, str] = {}
    if not os.environ.get(CODE_DIR_VARIABLE):
        env[CODE_DIR_VARIABLE] = str(PROJECT_ROOT)
    if not any(os.environ.get(name) for name in _RESULT_SETTINGS):
        env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(results_dir())
    return env


def prepare_run_environment() -> dict[str, str]:
    """Put :func:`run_environment` into ``os.environ`` (inherited by every run subprocess); returns what was set."""
    env = run_environment()
    os.environ.update(env)
    if "PREFECT_RESULTS_LOCAL_STORAGE_PATH" in env:
        Path(env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]).mkdir(parents=True, exist_ok=True)
    return env


def ensure_work_pool(client, name: str = WORK_POOL) -> None:
    """Create the ``process`` work pool on first use (sync client); an existing pool is left alone."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
        return
    except ObjectNotFound:
        pass
    try:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=ProcessWorker.type,
                base_job_template=ProcessWorker.get_default_base_job_template(),
                description="Ferry's runs: `ferry serve`, `ferry worker` or `prefect worker start --pool ferry`.",
            )
        )
    except ObjectAlreadyExists:  # created meanwhile by another process
        pass
