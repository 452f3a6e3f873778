"""Cordial's contactexports in the service layer: its ``destination`` object as Prefect blocks, its lists by key or id.

The adapter (api/compat/cordial.py) validates the body's types; this module
knows Cordial's destination rules and what the server holds for them:

* **Inline credentials** (``ftp``, ``sftp``, ``s3``) become blocks the way the
  native ``/v1/export-jobs`` does it (:func:`deployments.job_destinations.plan_destination`:
  the same block classes, secret fields, validation), saved under the job's own
  name, ``cordial-<name>-<8 hex>``; the run's parameters hold only the reference.
* **SFTP host keys** are always pinned (blocks/sftp.py refuses unknown servers):
  the pin is ``destination.hostKey`` when sent, else the lines of the operator's
  known_hosts file (``FERRY_SSH_KNOWN_HOSTS``, default ``$FERRY_DATA_DIR/known_hosts``)
  for ``[server]:port``, plus the saved key's own pin when it names the same server.
* **``savedKey``** names an ``sftp`` block an operator saved for the workspace,
  ``cordial-key-<workspace>-<savedKey>`` (lower case): its private key (and
  passphrase) log in; the job's block holds a copy.
* **``gcs``** carries no credentials (Cordial's "GCS integration"): the workspace's
  integration is a ``gcs-destination`` or ``gcs-bucket`` block named
  ``cordial-gcs-<workspace>``; the job gets a ``gcs-destination`` block with its
  credentials and the body's bucket and folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from deployments.job_destinations import Plan, plan_destination
from ferry.errors import Problem

#: Destination fields (Cordial's names, plus Ferry's hostKey, tls, aws_endpoint_url) that each type takes.
APPLIES = {
    "aws": (),
    "ftp": ("server", "port", "username", "password", "path", "tls"),
    "sftp": ("server", "port", "username", "password", "savedKey", "hostKey", "path"),
    "s3": ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region", "aws_endpoint_url", "path"),
    "gcs": ("gcs_bucket", "path"),
}
REQUIRED = {
    "ftp": ("server", "port", "username", "password"),
    "sftp": ("server", "port", "username"),
    "s3": ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region"),
    "gcs": ("gcs_bucket",),
}
#: plan_destination's config key -> Cordial's name, per type.
_CONFIG = {
    "ftp": {"host": "server", "port": "port", "username": "username", "password": "password", "folder": "path", "tls": "tls"},
    "sftp": {
        "host": "server",
        "port": "port",
        "username": "username",
        "password": "password",
        "private_key": "savedKey",
        "private_key_passphrase": "savedKey",
        "host_key": "hostKey",
        "folder": "path",
    },
    "s3": {
        "bucket": "aws_bucket",
        "path": "path",
        "region": "aws_region",
        "aws_access_key_id": "aws_access_key_id",
        "aws_secret_access_key": "aws_secret_access_key",
        "endpoint_url": "aws_endpoint_url",
    },
}
#: Block type slug of a job's destination -> Cordial's destination type.
TYPES = {"sftp": "sftp", "ftp": "ftp", "s3-bucket": "s3", "gcs-destination": "gcs"}
_FILE = re.compile(r"(?P<stem>.+)\.(?P<ext>csv|json)(?P<gz>\.gz)?", re.IGNORECASE)


@dataclass
class CordialDestination:
    """Where a job's file goes: the block reference (None: managed storage) and blocks to save, and a file name from an S3 path."""

    plan: Plan
    filename: str | None = None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"


def job_block_name(export_name: str | None, unique: str) -> str:
    """``cordial-<name>-<unique>``: Prefect block names are lower-case letters, digits and dashes."""
    return f"cordial-{slug(export_name or 'export')[:60]}-{unique}"


def destination_type(reference: str | None) -> str:
    """Cordial's destination type of a run's ``destination`` parameter (``aws`` for managed storage; else Ferry's kind)."""
    if reference is None:
        return "aws"
    match = re.fullmatch(r"([a-z0-9-]+)/[^/]+", reference)
    return TYPES.get(match.group(1), match.group(1)) if match else "local"


