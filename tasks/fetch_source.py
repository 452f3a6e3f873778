"""Fetch source: bring a remote import source (URL or block URI) into the run's spool folder.

A task of its own so that only transient failures (timeouts, resets, 5xx) are
retried, with backoff, as the error type says; refusals (SSRF guard, size cap,
authentication, missing file) fail the run at once.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from blocks.sources import resolve_source
from tasks.deliver import _transient_only


@task(name="fetch-source", cache_policy=NONE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient_only)
def fetch_source(source: str, spool_dir: Path) -> Path:
    return resolve_source(source, spool_dir, allow_local=False)
