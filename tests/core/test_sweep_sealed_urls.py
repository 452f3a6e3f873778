"""Sealed import URLs a crashed run (or a run never started) left behind are swept (issue 15).

``blocks.sealed_urls`` keeps a signed URL's token in a ``ferry-url-*`` Secret block; the importing
run deletes it when it ends. A run killed before that leaves it: ``ferry.sweep`` deletes it once
every run naming it has ended, or once it is older than ``spool_orphan_hours`` when no run names it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


@pytest.fixture
def fake_import_run():
    """Runs of a flow named like the import flow, in a given state, whose request names a source."""
    from prefect import flow, get_client
    from prefect.states import Completed, Crashed, Running

    @flow(name="import-data")
    def import_data(request: dict): ...

    def create(source: str, state: str) -> str:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(import_data, parameters={"request": {"source": source, "workspace": "w"}}, state=Running())
            if state != "RUNNING":
                final = {"COMPLETED": Completed(), "CRASHED": Crashed(message="killed")}[state]
                client.set_flow_run_state(run.id, final, force=True)
        return str(run.id)

    return create


def _stored(name: str) -> bool:
    from prefect.blocks.system import Secret

    try:
        Secret.load(name)
    except ValueError:
        return False
    return True


def test_the_sweep_deletes_sealed_urls_no_run_needs(fake_import_run):
    from prefect.blocks.system import Secret

    from blocks.sealed_urls import seal
    from ferry.sweep import SEALED_URL_BLOCK_PREFIX, sweep, sweep_sealed_urls

    def sealed() -> tuple[str, str]:
        source = seal("https://files.example.com/contacts.csv?sig=secret-token")
        return source, source.rsplit("=", 1)[1]

    running_source, running = sealed()  # its run is still importing
    crashed_source, crashed = sealed()  # its run was killed -9 and marked Crashed
    done_source, done = sealed()  # its run ended (and could not delete it: Prefect was unreachable then)
    _, unstarted = sealed()  # the process died between sealing and creating the run
    Secret(value="keep me").save("not-a-ferry-url", overwrite=True)
    assert all(name.startswith(SEALED_URL_BLOCK_PREFIX) for name in (running, crashed, done, unstarted))
    fake_import_run(running_source, "RUNNING")
    fake_import_run(crashed_source, "CRASHED")
    fake_import_run(done_source, "COMPLETED")

    report = sweep()

    assert {crashed, done} <= set(report.sealed_urls_removed)
    assert not {running, unstarted} & set(report.sealed_urls_removed)
    assert not report.problems
    assert (_stored(running), _stored(crashed), _stored(done), _stored(unstarted)) == (True, False, False, True)

    a_day_later = datetime.now(UTC) + timedelta(hours=25)
    removed = sweep_sealed_urls(orphan_hours=24, now=a_day_later)
    assert unstarted in removed and running not in removed  # unnamed and old: gone; an active run's: kept
    assert (_stored(running), _stored(unstarted), _stored("not-a-ferry-url")) == (True, False, True)
