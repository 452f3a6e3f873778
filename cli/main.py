"""The ``ferry`` command line.

Commands and flags named in issues are contracts that users' scripts call:
add new ones, never rename. Every command that runs a flow prints the run
record (``--json`` for machines) and exits non-zero when the run failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from cli.api import api
from cli.blocks import blocks_app
from cli.console import collect, err, fail, out, parse_filter, parse_pairs, split_list
from cli.imports import import_app
from cli.jobs import jobs_app
from cli.keys import keys_app
from cli.reports import reports_app
from cli.runs import mount_runs
from cli.up import up
from cli.workspaces import workspaces_app
from ferry.errors import FerryError, ParameterError, Problem


class _FerryGroup(TyperGroup):
    """Routes ``ferry export url RUN_ID`` (the issue's contract) although ``export`` is a command taking a resource."""

    def resolve_command(self, ctx, args):
        if len(args) >= 2 and args[0] == "export" and args[1] == "url":
            return "export url", self.get_command(ctx, "export-url"), args[2:]
        return super().resolve_command(ctx, args)


class _FerryTyper(typer.Typer):
    """The ``ferry`` program: as the process's entry point (``ferry``, ``python -m cli.main``) it ends quickly, see :func:`_exit`."""

    def __call__(self, *args, **kwargs):
        entry = sys._getframe(1).f_globals.get("__name__") == "__main__"  # not when a test or a program embeds the app
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            if entry:
                _exit(exc)
            raise


app = _FerryTyper(cls=_FerryGroup, help="Ferry: import and export pipelines for customer data, on Prefect 3.", no_args_is_help=True)
db_app = typer.Typer(help="Create and fill the store.", no_args_is_help=True)


@app.callback()
def _before_every_command(ctx: typer.Context) -> None:
    # Before anything reads Prefect's settings: with no PREFECT_API_URL, the Prefect server a running `ferry up`
    # started on this machine is used (ferry up itself starts its own). Then, should Prefect still start a temporary
    # server for this process, it dies with it, even after a kill -9 (patched when Prefect imports its server module).
    from ferry.lifelines import install_ephemeral_server_lifeline
    from ferry.local_server import discover

    if ctx.invoked_subcommand != "up":
        discover()
    install_ephemeral_server_lifeline()


app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(blocks_app, name="blocks")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(keys_app, name="keys")
app.add_typer(reports_app, name="reports")


# --- db -------------------------------------------------------------------------------


@db_app.command("init")
def db_init() -> None:
    """Create or upgrade the store's schema (Alembic migrations)."""
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade

    engine = get_engine()
    upgrade(engine)
    out.print(f"Store ready at {engine.url.render_as_string(hide_password=True)}")


@db_app.command("seed")
def db_seed(
    workspace: Annotated[str, typer.Option(help="Workspace to fill (created if missing: 1-63 lower-case letters, digits and dashes).")],
    contacts: Annotated[int, typer.Option(min=0, help="Contacts to add.")] = 1_000,
    events: Annotated[int, typer.Option(min=0, help="Events to add.")] = 5_000,
    accounts: Annotated[Optional[int], typer.Option(min=0, help="Accounts to add (default: contacts / 20).")] = None,
    survey_responses: Annotated[Optional[int], typer.Option(min=0, help="Survey responses (default: contacts / 10).")] = None,
    products: Annotated[int, typer.Option(min=0, help="Products (with variants and localized names).")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same rows.")] = 7,
) -> None:
    """Add deterministic, realistic demo data to a workspace."""
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.seed import SeedCounts, seed_workspace
    from ferry.workspaces import require_slug_if_new

    engine = get_engine()
    upgrade(engine)
    try:
        require_slug_if_new(engine, workspace)  # a new workspace follows the slug rule; an existing one is filled as it is
    except FerryError as exc:
        fail(exc)
    added = seed_workspace(engine, workspace, SeedCounts(contacts, events, accounts, survey_responses, products), seed)
    out.print(f"Seeded workspace [bold]{workspace}[/bold]: " + ", ".join(f"{n:,} {t}" for t, n in added.items()))


# --- catalog --------------------------------------------------------------------------


@app.command("resources")
def resources(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: Annotated[
        Optional[str], typer.Option(help="--scope values of this workspace only (default: those of every workspace in the store).")
    ] = None,
) -> None:
    """List the resources of the catalog: aliases, columns, and the --scope dimensions (and values) their localized fields take.

    --json: {RESOURCE: {"label", "aliases", "columns": [...], "scope": {"fields": [...], "dimensions": {DIMENSION: [VALUE, ...]}}}};
    dimensions is null when the store cannot be read.
    """
    from ferry.catalog import LOCALIZED_FIELDS, RESOURCES
    from ferry.errors import StoreError, UnknownWorkspaceError
    from ferry.params import scope_dimensions

    try:
        found: dict | None = scope_dimensions(workspace)
    except UnknownWorkspaceError as exc:
        fail(exc)
    except StoreError as exc:  # the catalog is listed all the same
        err.print("[yellow]Warning:[/yellow] ", end="")
        err.print(f"{exc} The --scope values are not listed.", markup=False, highlight=False)
        found = None

    def scope(slug: str) -> dict:
        fields = list(LOCALIZED_FIELDS.get(slug, ()))
        return {"fields": fields, "dimensions": None if found is None else (found.get(slug, {}) if fields else {})}

    if as_json:
        catalog = {
            r.slug: {"label": r.label, "aliases": list(r.aliases), "columns": [c.key for c in r.columns()], "scope": scope(r.slug)}
            for r in RESOURCES.values()
        }
        print(json.dumps(catalog, indent=2))
        return
    for r in RESOURCES.values():
        line = f"[bold]{r.slug}[/bold] ({', '.join(r.aliases) or '-'}): {', '.join(c.key for c in r.columns())}"
        dimensions = scope(r.slug)["dimensions"]
        if dimensions:
            line += "\n  --scope " + "; ".join(f"{d}={'|'.join(values)}" for d, values in dimensions.items())
            line += f" (localizes {', '.join(LOCALIZED_FIELDS[r.slug])})"
        out.print(line, highlight=False)


# --- export ---------------------------------------------------------------------------


@app.command("export")
def export(
    resource: Annotated[str, typer.Argument(help="Resource slug or alias: contacts, events, analytics, ...")],
    workspace: Annotated[str, typer.Option(help="Workspace to export from.")],
    format: Annotated[str, typer.Option(help="csv, tsv, json, jsonl, xml, parquet, xlsx or pdf.")] = "csv",
    fields: Annotated[Optional[str], typer.Option(help="Comma-separated columns, in order.")] = None,
    date_from: Annotated[
        Optional[str], typer.Option("--from", help="Window start: ISO date or datetime, or relative (-30d, 24h, 90m, 2w ago).")
    ] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Window end (a date includes the whole day; -1d: a day ago).")] = None,
    segment: Annotated[Optional[str], typer.Option(help="Audience key of a saved segment.")] = None,
    lists: Annotated[Optional[str], typer.Option(help="Comma-separated list keys: one 1/0 column each.")] = None,
    activity_types: Annotated[Optional[str], typer.Option(help="Comma-separated event types.")] = None,
    catalog: Annotated[Optional[str], typer.Option(help="Catalog key (products).")] = None,
    schema: Annotated[Optional[str], typer.Option(help="Schema key (products).")] = None,
    include_variants: Annotated[
        bool, typer.Option("--include-variants/--no-include-variants", help="One row per product variant (as in `ferry jobs create`).")
    ] = False,
    no_variants: Annotated[bool, typer.Option("--no-variants", hidden=True)] = False,  # `ferry jobs`' earlier spelling, kept working
    scope: Annotated[Optional[list[str]], typer.Option(help="Dimension scope KEY=VALUE, e.g. language=en (repeatable).")] = None,
    filter: Annotated[Optional[list[str]], typer.Option(help="FIELD:OP:VALUE, e.g. lifecycle_stage:eq:customer (repeatable).")] = None,
    sort: Annotated[Optional[str], typer.Option(help="FIELD[:asc|desc].")] = None,
    limit: Annotated[Optional[str], typer.Option(help="At most this many rows.", metavar="INTEGER")] = None,  # checked with the rest
    gzip: Annotated[bool, typer.Option("--gzip", "--compress", help="Compress with gzip (--compress, as in `ferry jobs create`).")] = False,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter: , ; | or \\t.")] = ",",
    date_format: Annotated[str, typer.Option(help="iso, L, LL, LLL or a strftime pattern.")] = "iso",
    no_header: Annotated[bool, typer.Option("--no-header", help="Omit the CSV header row.")] = False,
    labels: Annotated[
        Optional[Path], typer.Option(exists=True, dir_okay=False, readable=True, help="JSON file mapping column keys to header names.")
    ] = None,
    no_neutralize: Annotated[bool, typer.Option("--no-neutralize", help="Do not neutralise spreadsheet formulas.")] = False,
    on_invalid: Annotated[str, typer.Option(help="fail or warn when the store breaks the catalog.")] = "fail",
    dest: Annotated[
        Optional[str],
        typer.Option(
            help="Folder, or block reference KIND/NAME: local-directory, s3-bucket, azure-blob-storage-container, gcs-bucket, sftp, ftp, ... (default: managed storage)."
        ),
    ] = None,
    filename: Annotated[Optional[str], typer.Option(help="File name template: {date} {resource} {workspace} {run_id} {format}.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a file of the same name at the destination (without it, the export fails).")
    ] = False,
    title: Annotated[Optional[str], typer.Option(help="PDF title.")] = None,
    description: Annotated[Optional[str], typer.Option(help="PDF description.")] = None,
    actor: Annotated[str, typer.Option(help="Who runs the export (audit log).")] = "cli",
    notify_email: Annotated[Optional[str], typer.Option(help="E-mail address(es) told when the export ends (needs an SMTP block).")] = None,
    notify_webhook: Annotated[
        Optional[str], typer.Option(help="Webhook block NAME that gets a signed notice when the export ends.")
    ] = None,
    notify_smtp: Annotated[Optional[str], typer.Option(help="SMTP block NAME for --notify-email (default FERRY_SMTP_BLOCK).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="With a served export deployment: print the run's id and URL and return at once.")
    ] = False,
) -> None:
    """Export a resource of a workspace to a file (runs the export-data flow).

    `ferry export url RUN_ID` prints a fresh download URL for a finished run's file.
    """
    from ferry.params import parse_request

    cli_problems: list[Problem] = []  # options parsed here are listed with the request's own problems
    raw: dict = {
        "workspace": workspace,
        "resource": resource,
        "format": format,
        "fields": fields,
        "from": date_from,
        "to": date_to,
        "segment": segment,
        "lists": split_list(lists),
        "activity_types": split_list(activity_types),
        "catalog": catalog,
        "schema": schema,
        "include_variants": include_variants and not no_variants,
        "dimension_scope": {
            key: value
            for pair in collect(cli_problems, "dimension_scope", scope or [], lambda v: parse_pairs([v], "--scope"))
            for key, value in pair.items()
        },
        "filters": collect(cli_problems, "filters", filter or [], parse_filter),
        "sort": sort,
        "limit": limit,
        "gzip": gzip,
        "delimiter": "\t" if delimiter in ("\\t", "tab") else delimiter,
        "header": not no_header,
        "date_format": date_format,
        "neutralize_formulas": not no_neutralize,
        "on_invalid": on_invalid,
        "destination": dest,
        "overwrite": overwrite,
        "title": title,
        "description": description,
        "actor": actor,
        "notify_email": notify_email,
        "notify_webhook": notify_webhook,
        "notify_smtp": notify_smtp,
    }
    if filename:
        raw["filename"] = filename
    if labels:
        raw["labels"] = _read_labels(labels)
    try:
        request = parse_request({k: v for k, v in raw.items() if v is not None})
    except ParameterError as exc:
        fail(ParameterError(cli_problems + exc.problems))
    except FerryError as exc:
        fail(exc)
    if cli_problems:
        fail(ParameterError(cli_problems))
    _preflight_export(request)
    record = _run_export(request, as_json, wait=not no_wait)
    _print_record(record, as_json)
    if record.status != "success":
        raise typer.Exit(1)


def _preflight_export(request) -> None:
    """What the run would refuse that can be told now (workspace, segment, lists, destination): exit 2, no run."""
    from deployments.service import preflight_export

    try:
        preflight_export(request)
    except FerryError as exc:
        fail(exc)


def _read_labels(path: Path) -> dict:
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint="--labels") from None
    if not isinstance(labels, dict):
        raise typer.BadParameter(f"{path} must hold a JSON object of column key -> header name", param_hint="--labels")
    return labels


def _run_export(request, as_json: bool, wait: bool = True):
    from cli.runs_live import run_live
    from deployments.adhoc import export_record
    from deployments.project import ADHOC_EXPORT_DEPLOYMENT
    from deployments.service import run_export_here

    return run_live(ADHOC_EXPORT_DEPLOYMENT, request, run_export_here, export_record, as_json=as_json, wait=wait)


def _print_record(record, as_json: bool) -> None:
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    if record.status == "success":
        out.print(
            f"[green]Exported[/green] {record.record_count:,} rows of {record.resource} "
            f"({record.file_size:,} bytes) to {record.destination_path}"
        )
        out.print(f"sha256 {record.sha256}  run {record.run_id}")
        for warning in record.warnings:
            err.print(f"[yellow]Warning:[/yellow] {warning}")
        if record.url:
            out.print(f"download {record.url}", highlight=False)
    else:
        err.print(f"[red]Export failed[/red] (run {record.run_id}):\n{record.error}")


@app.command("export-url", hidden=True)
def export_url(
    run_id: Annotated[str, typer.Argument(help="Id of a finished export run (ferry export prints it).")],
    expires: Annotated[
        Optional[int], typer.Option(help="Minutes the URL stays valid, 1-10080 (default: FERRY_DOWNLOAD_URL_MINUTES, 15).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print run_id, location, url and expires_at as JSON.")] = False,
) -> None:
    """Print a fresh download URL for the file of a finished export run, while the file exists (`ferry export url RUN_ID`)."""
    from deployments.service import download_link
    from ferry.errors import ParameterError

    try:
        link = download_link(run_id, expires)
    except ParameterError as exc:
        fail(exc)
    except FerryError as exc:
        err.print(f"[red]No download URL[/red] for run {run_id}:")
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(link.model_dump_json(indent=2))
        return
    print(link.url)
    err.print(f"{link.location}, valid until {link.expires_at.isoformat(timespec='seconds')}")


# --- demo -----------------------------------------------------------------------------


@app.command("demo")
def demo(
    workspace: Annotated[str, typer.Option(help="Demo workspace name.")] = "demo",
    contacts: Annotated[int, typer.Option(help="Contacts to seed on first run.")] = 5_000,
    events: Annotated[int, typer.Option(help="Events to seed on first run.")] = 20_000,
) -> None:
    """Seed the embedded store with demo data (once) and export its contacts as CSV."""
    from sqlalchemy import select

    from ferry.params import parse_request
    from ferry.store.engine import get_engine
    from ferry.store.migrate import upgrade
    from ferry.store.schema import workspaces
    from ferry.store.seed import SeedCounts, seed_workspace

    engine = get_engine()
    upgrade(engine)
    with engine.connect() as conn:
        exists = conn.execute(select(workspaces.c.id).where(workspaces.c.slug == workspace)).first()
    if not exists:
        added = seed_workspace(engine, workspace, SeedCounts(contacts=contacts, events=events))
        out.print(f"Seeded workspace [bold]{workspace}[/bold]: {added['contacts']:,} contacts, {added['events']:,} events")
    request = parse_request({"workspace": workspace, "resource": "contacts", "lists": ["vip", "newsletter"], "actor": "demo"})
    record = _run_export(request, as_json=False)
    _print_record(record, as_json=False)
    if record.status != "success":
        raise typer.Exit(1)
    out.print(f"\n[bold]Your export:[/bold] {record.destination_path}")
    out.print(
        "[bold]See the run in the Prefect UI:[/bold] run `.venv/bin/prefect server start`, then open "
        f"http://127.0.0.1:4200/runs/flow-run/{record.run_id}"
    )


app.add_typer(jobs_app, name="jobs")
mount_runs(app)  # runs, serve, worker, deploy
app.command("api")(api)
app.command("up")(up)


def main() -> None:  # pragma: no cover - console entry point
    app()


def _exit(exc: SystemExit) -> None:
    """Leave without tearing the interpreter down once a command has loaded Prefect (the ``ferry`` process only).

    Freeing the million objects Prefect, pydantic and pyarrow leave behind takes
    0.5-1 s after the command's last line; Python's exit steps still run
    (:func:`ferry.lifelines.exit_without_teardown`). Commands that did not load
    Prefect (``ferry --help``) exit as usual.
    """
    from ferry.lifelines import exit_without_teardown

    if "prefect" in sys.modules:
        exit_without_teardown(exc.code)


if __name__ == "__main__":  # pragma: no cover
    main()
