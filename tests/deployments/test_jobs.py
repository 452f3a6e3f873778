"""Export jobs end to end: a real Prefect server (PostgreSQL), ``ferry serve`` executing runs, the CLI.

The schedule test uses a real cron schedule with a seconds field (``*/5``,
which Prefect's cron accepts as a sixth field) so a scheduled run fires within
seconds instead of the next minute; everything else about it - the server's
scheduler creating the run, the runner picking it up, the record landing in
the ledger - is what a nightly ``0 2 * * *`` job goes through.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from ferry_cli import ferry, ferry_json
from servers.prefect import FerryProcess, deployment_ready, ferry_env, wait_for

CONTACTS = 40
RUN_TIMEOUT = 240  # seconds a run may take on a loaded 2-core machine (subprocess start + export)


@pytest.fixture(scope="module")
def job_store(tmp_path_factory):
    """A writable SQLite store with one small workspace, shared with the serve process."""
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace

    url = f"sqlite:///{tmp_path_factory.mktemp('job-store') / 'ferry.db'}"
    engine = get_engine(url)
    upgrade(engine)
    seed_workspace(engine, "acme", SeedCounts(contacts=CONTACTS, events=100, products=3), seed=5)
    return url, engine


@pytest.fixture(scope="module")
def served(prefect_api, job_store, tmp_path_factory):
    """``ferry serve`` as a child process: applies prefect.yaml, then runs every Ferry deployment and job."""
    workdir = tmp_path_factory.mktemp("serve")
    env = ferry_env(prefect_api.api_url, workdir / "data", job_store[0])
    process = FerryProcess(["serve", "--poll-seconds", "1", "--sync-seconds", "1", "--limit", "4"], env, workdir, "serve")
    process.start()
    try:
        wait_for(
            lambda: deployment_ready("export-data/default"),
            180,
            "ferry serve polling export-data/default",
            logs=lambda: process.log_text() + prefect_api.log_text(),
        )
        yield process
    finally:
        process.stop()


@pytest.fixture
def service(served, job_store):
    """The job service; the CLI of this process reads the store ``ferry serve`` writes (its preflight checks it)."""
    import os

    from deployments.jobs import JobService
    from ferry.settings import reload_settings

    before = os.environ.get("FERRY_DATABASE_URL")
    os.environ["FERRY_DATABASE_URL"] = job_store[0]
    reload_settings()
    yield JobService()
    if before is None:
        os.environ.pop("FERRY_DATABASE_URL", None)
    else:
        os.environ["FERRY_DATABASE_URL"] = before
    reload_settings()


def run_of(served, service, job: str, wait: bool = True):
    return service.run_now(job, wait=wait, timeout=RUN_TIMEOUT)


# --- the job service and CLI without runs ------------------------------------------------------------


def test_create_show_list_update_and_validation(served, service):
    created = ferry_json(
        "jobs",
        "create",
        "--name",
        "crm-contacts",
        "--description",
        "Customers for the CRM",
        "--workspace",
        "acme",
        "--resource",
        "contacts",
        "--fields",
        "email,first_name",
        "--filter",
        "lifecycle_stage:eq:customer",
        "--format",
        "jsonl",
        "--compress",
        "--filename",
        "{resource}-{date}.{format}",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--option",
        "date_format=L",
    )
    assert created["deployment"] == "export-data/crm-contacts" and created["active"] is True
    assert created["schedule"] == {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}
    assert created["scope"]["fields"] == ["email", "first_name"] and created["scope"]["filters"][0]["value"] == "customer"
    assert created["compress"] is True and created["format"] == "jsonl" and created["options"] == {"date_format": "L"}
    assert created["nextRunAt"] is not None  # Prefect's scheduler already holds the next 02:00 Berlin run

    from prefect import get_client

    with get_client(sync_client=True) as client:  # it is a plain Prefect deployment: the UI and API see the same
        deployment = client.read_deployment_by_name("export-data/crm-contacts")
    assert str(deployment.id) == created["id"] and deployment.work_pool_name == "ferry"
    assert deployment.parameters["request"]["gzip"] is True and deployment.schedules[0].schedule.timezone == "Europe/Berlin"

    assert [j["name"] for j in ferry_json("jobs", "list")].count("crm-contacts") == 1
    assert ferry_json("jobs", "show", created["id"]) == ferry_json("jobs", "show", "crm-contacts")

    # update is a full replace: the format changes, the schedule and filter not given are gone, id stays
    updated = ferry_json("jobs", "update", "crm-contacts", "--workspace", "acme", "--resource", "contacts", "--format", "csv", "--gzip")
    assert updated["id"] == created["id"] and updated["format"] == "csv" and updated["schedule"] is None
    assert updated["scope"]["filters"] == [] and updated["nextRunAt"] is None
    assert updated["compress"] is True  # `ferry export`'s spelling, --gzip, works for jobs too

    duplicate = ferry("jobs", "create", "--name", "crm-contacts", "--workspace", "acme", "--resource", "contacts")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.stderr

    bad = ferry(
        "jobs",
        "create",
        "--name",
        "bad job",
        "--workspace",
        "acme",
        "--resource",
        "contacts",
        "--fields",
        "nope",
        "--cron",
        "61 * * * *",
        "--timezone",
        "Mars/Olympus",
        "--filename",
        "{oops}.csv",
        "--option",
        "gzip=true",
    )
    assert bad.exit_code == 2
    for expected in (
        "name='bad job'",
        "schedule.cron='61 * * * *'",
        "schedule.timezone='Mars/Olympus'",
        "options.gzip=True",
        "scope.fields[0]='nope'",
    ):
        assert expected in bad.stderr, bad.stderr
    assert "bad job" not in [j["name"] for j in ferry_json("jobs", "list")]

    missing = ferry("jobs", "show", "no-such-job")
    assert missing.exit_code == 2 and "No export job 'no-such-job'" in missing.stderr
    ferry_json("jobs", "delete", "crm-contacts")


# --- runs ------------------------------------------------------------------------------------------


def test_scheduled_run_then_pause_survives_serve_restart_and_resume(prefect_api, served, service):
    from prefect import get_client

    from deployments.job_model import ExportJob, JobSchedule, JobScope
    from deployments.jobs import scheduled_runs

    job = service.create(
        ExportJob(
            name="every-10s",
            scope=JobScope(workspace="acme", resource="contacts", fields=["email"]),
            schedule=JobSchedule(cron="* * * * * */10", timezone="Europe/Berlin"),
            compress=True,
        )
    )
    logs = lambda: served.log_text() + prefect_api.log_text()  # noqa: E731

    first = wait_for(
        lambda: next((r for r in service.runs(job.id) if r.status == "success"), None),
        RUN_TIMEOUT,
        "a scheduled run of every-10s",
        logs=logs,
    )
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(first.id).auto_scheduled  # fired by the cron schedule, not by hand
    path = Path(first.destination_path)
    assert first.job_id == job.id and first.record_count == CONTACTS and first.file_size == path.stat().st_size
    with gzip.open(path, "rt", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == CONTACTS
    assert first.started_at <= first.completed_at

    paused = service.pause(job.id)
    paused_at = datetime.now(UTC)
    assert paused.active is False and paused.next_run_at is None
    with get_client(sync_client=True) as client:
        assert [r for r in scheduled_runs(client, job.id) if r.auto_scheduled] == []

    # a restart of ferry serve keeps the job paused (plain Prefect serve would re-activate it)
    assert served.stop() == 0, served.log_text()
    with get_client(sync_client=True) as client:
        assert client.read_deployment(job.id).paused is True
        assert client.read_deployment_by_name("export-data/default").paused is False  # stopping paused nothing
    served.start()
    wait_for(lambda: service.get(job.id).active is False and deployment_ready("export-data/default"), 120, "ferry serve back", logs=logs)
    wait_for(lambda: all(r.status != "running" for r in service.runs(job.id)), RUN_TIMEOUT, "runs in flight to end", logs=logs)
    time.sleep(12)  # two cron periods and more: nothing may fire while paused
    with get_client(sync_client=True) as client:
        from ferry.runs import deployment_filter

        fired = [
            r
            for r in client.read_flow_runs(deployment_filter=deployment_filter(job.id))
            if (r.expected_start_time or paused_at) > paused_at
        ]
    assert fired == [], [(r.name, r.state_name, r.expected_start_time) for r in fired]

    resumed_at = datetime.now(UTC)
    assert service.resume(job.id).active is True

    def ran_after_resume():
        return next((r for r in service.runs(job.id) if r.status == "success" and r.started_at > resumed_at), None)

    again = wait_for(ran_after_resume, RUN_TIMEOUT, "a scheduled run after resume", logs=logs)
    with get_client(sync_client=True) as client:
        resumed_run = client.read_flow_run(again.id)
    assert resumed_run.auto_scheduled and resumed_run.expected_start_time >= resumed_at.replace(microsecond=0)
    service.pause(job.id)


def _add_contacts(engine: sa.Engine, emails: list[str]) -> None:
    from ferry.store import schema as s

    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        ws = conn.execute(sa.select(s.workspaces.c.id).where(s.workspaces.c.slug == "acme")).scalar_one()
        next_id = conn.execute(sa.select(sa.func.max(s.contacts.c.id))).scalar_one() + 1
        conn.execute(
            s.contacts.insert(),
            [
                {"id": next_id + i, "workspace_id": ws, "email": email, "first_name": "New", "created_at": now, "updated_at": now}
                for i, email in enumerate(emails)
            ],
        )


def test_incremental_job_second_run_exports_only_new_rows(served, service, job_store):
    job = ferry_json(
        "jobs",
        "create",
        "--name",
        "nightly-delta",
        "--workspace",
        "acme",
        "--resource",
        "contacts",
        "--fields",
        "email,first_name",
        "--incremental",
    )
    assert job["incremental"] is True

    first = run_of(served, service, "nightly-delta")
    assert first.status == "success" and first.record_count == CONTACTS, first

    _add_contacts(job_store[1], ["delta.one@example.test", "delta.two@example.test"])
    second = run_of(served, service, "nightly-delta")
    assert second.status == "success" and second.record_count == 2, second
    with open(second.destination_path, newline="") as handle:
        assert sorted(r["email"] for r in csv.DictReader(handle)) == ["delta.one@example.test", "delta.two@example.test"]

    runs = ferry_json("jobs", "runs", "nightly-delta")
    assert [r["id"] for r in runs] == [second.id, first.id]  # newest first
    assert [r["recordCount"] for r in runs] == [2, CONTACTS]
    assert set(runs[0]) == {
        "id",
        "jobId",
        "status",
        "startedAt",
        "completedAt",
        "recordCount",
        "fileSize",
        "destinationPath",
        "error",
        "scheduledAt",
        "late",
    }
    assert ferry_json("jobs", "runs", "nightly-delta", "--limit", "1") == runs[:1]


def test_failed_run_shows_its_error_notifies_and_delete_removes_job_and_history(prefect_api, served, service, httpserver):
    from prefect import get_client
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.exceptions import ObjectNotFound

    httpserver.expect_request("/alerts", method="POST").respond_with_data("ok")
    CustomWebhookNotificationBlock(
        name="ferry-tests", url=httpserver.url_for("/alerts"), json_data={"text": "{{subject}} | {{body}}"}
    ).save("job-alerts", overwrite=True)
    job = ferry_json(
        "jobs",
        "create",
        "--name",
        "broken-segment",
        "--workspace",
        "acme",
        "--resource",
        "contacts",
        "--segment",
        "no-such-segment",
        "--notify",
        "failed:custom-webhook/job-alerts",
    )
    assert job["notifications"] == [{"on": ["failed"], "block": "custom-webhook/job-alerts"}]
    result = ferry("jobs", "run-now", "broken-segment", "--wait", "--json")
    assert result.exit_code == 1, result.output  # a failed run fails the command
    assert "Nothing is executing" not in result.stderr  # ferry serve executes it (a job just created: it polls export-data/default)
    run = json.loads(result.stdout)
    assert run["status"] == "failed" and "segment='no-such-segment'" in run["error"]

    # the job's notification is a Prefect automation: the server posts to the webhook block
    posted = wait_for(
        lambda: [json.loads(request.get_data()) for request, _ in httpserver.log],
        120,
        "the failure notification",
        logs=prefect_api.log_text,
    )
    assert "broken-segment" in posted[0]["text"] and run["id"] in posted[0]["text"] and "no-such-segment" in posted[0]["text"]

    listed = ferry_json("jobs", "runs", "broken-segment")
    assert listed[0]["id"] == run["id"] and listed[0]["status"] == "failed"
    assert "no segment with this audience key" in listed[0]["error"] and listed[0]["destinationPath"] is None

    shown = ferry_json("runs", "show", run["id"])
    assert shown["run"]["deployment"] == "export-data/broken-segment" and shown["run"]["state"] == "Failed"
    assert shown["record"]["status"] == "failed" and "no-such-segment" in shown["record"]["error"]
    summary = next(a for a in shown["artifacts"] if a["key"] == "export-summary")
    assert "Export failed" in summary["data"]

    deleted = ferry_json("jobs", "delete", "broken-segment")
    assert deleted["deleted"]["name"] == "broken-segment"
    assert ferry("jobs", "show", "broken-segment").exit_code == 2
    with get_client(sync_client=True) as client:
        with pytest.raises(ObjectNotFound):
            client.read_flow_run(run["id"])
        with pytest.raises(ObjectNotFound):
            client.read_deployment_by_name("export-data/broken-segment")
        assert not [a for a in client.read_automations() if job["id"] in a.name]  # its notifications went too


def test_adhoc_export_runs_through_the_default_deployment(served, service):
    from prefect import get_client

    result = ferry("export", "contacts", "--workspace", "acme", "--fields", "email", "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "success" and record["record_count"] == 5
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(record["run_id"])
        assert client.read_deployment(run.deployment_id).name == "default"  # in export-data/default's history
    assert Path(record["destination_path"]).exists()


def test_adhoc_runs_on_a_served_deployment_say_their_id_and_url_at_once_and_no_wait_returns_then(served, service, job_store, tmp_path):
    from prefect import get_client

    result = ferry("export", "contacts", "--workspace", "acme", "--fields", "email", "--limit", "3", "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    assert started["status"] == "submitted" and started["url"].endswith(f"/runs/flow-run/{started['run_id']}")
    with get_client(sync_client=True) as client:
        assert client.read_deployment(client.read_flow_run(started["run_id"]).deployment_id).name == "default"
        wait_for(lambda: client.read_flow_run(started["run_id"]).state.is_completed(), RUN_TIMEOUT, "the --no-wait export to finish")

    source = tmp_path / "people.csv"
    source.write_text("Email,First Name\nnew1@example.com,Ann\nnew2@example.com,Bob\n")
    result = ferry("import", "run", str(source), "--resource", "contacts", "--workspace", "acme", "--auto-map", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "success" and record["created_rows"] == 2
    assert f"Run {record['run_id']}: " in result.stderr and "/runs/flow-run/" in result.stderr  # said at once, on stderr
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(record["run_id"])
        assert client.read_deployment(run.deployment_id).name == "default" and "ferry-workspace:acme" in run.tags
    with job_store[1].connect() as conn:  # the served run wrote into the store ferry serve uses
        assert conn.execute(sa.text("SELECT COUNT(*) FROM contacts WHERE email LIKE 'new_@example.com'")).scalar() == 2
