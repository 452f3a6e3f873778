"""Pipes: how record batches travel between stage tasks that run at the same time.

An export's stages run concurrently, each a Prefect task in its own thread:
extract reads the next batch from the store while transform shapes the one
before and serialize compresses the one before that. An import's validate,
transform and load do the same: the database parses one batch's COPY while
the next one is being checked. A pipe hands each batch
on in memory and holds at most ``capacity`` of them, so a fast stage waits for
a slow one and memory stays flat. (Before, the stages ran one after another
through spool files: writing and re-reading them took 1.2 s of a 6.0 s export
of 1M contacts, and the cores took turns instead of working together.)

A pipe starts with a :class:`StreamHeader` (the schema, the output columns, the
row count), as an Arrow stream starts with its schema, so a reader can set up
before the first row arrives.

Failures travel both ways, so no stage waits forever: a writer that fails
breaks the pipe and its reader's next read raises :class:`StageStopped`; a
reader that fails or stops early breaks it too, and the writer's next put
raises :class:`StageStopped`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from ferry.errors import StageStopped

if TYPE_CHECKING:
    from ferry.columns import OutputColumn


@dataclass(frozen=True)
class StreamHeader:
    """What a reader needs before the first batch: the batches' schema, the columns they hold, and how many rows will come.

    ``columns`` are an export's output columns; an import's stream carries none (its plan says what each column is).
    """

    schema: pa.Schema
    columns: list[OutputColumn]
    total: int


class Pipe:
    """A bounded, one-writer one-reader hand-off of record batches between two threads.

    ``capacity=None`` makes it unbounded: a stage can then run to the end with
    nobody reading yet (tests run one stage alone that way).
    """

    def __init__(self, capacity: int | None = 1) -> None:
        self._capacity = capacity
        self._batches: deque[pa.RecordBatch] = deque()
        self._header: StreamHeader | None = None
        self._closed = False
        self._broken: str | None = None
        self._changed = threading.Condition()

    # --- the writing end ---

    @contextlib.contextmanager
    def writing(self, stage: str) -> Iterator[Pipe]:
        """The writing end for ``stage``: closed when the block ends, broken when it raises (before or after :meth:`open`)."""
        try:
            yield self
        except BaseException:
            self.broken_by(f"{stage} failed")
            raise
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def open(self, header: StreamHeader) -> None:
        """Send the stream's header: readers waiting in :meth:`header` go on."""
        with self._changed:
            self._header = header
            self._changed.notify_all()

    def put(self, batch: pa.RecordBatch) -> None:
        """Hand ``batch`` on, waiting while the pipe is full; raises :class:`StageStopped` once the reader is gone."""
        with self._changed:
            self._changed.wait_for(lambda: self._broken is not None or self._capacity is None or len(self._batches) < self._capacity)
            self._raise_if_broken()
            self._batches.append(batch)
            self._changed.notify_all()

    # --- the reading end ---

    def header(self) -> StreamHeader:
        """The stream's header, once the writer has opened the pipe."""
        with self._changed:
            self._changed.wait_for(lambda: self._header is not None or self._broken is not None)
            if self._header is None:
                self._raise_if_broken()
            return self._header

    @contextlib.contextmanager
    def reading(self, stage: str) -> Iterator[Iterator[pa.RecordBatch]]:
        """The batches, in order, until the writer closes the pipe; the pipe breaks if the block ends before that."""
        try:
            yield self._batches_until_closed()
        finally:
            with self._changed:
                finished = self._closed and not self._batches
            if not finished:
                self.broken_by(f"{stage} stopped")

    def _batches_until_closed(self) -> Iterator[pa.RecordBatch]:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._batches or self._closed or self._broken is not None)
                self._raise_if_broken()
                if not self._batches:
                    return
                batch = self._batches.popleft()
                self._changed.notify_all()
            yield batch

    # --- either end ---

    def broken_by(self, why: str) -> None:
        """Break the pipe (the first reason is kept): both ends raise :class:`StageStopped` from now on."""
        with self._changed:
            if self._broken is None:
                self._broken = why
            self._batches.clear()
            self._changed.notify_all()

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise StageStopped(f"Stopped because another stage of the run ended first ({self._broken}).")


# --- stages joined by pipes ---


#: How long the caller sleeps at a time while its stages run: between two sleeps a pending Ctrl-C is raised.
POLL_SECONDS = 0.5


class Stage(Protocol):
    """A running stage: a Prefect task future, or a thread's future (:func:`run_in_threads`)."""

    @property
    def wrapped_future(self) -> Future: ...

    def wait(self, timeout: float | None = None) -> None: ...

    def result(self) -> Any: ...


@contextlib.contextmanager
def broken_if_interrupted(pipes: Sequence[Pipe]) -> Iterator[None]:
    """Break ``pipes`` when the block is left by an interrupt (Ctrl-C, SystemExit), wherever it came.

    Around the stages' submission and :func:`run_together`: a Ctrl-C while the later stages are still being
    submitted would otherwise leave the earlier ones running, with nobody to stop them.
    """
    try:
        yield
    except Exception:
        raise
    except BaseException:
        for pipe in pipes:
            pipe.broken_by("the run was stopped")
        raise


def run_together(pipes: Sequence[Pipe], *stages: Stage) -> list[Any]:
    """Wait for every stage and return their results in order; raise the error of the stage that caused a failure.

    When one stage fails, the pipes stop the others with :class:`StageStopped`: the error raised is the stage that
    failed first, not the ones it stopped. When the caller is stopped while it waits (Ctrl-C in the CLI), the pipes
    are broken too, so the stages end within a batch instead of running on.
    """
    try:
        outcomes = [_outcome(stage) for stage in stages]
    except BaseException:  # KeyboardInterrupt, SystemExit: the run is going away, its stages must not run on
        for pipe in pipes:
            pipe.broken_by("the run was stopped")
        for stage in stages:
            stage.wait()  # only waits: fetching a failed task's error is more of Prefect's machinery while it stops
        raise
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise next((e for e in errors if not isinstance(e, StageStopped)), errors[0])
    return outcomes


def run_in_threads(pipes: Sequence[Pipe], *stages: Callable[[], Any]) -> list[Any]:
    """:func:`run_together` for plain functions, a thread each (``ferry import validate`` and tests: no Prefect)."""
    with ThreadPoolExecutor(len(stages), thread_name_prefix="ferry-stage") as pool:
        return run_together(pipes, *(_InThread(pool.submit(stage)) for stage in stages))


class _InThread:
    """A thread's future as a :class:`Stage`."""

    def __init__(self, future: Future) -> None:
        self.wrapped_future = future

    def wait(self, timeout: float | None = None) -> None:
        wait([self.wrapped_future], timeout)

    def result(self) -> Any:
        return self.wrapped_future.result()


def _outcome(stage: Stage) -> Any:
    """The stage's result, or the exception it failed with.

    Waits in short sleeps: a Ctrl-C is raised in this thread only when it runs Python again, and one sleep on a lock
    until an endless stage ends would be never (a fresh-clone CI run showed an export that had not stopped 30 s on).
    """
    while not stage.wrapped_future.done():
        stage.wait(POLL_SECONDS)
    try:
        return stage.result()
    except Exception as exc:  # noqa: BLE001 - sorted out by run_together: the cause first, the stages it stopped after
        return exc
