"""The terminal's live view: every export stage reports, log lines go above the bars, stages without rows spin."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console
from rich.progress import Progress as RichProgress

from cli.progress import LiveProgress, _Count
from ferry import progress


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=140), screen


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_every_export_stage_reports_its_rows_and_delivery_has_no_row_count(store, tmp_path):
    from deployments.service import run_export_here
    from ferry.params import parse_request

    seen: dict[str, tuple[int, int | None]] = {}
    listener = lambda stage, done, total: seen.__setitem__(stage, (done, total))  # noqa: E731 - the last report per stage
    progress.add_listener(listener)
    try:
        record = run_export_here(parse_request({"workspace": "acme", "resource": "contacts", "destination": str(tmp_path)}))
    finally:
        progress.remove_listener(listener)
    rows = record.record_count
    assert record.status == "success" and rows > 0
    assert {stage: seen[stage] for stage in ("extract", "validate", "transform", "serialize")} == {
        stage: (rows, rows) for stage in ("extract", "validate", "transform", "serialize")
    }
    assert seen["deliver"] == (0, 0)  # counted no rows: its line is a spinner with the time, finished


def test_prefect_log_lines_print_through_the_live_view_while_it_is_open():
    from prefect.logging.handlers import PrefectConsoleHandler

    own_stream = io.StringIO()
    handler = PrefectConsoleHandler(stream=own_stream)
    logger = logging.getLogger("prefect.ferry-live-view-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    console, screen = terminal()
    try:
        with LiveProgress(console) as live:
            live("load", 500, 1_000)
            logger.info("a line logged mid-run")
        assert "a line logged mid-run" in screen.getvalue() and own_stream.getvalue() == ""
        logger.info("after the view closed")
        assert "after the view closed" in own_stream.getvalue()  # the handler's own console is back
    finally:
        logger.removeHandler(handler)


def test_a_stage_without_a_total_counts_rows_and_a_followed_run_shows_percent():
    view = RichProgress()
    rows = view.add_task("read", total=None)
    view.update(rows, completed=12_345)
    followed = view.add_task("load", total=100, percent=True)
    view.update(followed, completed=37)
    shown = {task.description: _Count().render(task).plain for task in view.tasks}
    assert shown == {"read": "12,345 rows", "load": "37%"}
