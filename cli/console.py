"""What every ``ferry`` command shares: the two consoles, the error exit and option parsing.

Commands translate options into a request and call the service layer
(``flows/``, ``deployments/``); an ordinary error (any :class:`FerryError`)
ends the command with its message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console

from ferry.errors import FerryError, Problem

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(exc: FerryError | str, code: int = 2) -> NoReturn:
    """Print the error (markup in ``exc`` is not interpreted) and exit with ``code``."""
    err.print("[red]error:[/red] ", end="")
    err.print(str(exc), markup=False, highlight=False)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` options into a dict; anything else is a usage error naming the option."""
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        pairs[key.strip()] = val.strip()
    return pairs


def collect(problems: list[Problem], name: str, values: list[str], parse: Callable[[str], Any]) -> list:
    """Each option value through ``parse``; a value it refuses becomes a problem listed with the others, not an exit."""
    items = []
    for i, value in enumerate(values):
        try:
            items.append(parse(value))
        except typer.BadParameter as exc:
            problems.append(Problem(f"{name}[{i}]", value, exc.message))
    return items


def parse_filter(value: str) -> dict:
    """``field:op:value`` (the value may contain ':'; lists for in/not_in are separated with '|')."""
    field, _, rest = value.partition(":")
    op, _, raw = rest.partition(":")
    if not field or not op:
        raise typer.BadParameter(f"{value!r} is not FIELD:OP[:VALUE]", param_hint="--filter")
    parsed: object = raw.split("|") if op in ("in", "not_in") else (raw if raw != "" else None)
    return {"field": field, "op": op, "value": parsed}


def require_server() -> None:
    """Jobs need a long-lived Prefect server: the scheduler lives there, and serve/workers must share it."""
    from deployments.adhoc import server_configured

    if not server_configured():
        fail(
            FerryError(
                "No Prefect server is configured (PREFECT_API_URL is not set).",
                "Start one (`prefect server start`, on PostgreSQL for real use) and "
                "`export PREFECT_API_URL=http://HOST:4200/api` for ferry serve/worker and the CLI alike.",
            )
        )
