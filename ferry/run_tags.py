"""Tags on Ferry's import runs: which store, workspace and resource a run belongs to, and what became of it.

Prefect filters flow runs by tag on the server but not by parameter, so the
facts the import history selects on are tags: the history then reads only
Ferry's runs of *this* store (two Ferry installations may share one Prefect
server), of one resource and workspace, a page at a time. Two tags record what
happened to a run after it ended, since its persisted record cannot change:
``ferry:rolled-back`` (set by the rollback flow) and ``ferry:handed-off`` (an
inline run that passed its file to a deployment run, whose own run is the one
the history shows).
"""

from __future__ import annotations

import hashlib
import uuid

ROLLED_BACK = "ferry:rolled-back"
HANDED_OFF = "ferry:handed-off"


def store_tag() -> str:
    """``ferry-store:<hash>``: the store's URL without its password, hashed (the tag names no host or user)."""
    from ferry.store.engine import get_engine

    url = get_engine().url.render_as_string(hide_password=True)
    return "ferry-store:" + hashlib.sha256(url.encode()).hexdigest()[:12]


def import_tags(workspace: str, resource: str) -> list[str]:
    """The tags an import run of ``resource`` (a slug or an alias) into ``workspace`` carries from its creation."""
    return [store_tag(), f"ferry-resource:{resource_slug(resource)}", f"ferry-workspace:{workspace}"]


def resource_slug(resource: str) -> str:
    """The catalog slug of ``resource`` (an alias too); the name as given when it is no resource."""
    from ferry.catalog import get_resource
    from ferry.errors import FerryError

    try:
        return get_resource(resource).slug
    except FerryError:
        return resource


def retag_flow_run(flow_run_id: str, add: list[str] = (), remove: list[str] = ()) -> None:
    """Add and remove tags of flow run ``flow_run_id`` (read, then written whole: Prefect has no tag patch)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(str(flow_run_id)))
        tags = [t for t in run.tags if t not in remove]
        tags += [t for t in add if t not in tags]
        if tags != list(run.tags):
            client.update_flow_run(run.id, tags=tags)
