"""``ferry blocks``: create, list, delete and register the Prefect blocks Ferry delivers, reads and notifies through.

``ferry blocks create KIND NAME --field value ...`` works for every kind in the
destination registry (read at run time, so kinds added there appear here
without code) and for the notification blocks. Options are the block's field
names with dashes (``--private-key``); for any field, ``--FIELD-file PATH``
reads the value from a file and ``--FIELD-env VAR`` from an environment
variable, and a secret given as ``-`` is read from standard input, so secrets
need not sit in shell history or ``ps``. A nested block field takes the name of
a saved block (``--credentials NAME``) or its own fields inline
(``--credentials.aws-access-key-id ...``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Optional, Union, get_args, get_origin

import typer
from pydantic import SecretStr, ValidationError
from pydantic_core import PydanticUndefined
from rich.table import Table

from cli.console import fail, out

blocks_app = typer.Typer(
    help="Create, list, delete and register the Prefect blocks Ferry uses (destinations, sources, notifications).", no_args_is_help=True
)

# Short kinds people type -> block type slugs. Any slug works too, and a unique
# prefix before the first dash (``local`` -> ``local-directory``).
ALIASES = {
    "s3": "s3-bucket",
    "aws": "aws-credentials",
    "minio": "minio-credentials",
    "gcp": "gcp-credentials",
    "azure": "azure-blob-storage-container",
    "az": "azure-blob-storage-container",
    "gcs": "gcs-bucket",
    "gs": "gcs-bucket",
    "webhook": "webhook-endpoint",
    "smtp": "smtp-server",
    "email": "email-server-credentials",
    "ftps": "ftp",
    "local": "local-directory",
}


def kinds() -> dict[str, Any]:
    from blocks.kinds import block_classes

    return block_classes()


def resolve_kind(kind: str, available: dict[str, Any]) -> str:
    kind = kind.lower()
    if kind in available:
        return kind
    if ALIASES.get(kind) in available:
        return ALIASES[kind]
    prefixed = [slug for slug in available if slug.split("-")[0] == kind]
    if len(prefixed) == 1:
        return prefixed[0]
    fail(f"unknown block kind {kind!r}; use one of: {', '.join(sorted(available))} (or {', '.join(sorted(ALIASES))}).")
    raise AssertionError  # pragma: no cover


# --- option parsing ---------------------------------------------------------------------


def _is_block(annotation: Any) -> list[type]:
    from prefect.blocks.core import Block

    if inspect.isclass(annotation) and issubclass(annotation, Block):
        return [annotation]
    return [t for arg in get_args(annotation) for t in _is_block(arg)]


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr or (inspect.isclass(annotation) and issubclass(annotation, SecretStr)):
        return True
    if inspect.isclass(annotation) and annotation.__name__ == "SecretDict":
        return True
    return any(_is_secret(a) for a in get_args(annotation))


def _is_bool(annotation: Any) -> bool:
    return annotation is bool or (get_origin(annotation) is Union and bool in get_args(annotation) and str not in get_args(annotation))


def _needs_json(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (dict, list, tuple) or annotation in (dict, list):
        return True
    if inspect.isclass(annotation) and hasattr(annotation, "model_fields") and not _is_block(annotation):
        return True  # a nested pydantic model (not a block), e.g. AwsClientParameters
    return any(_needs_json(a) for a in get_args(annotation) if a is not type(None))


def parse_options(args: list[str]) -> dict[str, str | bool]:
    """``--a-b v``, ``--a-b=v``, ``--flag`` / ``--no-flag`` -> {"a_b": "v", "flag": True}; dots keep nesting."""
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            fail(f"unexpected argument {token!r}; options look like --field VALUE.")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if eq:
            options[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[key] = args[i + 1]
            i += 1
        elif key.startswith("no_"):
            options[key[3:]] = False
        else:
            options[key] = True
        i += 1
    return options


def _read_secret(field: str) -> str:
    """A secret typed at a hidden prompt when someone is at the keyboard, else read from standard input; never echoed."""
    if sys.stdin.isatty():
        return typer.prompt(field.replace("_", " "), hide_input=True)
    return sys.stdin.read().rstrip("\n")


def _value_from_source(option: str, field: str, source: str | None, value: str | bool, secret: bool) -> Any:
    """The value of ``--OPTION``: from a file (``-file``), an environment variable (``-env``), stdin or a prompt (secrets)."""
    if source == "file" and isinstance(value, str):
        try:
            text = Path(value).expanduser().read_text()
        except OSError as exc:
            fail(f"--{option.replace('_', '-')} {value!r}: {exc.strerror}.")
        one_line = text.rstrip("\r\n")
        return one_line if "\n" not in one_line else text  # `echo KEY > file` adds a newline that is no part of the key
    if source == "env" and isinstance(value, str):
        if value not in os.environ:
            fail(f"--{option.replace('_', '-')}: environment variable {value!r} is not set.")
        return os.environ[value]
    if source is not None:
        fail(f"--{option.replace('_', '-')} needs a value.")
    if secret and (value == "-" or value is True):  # `--secret -` reads stdin; a bare `--secret` asks for it
        return _read_secret(field)
    return value


def build_values(cls: type, options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Field values for ``cls`` from parsed options; nested blocks by saved name or inline dotted options."""
    fields = cls.model_fields
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for raw_key, raw_value in options.items():
        head, dot, rest = raw_key.partition(".")
        base, source = resolve_option(head, cls)
        if base is None:
            fail(_unknown_field(cls, prefix + head, fields))
        if dot:
            nested.setdefault(base, {})[rest] = raw_value
            continue
        annotation = fields[base].annotation
        value = _value_from_source(head, base, source, raw_value, _is_secret(annotation))
        block_types = _is_block(annotation)
        if block_types and isinstance(value, str):
            value = _load_saved(block_types, value)
        elif _needs_json(annotation) and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                fail(f'--{head.replace("_", "-")} takes JSON here, e.g. \'{{"key": "value"}}\'.')
        elif value is True and not _is_bool(annotation):
            fail(f"--{head.replace('_', '-')} needs a value.")
        values[base] = value
    for base, sub in nested.items():
        block_types = _is_block(fields[base].annotation)
        if not block_types:
            values[base] = {k: v for k, v in sub.items()}
            continue
        target = _pick_block_type(block_types, sub)
        values[base] = target(**build_values(target, sub, prefix=f"{base}."))
    for name, field in fields.items():  # prompt for missing required secrets when someone is at the keyboard
        if name not in values and field.is_required() and _is_secret(field.annotation) and sys.stdin.isatty():
            values[name] = typer.prompt(f"{name.replace('_', ' ')}", hide_input=True)
    return values


