"""Stage tasks that run at the same time, joined by pipes (:mod:`ferry.pipe`).

When one stage fails, the pipes stop the others with :class:`~ferry.errors.StageStopped`;
the run's error is then the stage that failed first, not the ones it stopped.
When the flow itself is stopped while it waits (Ctrl-C in the CLI), the pipes
are broken too, so the stages end within a batch instead of running on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture

from ferry.errors import StageStopped
from ferry.pipe import Pipe


def run_together(pipes: Sequence[Pipe], *stages: PrefectFuture) -> list[Any]:
    """Wait for every stage and return their results in order; raise the error of the stage that caused a failure."""
    try:
        outcomes = [_outcome(stage) for stage in stages]
    except BaseException:  # KeyboardInterrupt, SystemExit: the flow is going away, its stages must not run on
        for pipe in pipes:
            pipe.broken_by("the run was stopped")
        for stage in stages:
            stage.wait()
        raise
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise next((e for e in errors if not isinstance(e, StageStopped)), errors[0])
    return outcomes


def _outcome(stage: PrefectFuture) -> Any:
    """The stage's result, or the exception it failed with."""
    try:
        return stage.result()
    except Exception as exc:  # noqa: BLE001 - sorted out by run_together: the cause first, the stages it stopped after
        return exc
