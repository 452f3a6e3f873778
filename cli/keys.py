"""``ferry keys``: create, list, revoke and rotate the HTTP API's keys.

A key is printed once, when it is created or rotated in: alone on stdout (so
``KEY=$(ferry keys create ...)`` works), its details on stderr; with ``--json``
as ``{"id", "key", "workspace", "role", "expiresAt"}``. Listing never shows a
key or its digest. Key format, roles and rules: :mod:`ferry.keys`,
:mod:`ferry.roles`. Errors exit 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from cli.console import err, fail, out, print_json
from ferry.errors import FerryError

keys_app = typer.Typer(help="API keys of the HTTP API: one workspace and one role (admin, operator, viewer) each.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
KeyArg = Annotated[str, typer.Argument(help="Key id (as `ferry keys list` shows it).")]


def _engine():
    from ferry.store.engine import get_engine

    return get_engine()


def _print_new(key, secret: str, as_json: bool, verb: str) -> None:
    if as_json:
        shown = key.to_json()
        print_json({"id": key.id, "key": secret, "workspace": key.workspace, "role": key.role, "expiresAt": shown["expiresAt"]})
        return
    print(secret)
    expires = key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never"
    err.print(
        f"{verb} key {key.id} ({key.role} of {key.workspace}, {key.name!r}; expires {expires}). Store it now: it is not shown again.",
        markup=False,
        highlight=False,
    )


@keys_app.command("create")
def keys_create(
    workspace: Annotated[str, typer.Option(help="Workspace the key acts in.")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'crm-sync'.")],
    expires_days: Annotated[int, typer.Option(help="Days until the key expires (1-3650).")] = 90,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once."""
    from ferry.keys import create_key

    try:
        key, secret = create_key(_engine(), workspace, role, name, expires_days)
    except FerryError as exc:
        fail(exc)
    _print_new(key, secret, as_json, "Created")


@keys_app.command("list")
def keys_list(
    workspace: Annotated[str, typer.Option(help="Workspace whose keys to list.")],
    as_json: JsonFlag = False,
) -> None:
    """List a workspace's keys (never the keys themselves), revoked and expired ones included."""
    from ferry.keys import list_keys

    try:
        found = list_keys(_engine(), workspace)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([k.to_json() for k in found])
        return

    def when(value) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    table = Table(Column("id", no_wrap=True, min_width=12), "name", "role", "state", "created (UTC)", "expires", "last used")
    for k in found:
        table.add_row(k.id, k.name, k.role, k.state(), when(k.created_at), when(k.expires_at), when(k.last_used_at))
    out.print(table if found else f"No API keys in {workspace} yet: ferry keys create --workspace {workspace} --role viewer --name NAME")


@keys_app.command("revoke")
def keys_revoke(key_id: KeyArg, as_json: JsonFlag = False) -> None:
    """Revoke a key at once."""
    from ferry.keys import revoke_key

    try:
        key = revoke_key(_engine(), key_id)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(key.to_json())
        return
    out.print(f"Revoked key {key.id} ({key.role} of {key.workspace}, {key.name!r})", markup=False, highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: KeyArg,
    grace_hours: Annotated[float, typer.Option(help="Hours the old key keeps working, so clients can switch (0-720).")] = 24,
    as_json: JsonFlag = False,
) -> None:
    """Issue a new key with the same workspace, role and name, and let the old one expire after the grace period."""
    from ferry.keys import rotate_key

    try:
        key, secret = rotate_key(_engine(), key_id, grace_hours)
    except FerryError as exc:
        fail(exc)
    _print_new(key, secret, as_json, f"Rotated {key_id} into")
