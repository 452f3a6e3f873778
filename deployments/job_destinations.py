"""Export jobs' destinations over HTTP: ``destinationType`` + ``destinationConfig`` saved as Prefect blocks named after the job.

E.g. a prefect-aws ``AwsCredentials`` + ``S3Bucket`` pair for ``s3``; the
deployment's parameters hold only the reference (``s3-bucket/job-NAME``).
Responses show every secret as ``"***"``; a PUT that sends ``"***"`` back keeps
the saved secret, and a destination sent back exactly as read stays as it is.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError
from pydantic.alias_generators import to_snake
from pydantic_core import to_jsonable_python

from deployments.job_model import JobView
from ferry.errors import Problem, looks_secret

MASK = "***"
DestinationType = Literal["s3", "azure-blob", "sftp", "webhook", "gcs", "ftp", "managed", "local"]


@dataclass(frozen=True)
class Kind:
    """How a destinationType becomes blocks. Space-separated lists; ``alias=field`` pairs (``field`` may be ``a.b``)."""

    block: str  # "module:Class" of the block the job references as SLUG/job-NAME
    slug: str
    credentials: str = ""  # "module:Class" of a credentials block saved under the same name, held by field `link`
    link: str = ""
    aliases: str = ""  # the seed's names for fields
    required: str = ""  # no ambient credentials: never the server's own profiles, roles or files
    refused: str = ""  # fields naming something on the server (files, profiles, other blocks)
    family: str = ""  # other block types read back as this destinationType

    def classes(self) -> tuple[Any, Any]:
        return _cls(self.block), _cls(self.credentials) if self.credentials else None

    def alias_map(self) -> dict[str, str]:
        return dict(pair.split("=") for pair in self.aliases.split())


KINDS: dict[str, Kind] = {
    "webhook": Kind("blocks.webhook:Webhook", "webhook-endpoint", refused="ca_file large_files"),
    "sftp": Kind("blocks.sftp:SftpServer", "sftp", aliases="path=folder"),
    "ftp": Kind("blocks.ftp:FtpServer", "ftp", aliases="path=folder", refused="ca_file"),
    "s3": Kind(
        "prefect_aws:S3Bucket",
        "s3-bucket",
        "prefect_aws:AwsCredentials",
        "credentials",
        "bucket=bucket_name path=bucket_folder region=region_name endpoint_url=aws_client_parameters.endpoint_url",
        "bucket_name aws_access_key_id aws_secret_access_key",
        "profile_name assume_role_arn assume_role_kwargs aws_client_parameters",
        "s3-destination",
    ),
    "azure-blob": Kind(
        "prefect_azure:AzureBlobStorageContainer",
        "azure-blob-storage-container",
        "prefect_azure:AzureBlobStorageCredentials",
        "credentials",
        "container=container_name path=base_folder",
        "container_name connection_string",
        "account_url client_id tenant_id client_secret",
        "azure-blob-destination",
    ),
    "gcs": Kind(
        "prefect_gcp:GcsBucket",
        "gcs-bucket",
        "prefect_gcp:GcpCredentials",
        "gcp_credentials",
        "path=bucket_folder",
        "bucket service_account_info",
        "service_account_file",
        "gcs-destination",
    ),
}
SUPPORTED = ", ".join([*KINDS, "managed"])


def _cls(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def block_name(job: str) -> str:
    """The name of a job's blocks: ``job-<name>``, lower-cased, plus a short hash when that changed the name."""
    slug = re.sub(r"[^a-z0-9-]", "-", job.lower())
    return f"job-{slug}" if slug == job else f"job-{slug}-{hashlib.sha256(job.encode()).hexdigest()[:8]}"


def _is_secret(cls: Any, name: str) -> bool:
    return looks_secret(name) or "Secret" in repr(cls.model_fields[name].annotation)


def _own(kind: Kind, view: JobView | None) -> tuple[Any, Any] | None:
    """The job's own saved block and its credentials block; None when the job references anything else."""
    if view is None or view.destination != f"{kind.slug}/{block_name(view.name)}":
        return None
    try:
        outer = kind.classes()[0].load(block_name(view.name))
    except Exception:  # noqa: BLE001 - missing, deleted or no longer loadable here: the job is shown by its reference
        return None
    return outer, getattr(outer, kind.link) if kind.link else None


def _settings(kind: Kind, blocks: tuple[Any, Any]) -> dict[str, Any]:
    """Saved blocks as destinationConfig: values other than the fields' defaults, secrets as ``***``."""
    aliases = kind.alias_map()
    shown_as = {target: alias for alias, target in aliases.items()}
    config: dict[str, Any] = {}
    for block in (b for b in blocks if b is not None):
        for name, info in type(block).model_fields.items():
            value = getattr(block, name)
            if name == kind.link or name in kind.refused.split():
                continue
            if info.is_required() or value != info.get_default(call_default_factory=True):
                secret = value is not None and _is_secret(type(block), name)
                config[shown_as.get(name, name)] = MASK if secret else to_jsonable_python(value)
    for alias, target in aliases.items():
        head, dot, rest = target.partition(".")
        if dot and blocks[1] is not None and (value := getattr(getattr(blocks[1], head, None), rest, None)) is not None:
            config[alias] = value
    return config


