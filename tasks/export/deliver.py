"""Deliver: publish the serialized file at its destination under its rendered name."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from blocks.destination import Delivery, Destination, clean_key
from ferry.params import ExportRequest
from ferry.progress import Progress
from tasks.retry import retry_transient

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_value(value: str) -> str:
    """A placeholder value cannot add folders or climb out: separators and dots are neutralised."""
    return _UNSAFE.sub("-", value).strip(".-") or "unnamed"


def render_filename(request: ExportRequest, run_id: str, when: datetime) -> str:
    """The file's key: the template with placeholders filled in and the format's extension ensured."""
    values = {
        "date": when.strftime("%Y-%m-%d"),
        "resource": request.resource_def.slug,
        "workspace": _safe_value(request.workspace),
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
def deliver(file: Path, destination: Destination, key: str) -> Delivery:
    progress = Progress("deliver", None, key="export-progress")  # no rows to count: a spinner with the time it takes
    with open(file, "rb") as source:
        delivered = destination.deliver(source, key)
    progress.finish()
    return delivered
