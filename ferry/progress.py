"""Progress of a running stage: a Prefect progress artifact plus local listeners.

The artifact is what the run history shows (and how the CLI follows a run
that executes elsewhere); listeners are how the CLI draws a progress bar for a
flow running in its own process (``cli/progress.py``). Artifact updates are
throttled so a 10M-row export does not spend its time talking to the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from uuid import UUID

Listener = Callable[[str, int, int | None], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class Progress:
    """Counts rows through one stage; ``total`` may be unknown (None)."""

    def __init__(self, stage: str, total: int | None, key: str | None = None, min_interval: float = 1.0) -> None:
        self.stage = stage
        self.total = total
        self.done = 0
        self._min_interval = min_interval
        self._last = 0.0
        self._artifact: UUID | None = None
        if _in_run():
            from prefect.artifacts import create_progress_artifact

            self._artifact = create_progress_artifact(0.0, key=key, description=f"{stage}: rows processed")
        self._notify()

    @property
    def percent(self) -> float:
        if not self.total:
            return 100.0 if self.total == 0 else 0.0
        return min(100.0, 100.0 * self.done / self.total)

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self._last >= self._min_interval:
            self._last = now
            self._push()
        self._notify()

    def finish(self) -> None:
        if self.total is None or self.done > self.total:
            self.total = self.done
        self._push()
        self._notify()

    def _push(self) -> None:
        if self._artifact is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact, self.percent)

    def _notify(self) -> None:
        for listener in list(_listeners):
            listener(self.stage, self.done, self.total)


def counted(batches: Iterable, progress: Progress) -> Iterator:
    """Pass record batches through, advancing ``progress`` by each one's rows."""
    for batch in batches:
        yield batch
        progress.advance(batch.num_rows)