def describe_destination(view: JobView) -> tuple[str, dict[str, Any]]:
    """(destinationType, destinationConfig) of a job, from the reference in its parameters."""
    if view.destination is None:
        return "managed", {}
    match = re.fullmatch(r"([a-z0-9-]+)/([^/]+)", view.destination)
    if not match:
        return "local", {"path": view.destination}
    for dtype, kind in KINDS.items():
        if (own := _own(kind, view)) is not None:
            return dtype, _settings(kind, own)
        if match.group(1) in (kind.slug, *kind.family.split()):
            return dtype, {"block": view.destination}  # a block saved by someone else (`ferry jobs create --dest`)
    return ("local" if match.group(1) == "local-directory" else match.group(1)), {"block": view.destination}


@dataclass
class Plan:
    """A job's destination reference, and the blocks to save for it (credentials first), validated but not saved."""

    reference: str | None
    blocks: list[Any] = field(default_factory=list)


def plan_destination(name: str, dtype: Any, config: Any, current: JobView | None) -> tuple[Plan, list[Problem]]:
    """The destination of a body: its blocks built and validated; every problem at once."""
    if not isinstance(config, dict):
        return Plan(None), [Problem("destinationConfig", type(config).__name__, "must be an object")]
    if current is not None and (dtype, config) == describe_destination(current):
        return Plan(current.destination), []  # sent back as read: unchanged
    if dtype not in get_args(DestinationType):
        return Plan(None), []  # JobBody names the problem
    if dtype == "managed":
        return Plan(None), [Problem(f"destinationConfig.{k}", MASK, "managed storage takes no settings; send {}") for k in config]
    if dtype == "local" or "block" in config:
        reason = f"a server folder or saved block cannot be chosen over the HTTP API; give the settings of one of {SUPPORTED}"
        return Plan(None), [Problem("destinationType" if dtype == "local" else "destinationConfig.block", dtype, reason)]
    kind = KINDS[dtype]
    try:
        classes = kind.classes()
    except ImportError as exc:
        return Plan(None), [Problem("destinationType", dtype, f"not installed on this server ({exc.name}); use one of {SUPPORTED}")]
    own, aliases, refused = _own(kind, current), kind.alias_map(), kind.refused.split()
    fields = [{f for f in c.model_fields if f != kind.link} if c else set() for c in classes]
    values: tuple[dict, dict] = ({}, {})
    problems: list[Problem] = []
    public: dict[str, str] = {}
    for raw, value in config.items():
        head, dot, rest = (aliases.get(raw) or aliases.get(to_snake(raw)) or to_snake(raw)).partition(".")
        public[head] = raw
        where = next((i for i in (0, 1) if head in fields[i]), None)
        if where is None or (head in refused and not dot):
            accepted = ", ".join(sorted({*aliases, *fields[0], *fields[1]} - set(refused)))
            reason = "names something on the server, not settable over the HTTP API" if where is not None else "not a setting here"
            problems.append(Problem(f"destinationConfig.{raw}", MASK if looks_secret(raw) else value, f"{reason}; settings: {accepted}"))
            continue
        if value == MASK and _is_secret(classes[where], head):  # "***" as read back: keep the saved secret
            value = getattr(own[where], head, None) if own else None
            if value is None:
                problems.append(
                    Problem(f"destinationConfig.{raw}", MASK, "'***' keeps the saved secret, but none is saved; give the value")
                )
                continue
            value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if dot:
            values[where].setdefault(head, {})[rest] = value
        else:
            values[where][head] = value
    missing = [n for n in kind.required.split() if all(v.get(n) in (None, "") for v in values)]
    for needed in missing:
        shown = next((a for a, t in aliases.items() if t == needed), needed)
        problems.append(Problem(f"destinationConfig.{shown}", None, f"required for {dtype}"))
    blocks: list[Any] = []
    for where in (1, 0):
        # A class missing a required credential is not built: some look for ambient credentials when built without.
        if (cls := classes[where]) is None or any(n in fields[where] for n in missing):
            continue
        linked = {kind.link: blocks[0] if blocks else classes[1].model_construct()} if where == 0 and kind.link else {}
        try:
            blocks.append(cls(**values[where], **linked))
        except Exception as exc:  # noqa: BLE001 - a ValidationError, or a block's validator failing on an odd value
            for error in exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": f"not valid ({type(exc).__name__})"}]:
                head = str(error["loc"][0]) if error.get("loc") else ""
                value = MASK if head in cls.model_fields and _is_secret(cls, head) else error.get("input") if head else None
                problems.append(Problem(f"destinationConfig.{public.get(head, head)}".rstrip("."), value, error["msg"]))
    return Plan(f"{kind.slug}/{block_name(name)}", [] if problems else blocks), problems


def delete_blocks(reference: str | None, job: str, keep: str | None = None) -> None:
    """Delete the job's own blocks behind ``reference`` unless it still uses them (``keep``); other blocks are never touched."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    kind = next((k for k in KINDS.values() if reference == f"{k.slug}/{block_name(job)}"), None)
    if kind is None or reference == keep:
        return
    with get_client(sync_client=True) as client:
        for cls in (c for c in kind.classes() if c is not None):
            try:
                client.delete_block_document(client.read_block_document_by_name(block_name(job), cls.get_block_type_slug()).id)
            except ObjectNotFound:
                pass
