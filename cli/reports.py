"""``ferry reports``: saved reports (named export definitions) of a workspace: create, list, show, delete, export.

Commands and flags are contracts; ``--json`` prints the HTTP API's shapes
(camelCase). The rules (what a definition may hold, how it becomes an export)
live in :mod:`ferry.reports`; errors exit 2. A report is named by its id
(``rpt_...``) or its name.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Column, Table

from cli.console import fail, out, parse_filter, parse_pairs, print_json
from ferry.errors import FerryError

reports_app = typer.Typer(help="Saved reports: named export definitions, exported to any format.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WorkspaceOpt = Annotated[str, typer.Option(help="Workspace the report belongs to.")]
ReportArg = Annotated[str, typer.Argument(help="Report id (rpt_...) or name.")]


def _engine():
    from ferry.store.engine import get_engine

    return get_engine()


def _print(report, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    out.print(f"[bold]{report.name}[/bold] ({report.id}) in {report.workspace}: {report.resource}", highlight=False)
    shown = report.to_json()
    for key in ("fields", "labels", "filters", "sort", "title", "description", "createdAt", "updatedAt"):
        if shown.get(key) not in (None, [], {}):
            out.print(f"  {key}: {shown[key]}", markup=False, highlight=False)


@reports_app.command("create")
def reports_create(
    name: Annotated[str, typer.Argument(help="The report's name, unique in the workspace.")],
    workspace: WorkspaceOpt,
    resource: Annotated[str, typer.Option(help="Resource slug or alias: contacts, events, ...")],
    fields: Annotated[Optional[str], typer.Option(help="Comma-separated columns, in order (default: every column).")] = None,
    label: Annotated[Optional[list[str]], typer.Option(help="Header name KEY=LABEL, e.g. email=E-mail (repeatable).")] = None,
    filter: Annotated[Optional[list[str]], typer.Option(help="FIELD:OP:VALUE, e.g. lifecycle_stage:eq:customer (repeatable).")] = None,
    sort: Annotated[Optional[str], typer.Option(help="FIELD[:asc|desc].")] = None,
    title: Annotated[Optional[str], typer.Option(help="PDF title (default: the name).")] = None,
    description: Annotated[Optional[str], typer.Option(help="PDF description.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Save a report; every problem with it at once."""
    from ferry.reports import create_report

    raw = {
        "name": name,
        "resource": resource,
        "fields": fields,
        "labels": parse_pairs(label or [], "--label"),
        "filters": [parse_filter(f) for f in filter or []],
        "sort": sort,
        "title": title,
        "description": description,
    }
    try:
        report = create_report(_engine(), workspace, {k: v for k, v in raw.items() if v is not None})
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(report.to_json())
        return
    out.print(f"Created report [bold]{report.name}[/bold] ({report.id}) in {workspace}", highlight=False)


@reports_app.command("list")
def reports_list(workspace: WorkspaceOpt, as_json: JsonFlag = False) -> None:
    """List the workspace's reports, by name."""
    from ferry.reports import list_reports

    try:
        found = list_reports(_engine(), workspace)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json([r.to_json() for r in found])
        return
    table = Table(Column("id", no_wrap=True, min_width=28), "name", "resource", "columns", "updated (UTC)")
    for r in found:
        table.add_row(r.id, r.name, r.resource, ", ".join(r.fields or ["(all)"]), r.updated_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table if found else f"No reports in {workspace} yet: ferry reports create NAME --workspace {workspace} --resource contacts")


@reports_app.command("show")
def reports_show(report: ReportArg, workspace: WorkspaceOpt, as_json: JsonFlag = False) -> None:
    """Show one report's definition."""
    from ferry.reports import find_report

    try:
        found = find_report(_engine(), workspace, report)
    except FerryError as exc:
        fail(exc)
    _print(found, as_json)


@reports_app.command("delete")
def reports_delete(
    report: ReportArg,
    workspace: WorkspaceOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete the report.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a report (its definition only: files it was exported to stay)."""
    from ferry.reports import delete_report, find_report

    if not yes:
        fail(f"Deleting report {report!r} cannot be undone; run again with --yes.")
    try:
        engine = _engine()
        deleted = delete_report(engine, workspace, find_report(engine, workspace, report).id)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print_json(deleted.to_json())
        return
    out.print(f"Deleted report [bold]{deleted.name}[/bold] ({deleted.id})", highlight=False)


@reports_app.command("export")
def reports_export(
    report: ReportArg,
    workspace: WorkspaceOpt,
    format: Annotated[str, typer.Option(help="csv, tsv, json, jsonl, xml, parquet, xlsx or pdf.")] = "csv",
    dest: Annotated[Optional[str], typer.Option(help="Folder, or block reference KIND/NAME (default: managed storage).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Export a report to a file, in the format chosen now (runs the export-data flow, as `ferry export` does)."""
    from deployments.service import run_export
    from ferry.reports import find_report

    options = {"format": format} | ({"destination": dest} if dest else {})
    try:
        request = find_report(_engine(), workspace, report).export_request(workspace, options, actor="cli")
    except FerryError as exc:
        fail(exc)
    record = run_export(request)
    if as_json:
        print(record.model_dump_json(indent=2))
    elif record.status == "success":
        out.print(f"[green]Exported[/green] {record.record_count:,} rows ({record.file_size:,} bytes) to {record.destination_path}")
    else:
        out.print(f"[red]Export failed[/red] (run {record.run_id}):\n{record.error}")
    if record.status != "success":
        raise typer.Exit(1)