def _vendor(cls: type) -> str:
    """The first word of the block type slug (``aws`` of ``aws-credentials``): a prefix its fields may be named without."""
    return cls.get_block_type_slug().split("-")[0]


def _named(name: str, fields: dict[str, Any], vendor: str) -> str | None:
    """The field ``name`` names: itself, or ``VENDOR_NAME`` (``access_key_id`` -> ``aws_access_key_id``)."""
    if name in fields:
        return name
    return f"{vendor}_{name}" if vendor and f"{vendor}_{name}" in fields else None


def resolve_option(option: str, cls: type) -> tuple[str | None, str | None]:
    """(the field an option sets, where its value comes from: None, "file" or "env").

    ``ca_file`` is a field of its own; ``private_key_file`` reads the private key
    from a file, ``password_env`` from an environment variable. A field may be
    named without the vendor word the block type starts with (``--access-key-id``
    for aws-credentials' ``aws_access_key_id``, ``--root-password`` for
    minio-credentials' ``minio_root_password``).
    """
    fields, vendor = cls.model_fields, _vendor(cls)
    if option in fields:
        return option, None
    for name, source in ((option, None), *((option[: -len(s)], s[1:]) for s in ("_file", "_env") if option.endswith(s))):
        if found := _named(name, fields, vendor):
            return found, source
    return None, None


def _unknown_field(cls: type, name: str, fields: dict[str, Any]) -> str:
    import difflib

    names = ", ".join("--" + n.replace("_", "-") for n in fields)
    close = difflib.get_close_matches(name.rpartition(".")[2], list(fields), n=1)
    hint = f" Did you mean --{close[0].replace('_', '-')}?" if close else ""
    return f"{cls.get_block_type_slug()} blocks have no field {name!r}; fields: {names}.{hint}"


def _pick_block_type(types: list[type], sub: dict[str, Any]) -> type:
    for kind in types:
        wanted = {resolve_option(k.partition(".")[0], kind)[0] for k in sub}
        if wanted <= set(kind.model_fields):
            return kind
    return types[0]


def _load_saved(types: list[type], name: str) -> Any:
    for kind in types:
        try:
            return kind.load(name)
        except ValueError:
            continue
    fail(f"no saved {' or '.join(t.get_block_type_slug() for t in types)} block named {name!r}.")


def _problems(exc: ValidationError) -> str:
    return "\n".join(f"  - {'.'.join(str(p) for p in e['loc']) or 'block'}: {e['msg']}" for e in exc.errors())


