"""``ferry import ...``: the import commands (issue 3).

Each step of the import pipeline has its own command in its own function, so the
steps can be added and changed independently. Command names, flags and the ``--json``
field names are contracts that users' scripts call: add new ones, never rename.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from cli.console import err, fail, out
from ferry.errors import FerryError

import_app = typer.Typer(help="Import files into a workspace: preview, map, validate, run.", no_args_is_help=True)


FileArg = Annotated[Path, typer.Argument(help="The file: CSV, TSV, JSON, JSONL, XLSX, XLS or Parquet, optionally .gz or .zip.")]
SourceArg = Annotated[str, typer.Argument(help="The file, an http(s) URL, or a block URI (sftp://NAME/path, ftp://..., s3://BUCKET/key).")]
EncodingOpt = Annotated[Optional[str], typer.Option(help="Text encoding, when detection gets it wrong (e.g. cp1252).")]
SheetOpt = Annotated[
    Optional[str], typer.Option(help="Workbooks: the worksheet to read, by name or 1-based index (default: the first with data).")
]
ValueMapOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--value-map",
        help='COLUMN={"vendor value": value, ...}: read the cells of a column as other values, e.g. '
        'Status={"subscribed": true, "pending": null} (repeatable; "valueMap" in a mapping file entry does the same).',
    ),
]


# --- step 1: preview ----------------------------------------------------------------------------


@import_app.command("preview")
def preview_command(
    file: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rows: Annotated[int, typer.Option(min=0, max=50, help="Sample rows to show (at most 50).")] = 50,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
) -> None:
    """Show what a file is (format, encoding, delimiter, a workbook's sheets), its columns, sample rows and row count."""
    from deployments.service import preview_file

    try:
        result = preview_file(file, sample_rows=rows, encoding=encoding, sheet=sheet)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    dialect = ", ".join(
        part
        for part in (
            result.file_type.upper(),
            f"{result.compression} compressed" if result.compression else "",
            f"encoding {result.encoding}" if result.encoding else "",
            f"delimiter {result.delimiter!r}" if result.delimiter else "",
            f"sheet {result.sheet!r}" if result.sheet else "",
        )
        if part
    )
    count = f"about {result.total_rows:,}" if result.total_rows_estimated else f"{result.total_rows:,}"
    out.print(f"[bold]{file.name}[/bold]: {dialect}; {count} rows, {len(result.columns)} columns", soft_wrap=True)
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    for problem in result.problems:
        out.print(f"[red]problem:[/red] {problem}", soft_wrap=True)
    # One line per column (files are wider than terminals): its first sample values.
    table = Table("column", f"first values (rows {', '.join(map(str, result.sample_row_numbers[:3])) or '-'})")
    for column in result.columns:
        values = [record[column] for record in result.sample_rows[:3]]
        table.add_row(column, " | ".join("" if v is None else _short(str(v)) for v in values))
    out.print(table)


def _short(text: str, width: int = 40) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# --- step 2: suggest-mapping --------------------------------------------------------------------


@import_app.command("suggest-mapping")
def suggest_mapping_command(
    file: FileArg,
    resource: Annotated[str, typer.Option(help="Resource to import into: contacts, accounts, events, ...")],
    workspace: Annotated[Optional[str], typer.Option(help="Workspace: a mapping accepted there before is proposed first.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: a list of {sourceColumn, targetFieldSlug, valueType, addressPart, confidence}.")
    ] = False,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
) -> None:
    """Suggest the target field (phone type, address part) of each column, with a confidence from 0 to 1."""
    from deployments.service import suggest_file_mapping

    try:
        mapping, fields = suggest_file_mapping(file, resource, workspace=workspace, encoding=encoding, sheet=sheet)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print(json.dumps([m.to_json() for m in mapping], ensure_ascii=False, indent=2))
        return
    table = Table("source column", "target", "confidence", "why")
    for m in mapping:
        target = m.target_key or "[dim]-[/dim]"
        table.add_row(m.source_column, target, f"{m.confidence:.2f}", m.reason)
    out.print(table)
    listed = []
    for f in fields:
        subs = f["valueTypes"] or f["addressParts"]
        listed.append(f"{f['slug']}" + (f" ({'/'.join(subs)})" if subs else "") + ("*" if f["required"] else ""))
    out.print("[bold]Target fields[/bold] (* required): " + ", ".join(listed), soft_wrap=True)


# --- steps 3-5: validate, run; rollback and history -----------------------------------------------


def _load_mapping(path: Optional[Path]) -> Optional[list]:
    """A mapping file: the JSON list `suggest-mapping --json` prints, or {"mapping": [...]}."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--mapping") from None
    return data["mapping"] if isinstance(data, dict) and "mapping" in data else data


def _static_pairs(values: Optional[list[str]]) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--static")
        pairs[key.strip()] = val
    return pairs


def _value_maps(values: Optional[list[str]]) -> dict[str, dict]:
    """``COLUMN={...}`` pairs (the column name may hold ``=``; the map starts at ``={``)."""
    maps = {}
    for value in values or []:
        column, sep, text = value.partition("={")
        try:
            parsed = json.loads("{" + text) if sep and column.strip() else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise typer.BadParameter(f'{value!r} is not COLUMN={{"vendor value": value, ...}} (a JSON object)', param_hint="--value-map")
        maps[column.strip()] = parsed
    return maps


DateOrderOpt = Annotated[
    Optional[str],
    typer.Option(
        help="mdy or dmy: how to read slash dates (05/03/2026) in a column whose values read either way "
        "(default month first, with a warning); a column's own values decide when a part is over 12."
    ),
]
KeepUnmappedOpt = Annotated[
    bool,
    typer.Option(
        "--keep-unmapped",
        help="Import every column the mapping leaves unmapped as a custom attribute (attributes.<column name>) instead of "
        'ignoring it; map one column there with "targetFieldSlug": "attributes.NAME".',
    ),
]
MappingOpt = Annotated[Optional[Path], typer.Option("--mapping", help="Mapping JSON file (from `suggest-mapping --json`, edited).")]
AutoMapOpt = Annotated[bool, typer.Option("--auto-map", help="Suggest the mapping from the header and sample rows.")]


@import_app.command("validate")
def validate_command(
    file: FileArg,
    resource: Annotated[str, typer.Option(help="Resource to import into: contacts, accounts, events, ...")],
    mapping: MappingOpt = None,
    auto_map: AutoMapOpt = False,
    max_errors: Annotated[int, typer.Option(min=0, max=10_000, help="Errors to list.")] = 20,
    value_map: ValueMapOpt = None,
    keep_unmapped: KeepUnmappedOpt = False,
    date_order: DateOrderOpt = None,
    sheet: SheetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every row of a file against the catalog without touching any workspace."""
    from deployments.service import check_import_file

    try:
        report = check_import_file(
            file,
            resource,
            mapping=_load_mapping(mapping),
            auto_map=auto_map,
            max_errors=max_errors,
            value_maps=_value_maps(value_map),
            keep_unmapped=keep_unmapped,
            date_order=date_order,
            sheet=sheet,
        )
    except FerryError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        colour = "green" if not report["errorRows"] else "yellow"
        out.print(
            f"[bold]{file.name}[/bold] as {report['resource']}: {report['totalRows']:,} rows, "
            f"[{colour}]{report['validRows']:,} valid, {report['errorRows']:,} with errors[/{colour}] "
            f"({report['errorCount']:,} errors), {report['duplicateRows']:,} duplicate rows in the file",
            soft_wrap=True,
        )
        for warning in report["warnings"]:
            out.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        _print_errors(report["errors"], report["errorSummary"])
    if report["errorRows"]:
        raise typer.Exit(1)


def _print_errors(errors: list[dict], summary: dict[str, int]) -> None:
    if summary:
        out.print("Errors by field and check: " + ", ".join(f"{k} {v:,}" for k, v in summary.items()), soft_wrap=True)
    if errors:
        table = Table("row", "field", "value", "error")
        for e in errors:
            table.add_row(str(e["row"]), e["field"] or "", _short("" if e["value"] is None else str(e["value"])), e["error"])
        out.print(table)


@import_app.command("run")
def run_command(
    file: SourceArg,
    resource: Annotated[str, typer.Option(help="Resource to import into: contacts, accounts, events, ...")],
    workspace: Annotated[str, typer.Option(help="Workspace to import into.")],
    mapping: MappingOpt = None,
    auto_map: AutoMapOpt = False,
    duplicates: Annotated[
        str, typer.Option(help="skip, update or create: what a row matching a record (or an earlier row) does.")
    ] = "skip",
    match: Annotated[Optional[str], typer.Option(help="Comma-separated match fields (default: the resource's key, e.g. email).")] = None,
    merge: Annotated[str, typer.Option(help="fill_empty, overwrite or prefer_import (duplicates=update).")] = "prefer_import",
    static: Annotated[Optional[list[str]], typer.Option("--static", help="KEY=VALUE set on every row (repeatable).")] = None,
    value_map: ValueMapOpt = None,
    keep_unmapped: KeepUnmappedOpt = False,
    date_order: DateOrderOpt = None,
    sheet: SheetOpt = None,
    create_missing_references: Annotated[
        bool, typer.Option("--create-missing-references", help="Create referenced records that do not exist.")
    ] = False,
    skip_validation: Annotated[
        bool, typer.Option("--skip-validation", help="Load failing values as empty instead of rejecting rows (loud).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run every step but the commit; report what would happen.")] = False,
    processing: Annotated[str, typer.Option(help="auto, inline or deployment.")] = "auto",
    max_error_rate: Annotated[
        Optional[str],
        typer.Option(
            help="Largest share of rejected rows, e.g. 5% or 0.05 (default 10%); past it the run fails and loads nothing. "
            "Exit code 0: every row loaded; 3: partial (some rows rejected); 1: failed."
        ),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who runs the import (audit log).")] = "cli",
    notify_email: Annotated[Optional[str], typer.Option(help="E-mail address(es) told when the import ends (needs an SMTP block).")] = None,
    notify_webhook: Annotated[
        Optional[str], typer.Option(help="Webhook block NAME that gets a signed notice when the import ends.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="When the import runs on a served deployment: print the run's id and URL and return at once."),
    ] = False,
) -> None:
    """Import a file into a workspace (runs the import-data flow)."""
    from ferry.import_params import parse_request

    raw = {
        "source": str(file),
        "resource": resource,
        "workspace": workspace,
        "mapping": _load_mapping(mapping),
        "auto_map": auto_map,
        "duplicates": duplicates,
        "match": match,
        "merge": merge,
        "static_values": _static_pairs(static),
        "value_maps": _value_maps(value_map),
        "keep_unmapped": keep_unmapped,
        "date_order": date_order,
        "sheet": sheet,
        "create_missing_references": create_missing_references,
        "skip_validation": skip_validation,
        "dry_run": dry_run,
        "processing": processing,
        "max_error_rate": max_error_rate,
        "actor": actor,
        "notify_email": notify_email,
        "notify_webhook": notify_webhook,
    }
    try:
        request = parse_request({k: v for k, v in raw.items() if v is not None})
    except FerryError as exc:
        fail(exc)
    from deployments.service import preflight_import, sealed_import

    try:
        preflight_import(request)  # what the run would refuse that can be told now: exit 2, no run, no audit entry
        request = sealed_import(request)  # a URL's token never reaches the run's parameters
    except FerryError as exc:
        fail(exc)
    if skip_validation:
        err.print(
            "[bold yellow]warning: --skip-validation loads values that fail checks as EMPTY instead of rejecting their rows.[/bold yellow]"
        )
    record = _run_import(request, as_json, wait=not no_wait)
    _print_import(record, as_json)
    if record.status in EXIT_CODES:
        raise typer.Exit(EXIT_CODES[record.status])


#: ``ferry import run``'s exit codes by outcome (0 otherwise): scripts tell a partial import from a clean one.
EXIT_CODES = {"failed": 1, "partial": 3}


def _run_import(request, as_json: bool, wait: bool = True):
    """On the served import deployment, or here; a large file handed to the deployment from here is followed too."""
    from cli.progress import LiveProgress
    from cli.runs_live import announce, follow, run_live
    from deployments.adhoc import deployment_ready, import_record
    from deployments.service import run_import
    from ferry.import_params import IMPORT_DEPLOYMENT

    record = run_live(IMPORT_DEPLOYMENT, request, run_import, import_record, as_json=as_json, wait=wait)
    if record.status == "submitted" and record.deployment_run_id and deployment_ready(IMPORT_DEPLOYMENT):
        announce(record.deployment_run_id, as_json, wait)
        live = LiveProgress(err, enabled=not as_json and sys.stderr.isatty())
        record = follow(record.deployment_run_id, IMPORT_DEPLOYMENT, request, import_record, live)
    return record


def _print_import(record, as_json: bool) -> None:
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    if record.status == "failed":
        err.print(f"[red]Import failed[/red] (run {record.run_id}):\n{record.error}", soft_wrap=True)
        return
    if record.status == "submitted":
        out.print(
            f"Started as deployment run [bold]{record.deployment_run_id}[/bold] ({record.file_size:,} bytes), but no runner or "
            f"worker polls import-data/default right now: it starts once one does (`ferry serve`). "
            f"Follow it with `ferry runs show {record.deployment_run_id}` or `ferry import history --resource {record.resource}`.",
            soft_wrap=True,
        )
        return
    verb = "[yellow]Dry run[/yellow]: would" if record.dry_run else "[green]Imported[/green]:"
    if record.status == "partial":
        verb = "[yellow]Partial[/yellow] (rows rejected):" + (" would" if record.dry_run else "")
    out.print(
        f"{verb} create {record.created_rows:,}, update {record.updated_rows:,}, skip {record.skipped_rows:,}, "
        f"reject {record.error_rows:,} of {record.total_rows:,} rows of {record.resource} in {record.workspace} "
        f"(run {record.run_id})",
        soft_wrap=True,
    )
    for warning in record.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    for ref in record.reference_warnings:
        values = ", ".join(str(v["value"]) for v in ref["values"][:5])
        out.print(
            f"[yellow]unresolved {ref['field']}:[/yellow] {ref['unresolved_count']} {ref['resource']} value(s) in {ref['rows']} rows "
            f"({ref['action']}): {values}",
            soft_wrap=True,
        )
    if record.dry_run:
        for kind in ("create", "update", "skip", "reject"):
            sample = record.samples.get(kind) or []
            if sample:
                out.print(f"  {kind}: " + "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in sample[:3]), soft_wrap=True)
    _print_errors(record.errors[:20], record.error_summary)
    if record.rejected_rows_path:
        out.print(f"Rejected rows: {record.rejected_rows_path}", soft_wrap=True)


@import_app.command("rollback")
def rollback_command(
    run_id: Annotated[str, typer.Argument(help="Run id of the import to undo.")],
    actor: Annotated[str, typer.Option(help="Who rolls back (audit log).")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print the rollback record as JSON.")] = False,
) -> None:
    """Undo one import exactly: delete what it created, restore what it updated (refuses if records changed since)."""
    from deployments.service import roll_back_import

    record = roll_back_import(run_id, actor)
    if as_json:
        print(record.model_dump_json(indent=2))
    elif record.status == "success":
        out.print(
            f"[green]Rolled back[/green] import {run_id}: deleted {record.deleted_rows:,} created {record.resource}, "
            f"restored {record.restored_rows:,} updated"
            + (f", deleted references {record.deleted_references}" if record.deleted_references else "")
        )
    else:
        err.print(f"[red]Rollback refused[/red]: {record.error}", soft_wrap=True)
    if record.status != "success":
        raise typer.Exit(1)


@import_app.command("history")
def history_command(
    resource: Annotated[str, typer.Option(help="Resource whose imports to list.")],
    workspace: Annotated[Optional[str], typer.Option(help="Only imports into this workspace.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run records as JSON.")] = False,
) -> None:
    """The import runs of a resource, newest first, with their result records."""
    from ferry.runs import import_history

    try:
        records = import_history(resource, workspace=workspace, limit=limit)
    except FerryError as exc:
        fail(exc)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    # Short ids fit narrow terminals; --json and `ferry runs show` have the full ones, and rollback takes either.
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("started", "run", "workspace", "status"):
        table.add_column(name, no_wrap=name != "workspace")
    for name in ("created", "updated", "skipped", "rejected"):
        table.add_column(name, justify="right")
    table.add_column("file")
    for r in records:
        status = r.status + (" (dry run)" if r.dry_run else "")
        table.add_row(
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            r.run_id[:8],
            r.workspace,
            status,
            f"{r.created_rows:,}",
            f"{r.updated_rows:,}",
            f"{r.skipped_rows:,}",
            f"{r.error_rows:,}",
            Path(r.source).name,
        )
    out.print(table)
