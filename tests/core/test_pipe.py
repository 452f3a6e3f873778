"""Pipes between stages that run at the same time: order, back-pressure, and failures that stop both ends instead of hanging."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from ferry.errors import StageStopped
from ferry.pipe import Pipe, StreamHeader, broken_if_interrupted

SCHEMA = pa.schema([("n", pa.int64())])
HEADER = StreamHeader(SCHEMA, [], 3)
WAIT = 10  # seconds: a hang fails the test instead of the suite


def batch(n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"n": n}], schema=SCHEMA)


def in_thread(target) -> tuple[threading.Thread, dict]:
    """Run ``target`` in a thread; its result or exception lands in the returned dict."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def write(pipe: Pipe, count: int, fail_after: int | None = None) -> int:
    with pipe.writing("writer"):
        pipe.open(HEADER)
        for n in range(count):
            if n == fail_after:
                raise RuntimeError("the store went away")
            pipe.put(batch(n))
    return count


def test_the_reader_gets_the_header_then_every_batch_in_order_while_the_writer_runs():
    pipe = Pipe(capacity=1)
    writer, outcome = in_thread(lambda: write(pipe, 50))

    assert pipe.header() == HEADER
    with pipe.reading("reader") as batches:
        got = [b.column(0)[0].as_py() for b in batches]
    writer.join(WAIT)

    assert got == list(range(50)) and outcome == {"result": 50}


def test_a_full_pipe_holds_the_writer_until_the_reader_takes_a_batch():
    pipe = Pipe(capacity=1)
    pipe.open(HEADER)
    pipe.put(batch(0))
    second_put, outcome = in_thread(lambda: pipe.put(batch(1)))

    second_put.join(0.3)
    assert second_put.is_alive()  # memory stays bounded: the writer waits

    with pipe.reading("reader") as batches:
        assert next(batches).column(0)[0].as_py() == 0
        second_put.join(WAIT)
        assert not second_put.is_alive() and "error" not in outcome
        assert next(batches).column(0)[0].as_py() == 1
        pipe.broken_by("test done")  # the writer never closes this one


def test_a_writer_that_fails_stops_its_reader_with_stage_stopped():
    pipe = Pipe(capacity=1)
    writer, outcome = in_thread(lambda: write(pipe, 10, fail_after=3))

    with pytest.raises(StageStopped, match="writer failed"), pipe.reading("reader") as batches:
        for _ in batches:
            pass
    writer.join(WAIT)
    assert isinstance(outcome["error"], RuntimeError)  # the writer keeps its own error: that is the run's


def test_a_writer_that_fails_before_its_header_stops_a_reader_waiting_for_it():
    pipe = Pipe()
    reader, outcome = in_thread(pipe.header)

    with pytest.raises(RuntimeError), pipe.writing("extract"):
        raise RuntimeError("unknown workspace")
    reader.join(WAIT)

    assert isinstance(outcome["error"], StageStopped) and "extract failed" in str(outcome["error"])


def test_a_reader_that_fails_stops_a_writer_blocked_on_a_full_pipe():
    pipe = Pipe(capacity=1)
    writer, outcome = in_thread(lambda: write(pipe, 1000))

    with pytest.raises(OSError), pipe.reading("serialize") as batches:
        next(batches)
        raise OSError("disk full")
    writer.join(WAIT)

    assert not writer.is_alive()
    assert isinstance(outcome["error"], StageStopped) and "serialize stopped" in str(outcome["error"])


def test_an_interrupt_before_every_stage_is_running_still_stops_the_ones_that_are():
    """Ctrl-C while the flow is still submitting its later stages: nobody reads the first one's pipe yet."""
    pipe = Pipe()
    thread, outcome = in_thread(lambda: write(pipe, 10**9))
    with pytest.raises(KeyboardInterrupt), broken_if_interrupted([pipe]):
        raise KeyboardInterrupt  # as it would arrive between two submissions
    thread.join(WAIT)
    assert not thread.is_alive() and isinstance(outcome["error"], StageStopped)


def test_an_ordinary_error_leaves_the_pipes_to_the_stages():
    """A stage's own failure is run_together's to sort out (it names the first cause); the guard lets it through."""
    pipe = Pipe(capacity=None)
    with pytest.raises(ValueError), broken_if_interrupted([pipe]):
        raise ValueError("a stage failed")
    pipe.open(HEADER)
    pipe.put(batch(1))  # not broken
