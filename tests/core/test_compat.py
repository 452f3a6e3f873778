"""State stored before the layout moved keeps working after it.

``tests/cases/old_layout/`` holds what the old layout wrote: run records,
a download link and errors as Prefect persists them (pickled by class path),
and a job with the deployment parameters it created. Prefect deployments name
their code by entrypoint (``flows/export.py:export_data``): a job created then
must still run and read back now.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from prefect.serializers import PickleSerializer

from ferry.errors import DestinationError, ParameterError
from ferry.records import ExportRecord, ImportRecord, RollbackRecord
from flows.reissue_url import DownloadLink

OLD = Path(__file__).parents[1] / "cases" / "old_layout"


def test_results_persisted_by_the_old_layout_unpickle_as_todays_classes():
    stored = json.loads((OLD / "persisted_results.json").read_text())
    loaded = {name: PickleSerializer().loads(base64.b64decode(data)) for name, data in stored.items()}
    assert isinstance(loaded["export_record"], ExportRecord) and loaded["export_record"].record_count == 3
    assert isinstance(loaded["export_record_failed"], ExportRecord) and loaded["export_record_failed"].error == "boom"
    assert isinstance(loaded["import_record"], ImportRecord) and loaded["import_record"].created_rows == 2
    assert isinstance(loaded["rollback_record"], RollbackRecord)
    assert isinstance(loaded["download_link"], DownloadLink) and loaded["download_link"].url == "https://example.invalid/x"
    error = loaded["destination_error"]
    assert isinstance(error, DestinationError) and error.hint == "Check the credentials block." and not error.transient
    assert isinstance(loaded["parameter_error"], ParameterError) and loaded["parameter_error"].problems[0].field == "format"


def test_a_job_created_on_the_old_entrypoint_runs_and_reads_back(prefect_api, store, tmp_path):
    """A deployment written by the old layout (its entrypoint and parameters, verbatim) is a job today and runs."""
    from prefect import get_client
    from prefect.flows import load_flow_from_entrypoint

    from deployments import project
    from deployments.jobs import JobService
    from ferry.runs import list_runs, read_record, run_result

    old = json.loads((OLD / "job_deployment.json").read_text())
    assert old["entrypoint"] == project.EXPORT_ENTRYPOINT
    name = f"old-layout-{uuid.uuid4().hex[:6]}"
    parameters = {"request": {**old["parameters"]["request"], "destination": str(tmp_path), "actor": f"job:{name}"}}
    with get_client(sync_client=True) as client:
        project.ensure_work_pool(client)
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(project.EXPORT_FLOW),
            name=name,
            parameters=parameters,
            tags=[project.FERRY_TAG, project.JOB_TAG],
            work_pool_name=project.WORK_POOL,
            entrypoint=old["entrypoint"],
            pull_steps=project.PULL_STEPS,
        )
    job = JobService().get(name)
    assert job.scope.workspace == "acme" and job.scope.lists == ["vip"] and job.compress and job.incremental
    assert job.options == {"delimiter": ";"} and job.scope.filters[0].field == "lifecycle_stage"

    # What a worker does with the deployment: load the flow from its entrypoint (relative to the code
    # directory, as the pull step sets it) and run it with the deployment's parameters.
    export_data = load_flow_from_entrypoint(str(project.PROJECT_ROOT / old["entrypoint"]))
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    from prefect.flow_engine import run_flow

    state = run_flow(export_data, flow_run=flow_run, parameters=parameters, return_type="state")
    record = run_result(state)
    assert isinstance(record, ExportRecord) and record.status == "success", record
    with get_client(sync_client=True) as client:
        runs = list_runs(client, deployment_id)
        assert [r.id for r in runs] == [str(flow_run.id)] and runs[0].status == "success"
        assert read_record(client.read_flow_run(flow_run.id)).record_count == record.record_count > 0
    JobService().delete(name)
