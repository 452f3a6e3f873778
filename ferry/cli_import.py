"""``ferry import ...``: the import commands (issue 3).

Each step of the import pipeline has its own command in its own function, so the
steps can be added and changed independently. Command names, flags and the ``--json``
field names are contracts that users' scripts call: add new ones, never rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ferry.errors import FerryError

import_app = typer.Typer(help="Import files into a workspace: preview, map, validate, run.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)


def _fail(exc: FerryError) -> None:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    raise typer.Exit(2)


FileArg = Annotated[Path, typer.Argument(help="The file: CSV, TSV, JSON, JSONL, XLSX, XLS or Parquet, optionally .gz or .zip.")]
EncodingOpt = Annotated[Optional[str], typer.Option(help="Text encoding, when detection gets it wrong (e.g. cp1252).")]


# --- step 1: preview ----------------------------------------------------------------------------


@import_app.command("preview")
def preview_command(
    file: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rows: Annotated[int, typer.Option(min=0, max=50, help="Sample rows to show (at most 50).")] = 50,
    encoding: EncodingOpt = None,
) -> None:
    """Show what a file is (format, encoding, delimiter), its columns, sample rows and row count."""
    from tasks.import_parse import preview

    try:
        result = preview(file, sample_rows=rows, encoding=encoding)
    except FerryError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    dialect = ", ".join(
        part for part in (
            result.file_type.upper(),
            f"{result.compression} compressed" if result.compression else "",
            f"encoding {result.encoding}" if result.encoding else "",
            f"delimiter {result.delimiter!r}" if result.delimiter else "",
            f"sheet {result.sheet!r}" if result.sheet else "",
        ) if part
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: a list of {sourceColumn, targetFieldSlug, valueType, addressPart, confidence}.")] = False,
    encoding: EncodingOpt = None,
) -> None:
    """Suggest the target field (phone type, address part) of each column, with a confidence from 0 to 1."""
    from tasks.import_mapping import suggest_mapping, target_fields
    from tasks.import_parse import sample, sniff

    try:
        info = sniff(file, encoding=encoding)
        rows, _, _, _ = sample(info, 200)
        mapping = suggest_mapping(info, rows, resource, workspace=workspace)
        fields = target_fields(resource)
    except FerryError as exc:
        _fail(exc)
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
