"""The terminal's live view of a run: one line per stage with its rows, rate and time, and log lines above it.

A stage with a row count gets a bar, ``done/total`` and rows per second; one
without (a delivery) a spinner and its elapsed time, never a bar stuck at 100%.
While the view is open, Prefect's console log lines are printed through it, so
they scroll above the bars instead of being glued onto them. The same view
follows a run that executes elsewhere, from its progress artifacts (percent per
stage).
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ferry import progress as stage_progress


class _Count(ProgressColumn):
    """``1,234/10,000 rows`` (or ``37%`` when following a run elsewhere, which reports percent only)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("percent"):
            return Text(f"{task.completed:.0f}%")
        if task.total is None:
            return Text(f"{task.completed:,.0f} rows")
        return Text(f"{task.completed:,.0f}/{task.total:,.0f} rows")


class _Rate(ProgressColumn):
    """Rows per second, while the stage has counted rows."""

    def render(self, task: Task) -> Text:
        if task.fields.get("percent") or not task.speed:
            return Text("")
        return Text(f"{task.speed:,.0f} rows/s", style="progress.data.speed")


class LiveProgress:
    """A context manager: the live view on ``console`` (stderr), drawn only when ``enabled``."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = console
        self._view = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            _Count(),
            _Rate(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._stages: dict[str, object] = {}
        self._swapped: list[tuple[logging.Handler, Console]] = []

    # in this process: ferry.progress listeners report rows
    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self._show(stage, done, total, percent=False)

    # elsewhere: the run's progress artifacts report percent
    def percent(self, stage: str, value: float) -> None:
        self._show(stage, value, 100, percent=True)

    def _show(self, stage: str, done: float, total: float | None, percent: bool) -> None:
        if not self.enabled:
            return
        if not self._stages:
            self._view.start()
        if stage not in self._stages:
            self._stages[stage] = self._view.add_task(stage, total=total, percent=percent)
        self._view.update(self._stages[stage], completed=done, total=total)

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            stage_progress.add_listener(self)
            self._route_logs()
        return self

    def __exit__(self, *exc) -> None:
        stage_progress.remove_listener(self)
        if self._stages:
            self._view.stop()
        for handler, console in self._swapped:
            handler.console = console
        self._swapped.clear()

    def _route_logs(self) -> None:
        """Prefect's console handlers print through the live console while it is open (lines go above the bars)."""
        from prefect.logging.handlers import PrefectConsoleHandler

        loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, PrefectConsoleHandler) and all(handler is not h for h, _ in self._swapped):
                    self._swapped.append((handler, handler.console))
                    handler.console = self.console
