"""When a task that talks to the outside world is tried again: only for transient errors.

Prefect calls ``retry_condition_fn`` with the failed state; the error's type
decides (:func:`ferry.errors.is_transient`): a timeout, reset, 5xx or 429 is
retried with backoff, a refusal (authentication, permissions, a missing file,
the SSRF guard) or a bug fails the run at once.
"""

from __future__ import annotations

from ferry.errors import is_transient


def retry_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failed state's own error, classified below
        return is_transient(exc)
    return False
