"""Fetch: bring a remote import source (URL or block URI) into the run's spool folder.

A task of its own so that only transient failures (timeouts, resets, 5xx) are
retried, with backoff, as the error type says; refusals (SSRF guard, size cap,
authentication, missing file) fail the run at once.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from blocks.sealed_urls import unseal
from blocks.sources import resolve_source, supported_schemes
from ferry.checks import is_remote_source, shown_url
from ferry.errors import ParameterError, Problem
from tasks.retry import retry_transient


def check_source(source: str) -> None:
    """A remote source's scheme must be one a block reads (the download checks the rest); raises ParameterError."""
    if not is_remote_source(source):
        return
    scheme = source.split("://", 1)[0].lower()
    schemes = supported_schemes()
    if scheme not in schemes:
        raise ParameterError([Problem("source", shown_url(source), f"no block reads {scheme}:// sources; use one of {', '.join(schemes)}")])


@task(
    name="fetch-source",
    cache_policy=NONE,
    persist_result=False,
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_transient,
)
def fetch_source(source: str, spool_dir: Path) -> Path:
    return resolve_source(unseal(source), spool_dir, allow_local=False)
