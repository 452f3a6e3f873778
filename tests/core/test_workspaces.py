"""Workspaces on both backends: create and list, slug rules, delete (all of it, nothing of another), busy refusal.

The busy check is tested against the session's real Prefect server: flow runs
of the real flows are created in the states a queued or running run has, with
the parameters those flows take, and removed again at the end of the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from servers.postgres import fresh_database

from ferry.errors import ParameterError, UnknownWorkspaceError, WorkspaceBusyError, WorkspaceExistsError
from ferry.keys import authenticate, create_key
from ferry.runs import runs_in_flight
from ferry.store import schema
from ferry.store.seed import SeedCounts, seed_workspace
from ferry.workspaces import create_workspace, delete_workspace, get_workspace, list_workspaces


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory) -> Iterator[sa.Engine]:
    """A migrated store of this module's own on each backend (seeding into the session's shared one would change its counts)."""
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('ws') / 'ferry.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    with fresh_database("ferry_test_ws") as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def fresh(prefix: str = "ws") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- create and list ------------------------------------------------------------------------


def test_create_then_list(engine):
    slug = fresh()
    before = datetime.now(UTC).replace(microsecond=0)

    created = create_workspace(engine, slug, display_name="  Acme Corp  ")

    assert (created.slug, created.display_name) == (slug, "Acme Corp")
    assert before <= created.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    listed = {w.slug: w for w in list_workspaces(engine)}
    assert listed[slug] == created
    assert get_workspace(engine, slug) == created
    assert created.to_json() == {
        "slug": slug,
        "displayName": "Acme Corp",
        "createdAt": created.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_the_display_name_defaults_to_the_slug(engine):
    slug = fresh()
    assert create_workspace(engine, slug).display_name == slug


def test_a_name_is_taken_once(engine):
    slug = fresh()
    create_workspace(engine, slug)

    with pytest.raises(WorkspaceExistsError, match=slug):
        create_workspace(engine, slug, display_name="again")

    assert [w.slug for w in list_workspaces(engine)].count(slug) == 1


@pytest.mark.parametrize("slug", ["a", "7", "acme-co", "0-day", "x-", "a" * 63])
def test_valid_slugs(engine, slug):
    # each backend's store is this module's own, so these plain names are free
    assert create_workspace(engine, slug).slug == slug


@pytest.mark.parametrize("slug", ["", "-acme", "Acme", "acme_co", "acme co", "a" * 64, "ä", "acme/x", "acme.co"])
def test_invalid_slugs_name_the_rule(engine, slug):
    with pytest.raises(ParameterError) as info:
        create_workspace(engine, slug)

    (problem,) = info.value.problems
    assert problem.field == "slug" and "lower-case letters, digits and dashes" in problem.reason and "1-63" in problem.reason


def test_every_problem_is_listed_at_once(engine):
    with pytest.raises(ParameterError) as info:
        create_workspace(engine, "Bad Name", display_name="\x00")

    assert [p.field for p in info.value.problems] == ["slug", "display_name"]


def test_seeded_workspaces_of_any_name_are_listed_and_deleted(engine):
    legacy = f"Legacy_{uuid.uuid4().hex[:6]}"  # `ferry db seed` keeps accepting any name
    seed_workspace(engine, legacy, SeedCounts(contacts=20, events=10, products=1), seed=3)

    assert legacy in {w.slug for w in list_workspaces(engine)}
    assert delete_workspace(engine, legacy, in_flight=None)["contacts"] == 20
    assert legacy not in {w.slug for w in list_workspaces(engine)}


# --- delete ---------------------------------------------------------------------------------


def _workspace_id(engine, slug: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.workspaces.c.id).where(schema.workspaces.c.slug == slug)).scalar_one()


def _fill(engine, slug: str, seed: int) -> None:
    """Records of every kind, a rollback journal, a remembered mapping and two API keys."""
    seed_workspace(engine, slug, SeedCounts(contacts=40, events=60, products=3), seed=seed)
    ws = _workspace_id(engine, slug)
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        contact = conn.execute(sa.select(schema.contacts.c.id).where(schema.contacts.c.workspace_id == ws).limit(1)).scalar_one()
        conn.execute(
            sa.insert(schema.import_runs).values(
                run_id=run_id, workspace_id=ws, resource="contacts", status="committed", stamp=datetime(2026, 1, 1), actor="test"
            )
        )
        conn.execute(sa.insert(schema.import_created).values(run_id=run_id, resource="contacts", first_id=contact, last_id=contact))
        conn.execute(sa.insert(schema.import_images["contacts"]).values(run_id=run_id, image="before", id=contact, workspace_id=ws))
        conn.execute(
            sa.insert(schema.import_mappings).values(
                workspace_id=ws, resource="contacts", columns_key=uuid.uuid4().hex, source_columns=["Email"], mapping=[]
            )
        )
    create_key(engine, slug, "admin", "a")
    create_key(engine, slug, "viewer", "v")


def _rows_of(engine, slug: str) -> dict[str, int]:
    """Rows per table belonging to ``slug``: by workspace_id, and the journal's by its import runs."""
    ws = _workspace_id(engine, slug)
    runs = sa.select(schema.import_runs.c.run_id).where(schema.import_runs.c.workspace_id == ws)
    counts = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if "workspace_id" in table.c:
                where = table.c.workspace_id == ws
            elif "run_id" in table.c:
                where = table.c.run_id.in_(runs)
            else:
                continue
            counts[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    return counts


def test_delete_removes_every_row_of_the_workspace_and_nothing_of_another(engine):
    doomed, kept = fresh("doomed"), fresh("kept")
    create_workspace(engine, doomed)
    create_workspace(engine, kept)
    _fill(engine, doomed, seed=5)
    _fill(engine, kept, seed=6)
    _, doomed_key = create_key(engine, doomed, "operator", "o")
    _, kept_key = create_key(engine, kept, "operator", "o")
    doomed_id = _workspace_id(engine, doomed)
    before, kept_before = _rows_of(engine, doomed), _rows_of(engine, kept)

    deleted = delete_workspace(engine, doomed)

    assert all(n > 0 for t, n in before.items() if t in ("contacts", "events", "products", "api_keys", "import_runs", "import_mappings"))
    assert before["import_created_ranges"] == 1 and before["import_images_contacts"] == 1
    assert {t: n for t, n in deleted.items() if n} == {**{t: n for t, n in before.items() if n}, "workspaces": 1}
    assert doomed not in {w.slug for w in list_workspaces(engine)}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if "workspace_id" in table.c:
                assert (
                    conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.workspace_id == doomed_id)).scalar_one() == 0
                )
    assert _rows_of(engine, kept) == kept_before
    assert authenticate(engine, doomed_key) is None and authenticate(engine, kept_key) is not None
    with pytest.raises(UnknownWorkspaceError, match="ferry workspaces create NAME"):
        delete_workspace(engine, doomed)


