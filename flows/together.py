"""Stage tasks that run at the same time, joined by pipes (:mod:`ferry.pipe`).

When one stage fails, the pipes stop the others with :class:`~ferry.errors.StageStopped`;
the run's error is then the stage that failed first, not the ones it stopped.
"""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture

from ferry.errors import StageStopped


def run_together(*stages: PrefectFuture) -> list[Any]:
    """Wait for every stage and return their results in order; raise the error of the stage that caused a failure."""
    results: list[Any] = []
    errors: list[BaseException] = []
    for stage in stages:
        try:
            results.append(stage.result())
        except Exception as exc:  # noqa: BLE001 - sorted out below: the cause first, the stages it stopped after
            errors.append(exc)
    if errors:
        raise next((e for e in errors if not isinstance(e, StageStopped)), errors[0])
    return results
