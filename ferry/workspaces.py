"""Workspaces: the tenants of the store. Create, list and delete them (``ferry workspaces``, the HTTP API).

A workspace is one row of ``workspaces``; every other table's rows belong to
one through ``workspace_id`` (or, for the rollback journal's id ranges and
images, through the import run that wrote them). Deleting a workspace therefore
deletes those rows table by table, children before parents, in one
transaction, and says how many rows each table lost: the foreign keys'
``ON DELETE CASCADE`` would do it too, but silently, and not for the journal
tables that have no foreign key.

Slugs are what URLs, file names (``{workspace}``) and scripts carry, so new
ones follow one DNS-label-like rule wherever a workspace is created
(``ferry workspaces create``, ``ferry db seed --workspace``): ``acme corp`` and
``acme-corp`` would otherwise render to one export path, and ``..`` would climb
out of it. Stores made before the rule may hold other names: every function
here still reads, exports and deletes those; only new ones are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from sqlalchemy import Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from ferry.errors import ConfigurationError, FerryError, ParameterError, Problem, StoreError, WorkspaceBusyError, WorkspaceExistsError
from ferry.runs import runs_in_flight
from ferry.store import schema
from ferry.store.engine import workspace_id
from ferry.store.schema import workspaces

SLUG_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
SLUG_RULE = "use 1-63 lower-case letters, digits and dashes, starting with a letter or digit"
DISPLAY_NAME_MAX = 200


class Workspace(BaseModel):
    """One workspace. JSON names (``--json``, the HTTP API) are the contract: camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    slug: str
    display_name: str
    created_at: datetime

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


def utc(value: datetime | None) -> datetime | None:
    """A time read from the store (naive, UTC) as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_store(value: datetime) -> datetime:
    """An aware (or naive UTC) datetime as the store keeps it: naive UTC, whole microseconds."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


@contextmanager
def store_errors(engine: Engine) -> Iterator[None]:
    """Turn "no such table" and unreachable-server errors into a :class:`StoreError` that says what to run.

    Only the driver's first line is kept: SQLAlchemy's own message carries the
    statement's parameters, which may be customer data.
    """
    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig is not None else type(exc).__name__
        raise StoreError(
            f"The store at {engine.url.render_as_string(hide_password=True)} cannot be used ({reason}).",
            "Check that it is reachable and run `ferry db init` (it applies the migrations this version needs).",
        ) from None


def slug_problems(slug: str) -> list[Problem]:
    """What is wrong with ``slug`` as the name of a new workspace (empty when nothing)."""
    if not isinstance(slug, str) or not re.fullmatch(SLUG_PATTERN, slug):
        return [Problem("slug", slug, SLUG_RULE)]
    return []


def require_slug_if_new(engine: Engine, slug: str) -> None:
    """ParameterError when ``slug`` is not a workspace yet and breaks the slug rule (demo seeding creates missing ones).

    An existing workspace of an older, non-slug name stays usable.
    """
    if not slug_problems(slug):
        return
    with store_errors(engine), engine.connect() as conn:
        if conn.execute(select(workspaces.c.id).where(workspaces.c.slug == slug)).first() is not None:
            return
    raise ParameterError(slug_problems(slug))


def create_workspace(engine: Engine, slug: str, display_name: str | None = None) -> Workspace:
    """Create workspace ``slug`` (its display name defaults to the slug); every problem with the two at once."""
    problems = slug_problems(slug)
    if display_name is not None:
        display_name = display_name.strip()
        if not display_name or len(display_name) > DISPLAY_NAME_MAX or any(ord(c) < 32 for c in display_name):
            problems.append(
                Problem("display_name", display_name, f"give 1-{DISPLAY_NAME_MAX} characters of text, without control characters")
            )
    if problems:
        raise ParameterError(problems)
    created = datetime.now(UTC).replace(microsecond=0)
    with store_errors(engine):
        try:
            with engine.begin() as conn:
                if conn.execute(select(workspaces.c.id).where(workspaces.c.slug == slug)).first() is not None:
                    raise _exists(slug)
                conn.execute(insert(workspaces).values(slug=slug, name=display_name or slug, created_at=to_store(created)))
        except IntegrityError:  # created by someone else between the check and the insert
            raise _exists(slug) from None
    return Workspace(slug=slug, display_name=display_name or slug, created_at=created)