# --- busy workspaces --------------------------------------------------------------------------


@pytest.fixture
def flow_runs():
    """Creates flow runs of Ferry's real flows on the session's Prefect server; deletes them afterwards."""
    from prefect import get_client

    made = []
    with get_client(sync_client=True) as client:

        def create(flow, parameters: dict, state):
            run = client.create_flow_run(flow, parameters=parameters, state=state)
            made.append(run.id)
            return run

        yield create
        for run_id in made:
            client.delete_flow_run(run_id)


def test_a_workspace_with_a_pending_export_is_not_deleted(engine, flow_runs):
    from prefect.states import Completed, Pending

    from flows.export import export_data

    busy, idle = fresh("busy"), fresh("idle")
    create_workspace(engine, busy)
    create_workspace(engine, idle)
    _, key = create_key(engine, busy, "admin", "a")
    flow_runs(export_data, {"request": {"workspace": busy, "resource": "contacts"}}, Pending())
    flow_runs(export_data, {"request": {"workspace": idle, "resource": "contacts"}}, Completed())  # finished: not in flight

    assert runs_in_flight(busy) == 1 and runs_in_flight(idle) == 0
    with pytest.raises(WorkspaceBusyError, match="1 run"):
        delete_workspace(engine, busy)

    assert busy in {w.slug for w in list_workspaces(engine)} and authenticate(engine, key) is not None
    assert delete_workspace(engine, idle)["workspaces"] == 1


def test_running_imports_and_rollbacks_count_for_their_workspace(engine, flow_runs):
    from prefect.states import Completed, Pending, Running

    from flows.import_ import import_data
    from flows.rollback import rollback_import

    ws, other = fresh("imp"), fresh("other")
    create_workspace(engine, ws)
    create_workspace(engine, other)
    flow_runs(import_data, {"request": {"workspace": ws, "resource": "contacts", "source": "a.csv"}}, Running())
    done = flow_runs(import_data, {"request": {"workspace": ws, "resource": "contacts", "source": "b.csv"}}, Completed())
    flow_runs(rollback_import, {"run_id": str(done.id)}, Pending())

    assert runs_in_flight(ws) == 2
    assert runs_in_flight(other) == 0
    with pytest.raises(WorkspaceBusyError, match="2 run"):
        delete_workspace(engine, ws)


def test_a_rollback_of_an_unknown_import_counts_for_every_workspace(engine, flow_runs):
    from prefect.states import Pending

    from flows.rollback import rollback_import

    ws = fresh("any")
    create_workspace(engine, ws)
    flow_runs(rollback_import, {"run_id": str(uuid.uuid4())}, Pending())

    assert runs_in_flight(ws) == 1  # when in doubt, busy
    assert delete_workspace(engine, ws, in_flight=None)["workspaces"] == 1


def test_an_unreachable_prefect_server_deletes_nothing(engine):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ferry.errors import ConfigurationError

    slug = fresh("unasked")
    create_workspace(engine, slug)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}), pytest.raises(ConfigurationError, match="nothing was deleted"):
        delete_workspace(engine, slug)

    assert slug in {w.slug for w in list_workspaces(engine)}
