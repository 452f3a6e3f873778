"""Engines and workspace lookups for the store."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.exc import OperationalError

from ferry.errors import StoreError, UnknownWorkspaceError
from ferry.settings import get_settings
from ferry.store.schema import workspaces

#: How often (ms) a PostgreSQL backend running one of Ferry's statements checks that Ferry is still connected.
CLIENT_CHECK_MS = 1000


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_session)
    return engine


def _postgresql_session(dbapi_conn, _record) -> None:
    """A statement of a killed Ferry process stops within about a second instead of running to its end.

    PostgreSQL notices a dead client only when it sends it something, so a killed
    import's merge ran on for 10-18 s, holding its locks against the re-run.
    ``client_connection_check_interval`` (PostgreSQL 14+, settable by any user) makes
    the backend poll its socket while a statement runs and cancel it when the client
    has gone. Older servers keep their behaviour.
    """
    if getattr(getattr(dbapi_conn, "info", None), "server_version", 0) < 140000:
        return
    cur = dbapi_conn.cursor()
    cur.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
    cur.close()
    dbapi_conn.commit()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(get_settings().store_busy_timeout_seconds * 1000)}")
    cur.close()


@lru_cache(maxsize=8)
def _cached_engine(url: str) -> Engine:
    return make_engine(url)


def get_engine(url: str | None = None) -> Engine:
    """The store's engine: ``url`` if given, else the configured store."""
    settings = get_settings()
    if url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url()
    return _cached_engine(url)


def forget_engines() -> None:
    """Drop the cached engines (after a store's database is dropped, or its URL changed)."""
    _cached_engine.cache_clear()


def workspace_id(conn: Connection, slug: str) -> int:
    """The id of workspace ``slug``; a clear error if it does not exist."""
    try:
        found = conn.execute(select(workspaces.c.id).where(workspaces.c.slug == slug)).scalar_one_or_none()
    except OperationalError as exc:
        raise StoreError(
            f"The store at {conn.engine.url.render_as_string(hide_password=True)} is not initialised.",
            "Run `ferry db init` first.",
        ) from exc
    if found is None:
        raise UnknownWorkspaceError(
            f"Workspace {slug!r} does not exist.",
            "Create it with `ferry workspaces create NAME` (or `ferry db seed --workspace NAME` for demo data).",
        )
    return found


def ensure_workspace(conn: Connection, slug: str, name: str | None = None) -> int:
    found = conn.execute(select(workspaces.c.id).where(workspaces.c.slug == slug)).scalar_one_or_none()
    if found is not None:
        return found
    return conn.execute(insert(workspaces).values(slug=slug, name=name or slug).returning(workspaces.c.id)).scalar_one()