def plan_cordial_destination(
    workspace: str, settings: dict[str, Any], export_format: str, block: str
) -> tuple[CordialDestination, list[Problem]]:
    """Cordial's destination (its names, unset fields left out) as blocks named ``block``; every problem at once."""
    dtype = settings.get("type", "aws")
    given = {k: v for k, v in settings.items() if k != "type" and v is not None}
    problems = [Problem(f"destination.{k}", None, f"does not apply to destination type {dtype}") for k in given if k not in APPLIES[dtype]]
    problems += [Problem(f"destination.{k}", None, f"is required when type is {dtype}") for k in REQUIRED.get(dtype, ()) if k not in given]
    if dtype == "sftp" and "password" not in given and "savedKey" not in given:
        problems.append(Problem("destination.password", None, "is required when type is sftp, unless savedKey names a saved key"))
    if dtype == "aws":
        return CordialDestination(Plan(None)), problems
    folder, filename, more = _paths(dtype, given.get("path", ""), export_format)
    problems += more
    if dtype == "gcs":
        plan, more = _gcs(workspace, given.get("gcs_bucket"), folder, block)
        return CordialDestination(plan, filename), problems + more
    config = {key: given[name] for key, name in _CONFIG[dtype].items() if name in given and name not in ("savedKey", "hostKey", "path")}
    config["folder" if dtype != "s3" else "path"] = folder
    if dtype == "ftp":
        config["tls"] = bool(given.get("tls", False))
    if dtype == "sftp":
        problems += _sftp_login(workspace, given, config)
    if problems:
        return CordialDestination(Plan(None)), problems
    plan, more = plan_destination(block, dtype, config, None)
    problems += [_cordial_problem(p, _CONFIG[dtype]) for p in more]
    kind_slug = (plan.reference or "").partition("/")[0]
    return CordialDestination(Plan(f"{kind_slug}/{block}", plan.blocks), filename), problems


def _cordial_problem(problem: Problem, names: dict[str, str]) -> Problem:
    raw = problem.field.removeprefix("destinationConfig").lstrip(".")
    field = names.get(raw.partition(".")[0], raw)
    return Problem(f"destination.{field}".rstrip("."), None, problem.reason)


def _paths(dtype: str, path: str, export_format: str) -> tuple[str, str | None, list[Problem]]:
    """(folder, file name or None, problems): Cordial's path rules per destination type.

    S3: a key prefix, or folder and file when its last part is ``NAME.csv`` / ``NAME.json``
    (``.gz`` allowed); slashes at either end are dropped, so ``/folder/`` is ``folder``
    (Cordial's advice against a trailing slash, made harmless). GCS: a folder, slashes
    at either end dropped. FTP, SFTP: a folder, absolute when it starts with ``/``.
    """
    if any(part in (".", "..") for part in PurePosixPath(path).parts):
        return "", None, [Problem("destination.path", None, "may not contain '.' or '..' segments")]
    if dtype == "s3":
        inner = path.strip("/")
        head, _, last = inner.rpartition("/")
        match = _FILE.fullmatch(last) if last else None
        if match is None:
            return inner, None, []
        if match.group("ext").lower() != export_format:
            return head, None, [Problem("destination.path", None, f"names a .{match.group('ext')} file, but exportType is {export_format}")]
        return head, f"{match.group('stem')}.{export_format}", []
    if dtype == "gcs":
        return path.strip("/"), None, []
    return (path.rstrip("/") or "/") if path.startswith("/") else path.strip("/"), None, []


