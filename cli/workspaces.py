"""``ferry workspaces``: create, list and delete the store's workspaces.

Commands and flags are contracts (users' scripts call them); ``--json`` prints
camelCase, the HTTP API's shapes. The rules (slugs, the busy check, what a
delete removes) live in :mod:`ferry.workspaces`; errors exit 2.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from cli.console import fail, out, print_json
from ferry.errors import FerryError

workspaces_app = typer.Typer(help="Workspaces: the tenants of the store (each with its own data and API keys).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _engine():
    from ferry.store.engine import get_engine

    return get_engine()


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Argument(help="Workspace name (slug): 1-63 lower-case letters, digits and dashes.")],
    display_name: Annotated[Optional[str], typer.Option(help="Name people read (default: the slug).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an empty workspace."""
    from ferry.workspaces import create_workspace

    try:
        workspace = create_workspace(_engine(), name, display_name)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(workspace.to_json())
        return
    out.print(f"Created workspace [bold]{workspace.slug}[/bold] ({workspace.display_name})", highlight=False)


@workspaces_app.command("list")
def workspaces_list(as_json: JsonFlag = False) -> None:
    """List the workspaces."""
    from ferry.workspaces import list_workspaces

    try:
        found = list_workspaces(_engine())
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([w.to_json() for w in found])
        return
    table = Table("name", "display name", "created")
    for w in found:
        table.add_row(w.slug, w.display_name, w.created_at.isoformat(timespec="seconds"))
    out.print(table if found else "No workspaces yet: ferry workspaces create NAME")


@workspaces_app.command("delete")
def workspaces_delete(
    name: Annotated[str, typer.Argument(help="Workspace name (slug).")],
    yes: Annotated[bool, typer.Option("--yes", help="Really delete the workspace and all its data.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a workspace and all its data (records, import journal, API keys) in one transaction; refused while its runs are in flight."""
    from ferry.workspaces import delete_workspace

    if not yes:
        fail(f"Deleting workspace {name!r} deletes all its data and API keys, and cannot be undone; run again with --yes.")
    try:
        deleted = delete_workspace(_engine(), name)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json({"workspace": name, "deleted": deleted})
        return
    rows = ", ".join(f"{n:,} {table}" for table, n in deleted.items() if n and table != "workspaces")
    out.print(f"Deleted workspace [bold]{name}[/bold]" + (f": {rows}" if rows else " (it held no data)"), highlight=False)
