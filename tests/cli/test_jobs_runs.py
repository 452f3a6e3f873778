"""``ferry jobs run-now`` / ``ferry jobs runs`` on the session's Prefect server, where nothing executes runs.

The run waits, Scheduled, so run-now warns, and the run is listed (as scheduled,
late) although it has not started. Once a runner polls for the deployment's
runs (here: the same API call ``ferry serve``'s runner makes), Prefect marks the
deployment READY and run-now no longer warns.
"""

from __future__ import annotations

import json
import time
import uuid

from ferry_cli import ferry, ferry_json


def test_run_now_warns_when_nothing_executes_runs_and_runs_lists_the_waiting_run():
    name = f"unserved-{uuid.uuid4().hex[:6]}"
    job = ferry_json("jobs", "create", "--name", name, "--workspace", "acme", "--resource", "contacts", "--fields", "email")

    started = ferry("jobs", "run-now", name, "--json")

    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)  # stdout stays the run's JSON
    assert "Nothing is executing runs of export-data/" + name in started.stderr and "ferry serve" in started.stderr
    assert "NOT_READY" in started.stderr

    listed = ferry_json("jobs", "runs", name)
    assert [r["id"] for r in listed] == [run["id"]]
    assert listed[0]["status"] == "scheduled" and listed[0]["scheduledAt"] is not None and listed[0]["startedAt"] is None
    assert listed[0]["late"] is False  # not yet: Prefect calls a run Late 15 s past its time
    from prefect.settings import PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS, temporary_settings

    with temporary_settings(updates={PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS: 1}):  # Prefect's own "Late" (15 s by default)
        time.sleep(1.5)
        text = ferry("jobs", "runs", name).stdout
    assert run["id"] in text and "scheduled" in text and "late: nothing has started it yet" in text
    assert ferry_json("jobs", "runs", name, "--upcoming", "0") == []  # the history alone: nothing has run

    from prefect import get_client
    from prefect.client.schemas.objects import DeploymentStatus

    with get_client(sync_client=True) as client:  # what a runner (`ferry serve`) does to poll: Prefect marks the deployment READY
        client.get_scheduled_flow_runs_for_deployments(deployment_ids=[uuid.UUID(job["id"])])
        deadline = time.monotonic() + 30
        while client.read_deployment(job["id"]).status != DeploymentStatus.READY and time.monotonic() < deadline:
            time.sleep(0.5)
    again = ferry("jobs", "run-now", name)
    assert again.exit_code == 0 and "Nothing is executing" not in again.stderr, again.stderr
    assert len(ferry_json("jobs", "runs", name)) == 2
    ferry_json("jobs", "delete", name)