def _shown(block: Any) -> dict[str, Any]:
    """Field values for display, secrets masked."""
    shown = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        if isinstance(value, SecretStr) or type(value).__name__ == "SecretDict":
            value = "********" if value else None
        elif hasattr(value, "model_fields") and hasattr(value, "get_block_type_slug"):
            value = f"<{value.get_block_type_slug()} block>"
        shown[name] = value
    return shown


# --- help for one kind -------------------------------------------------------------------


def _type_text(annotation: Any) -> str:
    blocks = _is_block(annotation)
    if blocks:
        return "NAME of a saved " + " or ".join(b.get_block_type_slug() for b in blocks) + " block"
    if _is_secret(annotation):
        return "SECRET"
    if _is_bool(annotation):
        return "flag"
    if _needs_json(annotation):
        return "JSON"
    names = [getattr(a, "__name__", str(a)) for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    return {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}.get(names[0], names[0].upper()) if names else "TEXT"


def _short_name(field: str, cls: type) -> str | None:
    """``access-key-id`` for aws-credentials' ``aws_access_key_id``: the field without the vendor word, when it has it."""
    vendor = _vendor(cls)
    return field[len(vendor) + 1 :].replace("_", "-") if field.startswith(vendor + "_") else None


def kind_help(slug: str, cls: type, available: dict[str, Any]) -> None:
    """``ferry blocks create KIND --help``: the kind's fields with their descriptions, read from the block class."""
    from blocks.kinds import used_by

    out.print(f"[bold]Usage:[/bold] ferry blocks create {slug} NAME [--FIELD VALUE ...] [--overwrite]\n", highlight=False)
    description = " ".join((cls.get_description() or cls.__name__).split())
    out.print(f"{cls.__name__} ({slug}): {description}\n", highlight=False, markup=False)
    out.print("[bold]Fields:[/bold]")
    for name, field in cls.model_fields.items():
        options = ["--" + name.replace("_", "-")]
        if short := _short_name(name, cls):
            options.append("--" + short)
        if _is_bool(field.annotation):
            options.append(f"--no-{name.replace('_', '-')}")
        text = " ".join((field.description or field.title or "").split())
        if field.is_required():
            text = "(required) " + text
        elif field.default not in (None, "", PydanticUndefined) and not _is_secret(field.annotation):
            text += f" (default: {field.default})"
        if _is_secret(field.annotation):
            text += f" Secret: --{name.replace('_', '-')}-file PATH, --{name.replace('_', '-')}-env VAR, - (stdin), or the bare option to be asked."
        if _is_block(field.annotation):
            text += f" Or inline: --{name.replace('_', '-')}.FIELD VALUE."
        out.print(f"  {', '.join(options)}  {_type_text(field.annotation)}", markup=False, highlight=False)
        out.print(f"      {text}", markup=False, highlight=False)
    out.print("\nAny field also takes --FIELD-file PATH or --FIELD-env VAR.", highlight=False)
    users = used_by(slug, available)
    if users:
        uses = "; ".join(f"ferry blocks create {kind} ... --{fields_[0].replace('_', '-')} NAME" for kind, fields_ in users.items())
        out.print(f"Use a saved {slug} block in: {uses}", highlight=False)


def _saved_hint(slug: str, name: str, available: dict[str, Any]) -> str:
    """How to use a block just saved: as a destination, a notifier, or in the blocks whose fields take it."""
    from blocks.kinds import NOTIFIERS, used_by
    from blocks.registry import DESTINATIONS

    hints = []
    if slug in DESTINATIONS:
        hints.append(f"ferry export ... --dest {slug}/{name}")
    if slug == "webhook-endpoint":
        hints.append(f"ferry export ... --notify-webhook {name}")
    if slug in NOTIFIERS:
        hints.append(f"ferry export ... --notify-email ADDRESS --notify-smtp {slug}/{name}")
    for kind, fields_ in used_by(slug, available).items():
        hints.append(f"ferry blocks create {kind} NAME ... --{fields_[0].replace('_', '-')} {name}")
    return f"Refer to it as [bold]{slug}/{name}[/bold]" + (f" (e.g. {'; '.join(hints)})." if hints else ".")


# --- commands -------------------------------------------------------------------------


@blocks_app.command(
    "create",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    no_args_is_help=True,
)
def create(
    ctx: typer.Context,
    kind: Annotated[
        Optional[str],
        typer.Argument(
            metavar="KIND",
            help="Block kind: sftp, ftp, webhook, smtp, s3, aws-credentials, minio-credentials, azure, gcs, local, ... "
            "or any block type slug; `ferry blocks create KIND --help` lists its fields.",
        ),
    ] = None,
    name: Annotated[
        Optional[str], typer.Argument(metavar="NAME", help="Block name (lowercase letters, digits, dashes); refer to it as KIND/NAME.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing block of that name.")] = False,
    show_help: Annotated[bool, typer.Option("--help", "-h", help="Show this message (with KIND: the kind's fields) and exit.")] = False,
) -> None:
    """Create (save) a block from --FIELD VALUE options, without writing Python.

    Example: ferry blocks create sftp partner --host sftp.example.com --username ferry
    --private-key-file ~/.ssh/id_ed25519 --host-key "$(ssh-keyscan -t ed25519 sftp.example.com)" --folder exports

    S3: ferry blocks create aws-credentials prod --access-key-id AKIA... --secret-access-key-file key.txt --region-name eu-west-1,
    then ferry blocks create s3 exports --bucket-name acme-exports --credentials prod.
    Secrets come from --FIELD-file PATH, --FIELD-env VAR, --FIELD - (stdin) or a hidden prompt (the bare --FIELD); they are never echoed.
    """
    import re

    if show_help or kind is None:
        if kind is None:
            ctx.get_help()
            out.print(f"\nKinds: {', '.join(sorted(kinds()))}", highlight=False)
            raise typer.Exit(0 if show_help else 2)
        available = kinds()
        slug = resolve_kind(kind, available)
        kind_help(slug, available[slug], available)
        raise typer.Exit(0)
    available = kinds()
    slug = resolve_kind(kind, available)
    cls = available[slug]
    if name is None:
        fail(f"give the block a NAME: ferry blocks create {slug} NAME --FIELD VALUE ... (ferry blocks create {slug} --help lists them).")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        fail(f"block name {name!r}: use lowercase letters, digits and dashes.")
    options = parse_options(list(ctx.args))
    if kind.lower() == "ftps":
        options.setdefault("tls", True)
    try:
        block = cls(**build_values(cls, options))
    except ValidationError as exc:
        fail(f"the {slug} block is not valid:\n{_problems(exc)}")
    try:
        block.save(name, overwrite=overwrite)
    except ValueError as exc:
        if "already in use" in str(exc) or "already exists" in str(exc):
            fail(f"a {slug} block named {name!r} exists already; add --overwrite to replace it.")
        raise
    out.print(
        f"Saved {slug} block [bold]{name}[/bold]: " + ", ".join(f"{k}={v!r}" for k, v in _shown(block).items() if v not in (None, "", {}))
    )
    out.print(_saved_hint(slug, name, available))


@blocks_app.command("list")
def list_blocks(
    kind: Annotated[Optional[str], typer.Argument(help="Only this kind.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List saved blocks of every kind Ferry uses (secrets masked)."""
    from prefect.client.orchestration import get_client

    available = kinds()
    slugs = [resolve_kind(kind, available)] if kind else sorted(available)
    rows: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        for slug in slugs:
            try:
                documents = client.read_block_documents_by_type(slug, include_secrets=False)
            except Exception:  # noqa: BLE001 - a type never registered has no documents
                continue
            for doc in documents:
                if doc.name and not doc.is_anonymous:
                    rows.append(
                        {
                            "reference": f"{slug}/{doc.name}",
                            "kind": slug,
                            "name": doc.name,
                            "fields": {k: v for k, v in (doc.data or {}).items() if not isinstance(v, dict)},
                        }
                    )
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table("reference", "fields")
    for row in rows:
        table.add_row(row["reference"], ", ".join(f"{k}={v}" for k, v in row["fields"].items() if v not in (None, "")))
    out.print(table if rows else "No blocks saved yet: ferry blocks create KIND NAME --field value ...")


@blocks_app.command("delete")
def delete_block(
    kind: Annotated[str, typer.Argument(help="Block kind.")],
    name: Annotated[str, typer.Argument(help="Block name.")],
) -> None:
    """Delete a saved block."""
    import asyncio

    available = kinds()
    slug = resolve_kind(kind, available)
    try:
        asyncio.run(available[slug].adelete(name))
    except ValueError:
        fail(f"no {slug} block named {name!r}.", code=1)
    out.print(f"Deleted {slug}/{name}.")


@blocks_app.command("register")
def register() -> None:
    """Register Ferry's block types (and the collection blocks it uses) with the Prefect server.

    Runs `prefect block register -m blocks.kinds`; needed once per server so the
    UI can create these blocks (saving a block from Python or `ferry blocks create` registers its type too).
    """
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect) if prefect.exists() else (shutil.which("prefect") or "prefect"), "block", "register", "-m", "blocks.kinds"]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        fail(f"`{' '.join(command[1:])}` failed (exit code {result.returncode}); see its output above.", code=1)
