"""Deliver: publish the serialized file at its destination under its rendered name."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from blocks.destination import Delivery, Destination, clean_key
from ferry.params import ExportRequest
from ferry.progress import Progress
from ferry.workspaces import SLUG_PATTERN
from tasks.retry import retry_transient

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_value(value: str) -> str:
    """A placeholder value cannot add folders or climb out: separators and dots are neutralised."""
    return _UNSAFE.sub("-", value).strip(".-") or "unnamed"


def _workspace_value(workspace: str) -> str:
    """The workspace as a file-name part, distinct for distinct workspaces.

    Slugs (the rule for new workspaces) are used as they are. Older names that
    are not slugs (``acme corp``, ``../x``) would sanitise to another
    workspace's name (``acme-corp``, ``x``) and overwrite its files, so they
    get a short hash of the real name.
    """
    safe = _safe_value(workspace)
    if safe == workspace and re.fullmatch(SLUG_PATTERN, workspace):
        return safe
    return f"{safe}-{hashlib.sha256(workspace.encode()).hexdigest()[:8]}"


def render_filename(request: ExportRequest, run_id: str, when: datetime) -> str:
    """The file's key: the template with placeholders filled in and the format's extension ensured."""
    values = {
        "date": when.strftime("%Y-%m-%d"),
        "resource": request.resource_def.slug,
        "workspace": _workspace_value(request.workspace),
        "run_id": _safe_value(run_id),
        "format": request.format,
    }
    name = request.filename.format(**values)
    if not name.endswith("." + request.format) and not name.endswith("." + request.extension()):
        name += "." + request.format
    if request.gzip and not name.endswith(".gz"):
        name += ".gz"
    return str(clean_key(name))


@task(
    name="deliver", cache_policy=NONE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_transient
)
def deliver(file: Path, destination: Destination, key: str, overwrite: bool = False) -> Delivery:
    """Publish ``file`` as ``key``; a file of that name already there is refused unless ``overwrite``."""
    progress = Progress("deliver", None, key="export-progress")  # no rows to count: a spinner with the time it takes
    with open(file, "rb") as source:
        # Every destination takes the flag: a webhook's POST replaces nothing, its large-file handoff refuses a taken name.
        delivered = destination.deliver(source, key, overwrite=overwrite)
    progress.finish()
    return delivered