def _sftp_login(workspace: str, given: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """The saved key's private key and the host key pin into ``config``; what is missing as problems."""
    from blocks.sftp import SftpServer, known_hosts_lines

    problems: list[Problem] = []
    server, port = given.get("server"), given.get("port")
    pins: list[str] = []
    if saved := given.get("savedKey"):
        name = f"cordial-key-{slug(workspace)}-{slug(saved)}"
        try:
            key = SftpServer.load(name)
        except Exception:  # noqa: BLE001 - not found, or not loadable: either way no key of that name
            key = None
        if key is None or key.private_key is None:
            reason = f"no saved key of this name for the workspace (an operator saves it as the sftp block {name!r} with a private key)"
            problems.append(Problem("destination.savedKey", saved, reason))
        else:
            config["private_key"] = key.private_key.get_secret_value()
            if key.private_key_passphrase is not None:
                config["private_key_passphrase"] = key.private_key_passphrase.get_secret_value()
            if server and port:
                pins += known_hosts_lines(key.host_key, server, port)
    if not (server and port):
        return problems
    if host_key := given.get("hostKey"):
        config["host_key"] = host_key
        return problems
    pins += known_hosts_lines(_known_hosts(), server, port)
    if pins:
        config["host_key"] = "\n".join(dict.fromkeys(pins))
    else:
        shown = server if port == 22 else f"[{server}]:{port}"
        reason = (
            f"no pinned host key for {shown}: Ferry connects only to SFTP servers whose key it knows. The operator adds it "
            f"(`ssh-keyscan -p {port} {server} >> known_hosts`, FERRY_SSH_KNOWN_HOSTS), or send destination.hostKey"
        )
        problems.append(Problem("destination.server", server, reason))
    return problems


def _known_hosts() -> str:
    from ferry.settings import get_settings

    settings = get_settings()
    path = settings.ssh_known_hosts or settings.data_dir / "known_hosts"
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return ""


def _gcs(workspace: str, bucket: str | None, folder: str, block: str) -> tuple[Plan, list[Problem]]:
    """A gcs-destination block for ``bucket``/``folder`` with the credentials of the workspace's GCS integration."""
    if not bucket:
        return Plan(None), []
    from blocks.registry import DESTINATIONS

    name = f"cordial-gcs-{slug(workspace)}"
    integration = None
    for kind in ("gcs-destination", "gcs-bucket"):
        try:
            integration = DESTINATIONS[kind].load(name)
            break
        except Exception:  # noqa: BLE001 - not saved as this kind (or not loadable): try the next
            continue
    if integration is None:
        reason = (
            f"this workspace has no GCS integration: an operator saves a gcs-destination (or gcs-bucket) block "
            f"named {name!r} holding its GCP credentials"
        )
        return Plan(None), [Problem("destination.type", "gcs", reason)]
    from prefect_gcp.cloud_storage import GcsBucket

    from blocks.gcs import GcsDestination

    credentials = integration.bucket.gcp_credentials
    destination = GcsDestination(
        bucket=GcsBucket(bucket=bucket, bucket_folder=folder, gcp_credentials=credentials),
        chunk_size_mib=integration.chunk_size_mib,
        emulator_host=integration.emulator_host,
    )
    return Plan(f"{GcsDestination.get_block_type_slug()}/{block}", [destination]), []


def save_destination(plan: Plan, block: str) -> None:
    """Save the job's blocks (credentials first, so the destination block references them)."""
    for item in plan.blocks:
        item.save(block, overwrite=True)


def discard_destination(plan: Plan, block: str) -> None:
    """Delete the job's blocks again (its run did not start)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for item in plan.blocks:
            try:
                client.delete_block_document(client.read_block_document_by_name(block, item.get_block_type_slug()).id)
            except ObjectNotFound:
                pass


def resolve_lists(workspace: str, wanted: list[int | str] | None) -> tuple[list[str], list[Problem]]:
    """List keys for Cordial's ``lists`` (keys, or ids as numbers); None: every list of the workspace, oldest first."""
    from sqlalchemy import select

    from ferry.store import schema as s
    from ferry.store.engine import get_engine, workspace_id

    with get_engine().connect() as conn:
        ws = workspace_id(conn, workspace)
        rows = conn.execute(select(s.lists.c.id, s.lists.c.key).where(s.lists.c.workspace_id == ws).order_by(s.lists.c.id)).all()
    if wanted is None:
        return [key for _, key in rows], []
    by_id, keys = {row_id: key for row_id, key in rows}, {key for _, key in rows}
    found, problems = [], []
    for i, entry in enumerate(wanted):
        key = by_id.get(entry) if isinstance(entry, int) else entry if entry in keys else None
        if key is None:
            problems.append(
                Problem(f"lists[{i}]", entry, f"no list with this {'id' if isinstance(entry, int) else 'key'} in the workspace")
            )
        else:
            found.append(key)
    return found, problems
