"""What the ``ferry jobs`` commands share: their options, and the job JSON those options make.

Option names agree with ``ferry export``: ``--compress`` / ``--gzip``, and
``--include-variants`` / ``--no-include-variants`` (``--no-variants``, the
earlier spelling here, is accepted too but not shown).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cli.console import parse_filter, parse_pairs, require_server, split_list

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JobArg = Annotated[str, typer.Argument(help="Job name or id.")]


def service():
    from deployments.jobs import JobService

    require_server()
    return JobService()


FileOpt = Annotated[Optional[Path], typer.Option("--file", help="Job as JSON (the HTTP API's body); options override it.")]
NameOpt = Annotated[Optional[str], typer.Option(help="Job name (unique; the deployment is export-data/NAME).")]
DescOpt = Annotated[Optional[str], typer.Option(help="What the job is for.")]
WorkspaceOpt = Annotated[Optional[str], typer.Option(help="Workspace to export from.")]
ResourceOpt = Annotated[Optional[str], typer.Option(help="Resource: contacts, events, products, ...")]
FormatOpt = Annotated[Optional[str], typer.Option(help="csv, tsv, json, jsonl, xml, parquet, xlsx or pdf.")]
DestOpt = Annotated[Optional[str], typer.Option("--dest", "--destination", help="Destination block TYPE/NAME (or a folder).")]
FieldsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated columns, in order.")]
FilterOpt = Annotated[Optional[list[str]], typer.Option("--filter", help="FIELD:OP:VALUE (repeatable).")]
SchemaOpt = Annotated[Optional[str], typer.Option(help="Schema key (products).")]
CatalogOpt = Annotated[Optional[str], typer.Option(help="Catalog key (products).")]
ScopeOpt = Annotated[Optional[list[str]], typer.Option("--scope", help="Dimension scope KEY=VALUE, e.g. language=en (repeatable).")]
VariantsOpt = Annotated[
    Optional[bool], typer.Option("--include-variants/--no-include-variants", help="One row per product variant (as in `ferry export`).")
]
#: The earlier spelling of --no-include-variants, kept working (hidden: one spelling is documented).
NoVariantsOpt = Annotated[bool, typer.Option("--no-variants", hidden=True)]
SegmentOpt = Annotated[Optional[str], typer.Option(help="Audience key of a saved segment.")]
ListsOpt = Annotated[Optional[str], typer.Option(help="Comma-separated list keys.")]
ActivityOpt = Annotated[Optional[str], typer.Option(help="Comma-separated event types.")]
CronOpt = Annotated[Optional[str], typer.Option(help="Cron schedule, e.g. '0 2 * * *'.")]
TzOpt = Annotated[Optional[str], typer.Option(help="IANA timezone of the cron, e.g. Europe/Berlin (default UTC).")]
CompressOpt = Annotated[
    Optional[bool], typer.Option("--compress/--no-compress", "--gzip/--no-gzip", help="gzip the file (--gzip, as in `ferry export`).")
]
FilenameOpt = Annotated[
    Optional[str], typer.Option("--filename", help="File name template: {date} {resource} {workspace} {run_id} {format}.")
]
NotifyOpt = Annotated[Optional[list[str]], typer.Option("--notify", help="[success,failed:]BLOCK_TYPE/NAME (repeatable).")]
ActiveOpt = Annotated[Optional[bool], typer.Option("--active/--paused", help="Start active (default) or paused.")]
IncrementalOpt = Annotated[Optional[bool], typer.Option("--incremental/--full", help="Only rows changed since the last successful run.")]
OverwriteOpt = Annotated[
    Optional[bool],
    typer.Option("--overwrite/--no-overwrite", help="Replace a file of the same name at the destination (default: such a run fails)."),
]
OptionOpt = Annotated[
    Optional[list[str]], typer.Option("--option", help="Other export option KEY=VALUE (JSON value), e.g. delimiter=';' (repeatable).")
]


def _notifications(values: list[str]) -> list[dict]:
    """``failed:slack-webhook/ops``, ``success,failed:custom-webhook/crm`` or just a block (= failed)."""
    result = []
    for value in values:
        on, sep, block = value.partition(":")
        if not sep:
            on, block = "failed", value
        result.append({"on": [o.strip() for o in on.split(",") if o.strip()], "block": block.strip()})
    return result


def _options(values: list[str]) -> dict[str, Any]:
    options = {}
    for key, raw in parse_pairs(values, "--option").items():
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _given(o: dict[str, Any]) -> dict[str, Any]:
    """The command's options (its parameters by name) as job JSON names; None for what was not given."""
    include_variants = False if o.get("no_variants") else o.get("include_variants")
    return {
        "name": o.get("name"),
        "description": o.get("description"),
        "workspace": o.get("workspace"),
        "resource": o.get("resource"),
        "format": o.get("format"),
        "destination": o.get("dest"),
        "fields": (split_list(o.get("fields")) or None),
        "filters": [parse_filter(f) for f in o["filter"]] if o.get("filter") else None,
        "schema": o.get("schema"),
        "catalog": o.get("catalog"),
        "dimensionScope": parse_pairs(o["scope"], "--scope") if o.get("scope") else None,
        "includeVariants": include_variants,
        "segment": o.get("segment"),
        "lists": (split_list(o.get("lists")) or None),
        "activityTypes": (split_list(o.get("activity_types")) or None),
        "cron": o.get("cron"),
        "timezone": o.get("timezone"),
        "compress": o.get("compress"),
        "filenameTemplate": o.get("filename"),
        "notifications": _notifications(o["notify"]) if o.get("notify") else None,
        "active": o.get("active"),
        "incremental": o.get("incremental"),
        "options": _options(o["option"]) if o.get("option") else None,
    }


_SCOPE_KEYS = (
    "workspace",
    "resource",
    "fields",
    "filters",
    "schema",
    "catalog",
    "dimensionScope",
    "includeVariants",
    "segment",
    "lists",
    "activityTypes",
)
_JOB_KEYS = (
    "name",
    "description",
    "destination",
    "format",
    "compress",
    "filenameTemplate",
    "notifications",
    "active",
    "incremental",
    "options",
)


def job_body(options: dict[str, Any]) -> dict[str, Any]:
    """The job as JSON: ``--file`` (the HTTP API's body), overridden by every option given."""
    file: Path | None = options.get("file")
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    given = _given(options)
    scope = dict(body.get("scope") or {})
    for key in _SCOPE_KEYS:
        if given.get(key) is not None:
            scope[key] = given[key]
    if scope:
        body["scope"] = scope
    if given.get("cron") is not None:
        body["schedule"] = {"cron": given["cron"], "timezone": given.get("timezone") or "UTC"}
    elif given.get("timezone") is not None and body.get("schedule"):
        body["schedule"]["timezone"] = given["timezone"]
    for key in _JOB_KEYS:
        if given.get(key) is not None:
            body[key] = given[key]
    if options.get("overwrite") is not None:  # the export option `overwrite`, as the API's body sets it
        body["options"] = {**(body.get("options") or {}), "overwrite": options["overwrite"]}
    return body