def _exists(slug: str) -> WorkspaceExistsError:
    return WorkspaceExistsError(f"Workspace {slug!r} exists already.", "Pick another name, or use the existing workspace.")


def list_workspaces(engine: Engine) -> list[Workspace]:
    """Every workspace, by slug."""
    query = select(workspaces.c.slug, workspaces.c.name, workspaces.c.created_at).order_by(workspaces.c.slug)
    with store_errors(engine), engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Workspace(slug=slug, display_name=name, created_at=utc(created)) for slug, name, created in rows]


def get_workspace(engine: Engine, slug: str) -> Workspace:
    """Workspace ``slug``, or :class:`~ferry.errors.UnknownWorkspaceError` naming the command that creates it."""
    with store_errors(engine), engine.connect() as conn:
        ws = workspace_id(conn, slug)
        name, created = conn.execute(select(workspaces.c.name, workspaces.c.created_at).where(workspaces.c.id == ws)).one()
    return Workspace(slug=slug, display_name=name, created_at=utc(created))


def _journal_tables() -> list[Table]:
    """The rollback journal's tables keyed by an import's run id (no workspace_id of their own, or not one to trust)."""
    return [schema.import_created, *schema.import_images.values()]


def _workspace_tables() -> list[Table]:
    """Every other table with a workspace_id, children before parents (reverse foreign-key order)."""
    journal = set(_journal_tables())
    return [t for t in reversed(schema.metadata.sorted_tables) if "workspace_id" in t.c and t not in journal]


def delete_workspace(engine: Engine, slug: str, in_flight: Callable[[str], int] | None = runs_in_flight) -> dict[str, int]:
    """Delete workspace ``slug`` and every row of it, in one transaction; rows deleted per table.

    ``in_flight(slug)`` counts its runs that are still pending, running or
    cancelling (by default :func:`ferry.runs.runs_in_flight`, which asks
    Prefect); while there are any, nothing is deleted and
    :class:`~ferry.errors.WorkspaceBusyError` says so. An export reading or an
    import writing a workspace while it disappears would fail half-way or
    leave rows behind. ``None`` skips the check (no Prefect server to ask).
    """
    get_workspace(engine, slug)  # an unknown workspace fails before Prefect is asked
    if in_flight is not None:
        try:
            busy = in_flight(slug)
        except FerryError:
            raise
        except Exception as exc:  # noqa: BLE001 - Prefect unreachable or refusing: say so, delete nothing
            raise ConfigurationError(
                f"Could not ask Prefect whether runs of workspace {slug!r} are in flight ({type(exc).__name__}); nothing was deleted.",
                "Check PREFECT_API_URL and that the server is up, then delete again.",
            ) from None
        if busy:
            raise WorkspaceBusyError(
                f"Workspace {slug!r} has {busy} run(s) in flight (pending, running or cancelling); nothing was deleted.",
                "Wait for them to finish or cancel them (`prefect flow-run ls`, `prefect flow-run cancel ID`), then delete again.",
            )
    counts: dict[str, int] = {}
    with store_errors(engine), engine.begin() as conn:
        ws = workspace_id(conn, slug)
        run_ids = select(schema.import_runs.c.run_id).where(schema.import_runs.c.workspace_id == ws)
        for table in _journal_tables():
            counts[table.name] = conn.execute(delete(table).where(table.c.run_id.in_(run_ids))).rowcount
        for table in _workspace_tables():
            counts[table.name] = conn.execute(delete(table).where(table.c.workspace_id == ws)).rowcount
        counts[workspaces.name] = conn.execute(delete(workspaces).where(workspaces.c.id == ws)).rowcount
    return counts
