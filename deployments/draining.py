"""The runner ``ferry up`` starts (``python -m deployments.draining CONFIG_JSON``): ``ferry serve``, draining on SIGTERM.

A stop lets the runs in flight finish, up to a bound, instead of cancelling them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from deployments import project
from deployments.serve import FerryServe

DEFAULT_DRAIN_SECONDS = 60.0
#: How long a stopping runner may take after the drain (cancelling what is left) before it is killed.
RUNNER_STOP_GRACE_SECONDS = 45.0


class DrainingServe(FerryServe):
    """:class:`FerryServe`, but a stop lets the runs in flight finish (up to a bound) instead of cancelling them."""

    def in_flight(self) -> int:
        """Runs taken and not ended yet: being submitted (Pending) or with a process."""
        poller = getattr(self.runner, "_scheduled_run_poller", None)
        submitting = set(getattr(poller, "_submitting_flow_run_ids", None) or ())
        return len(submitting | set(getattr(self.runner, "_flow_run_process_map", None) or {}))

    async def serve(self, ready_file: Path | None, drain_seconds: float, stop_early: threading.Event) -> None:
        logger = self.runner._logger
        for name in await self.discover():
            logger.info("Serving %s", name)
        runner_task = asyncio.ensure_future(self.runner.start())
        loop = asyncio.get_running_loop()
        stop, hurry = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            (hurry if stop.is_set() else stop).set()

        await asyncio.sleep(0)  # let Runner.start install its own SIGTERM handler, then replace it
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        if stop_early.is_set():
            stop.set()
        announced = False
        next_sync = loop.time() + self.sync_seconds
        try:
            while not stop.is_set() and not runner_task.done():
                timeout = max(next_sync - loop.time(), 0) if announced else 0.25
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=timeout)
                if stop.is_set():
                    break
                if not announced and self.runner.last_polled is not None:
                    announced = True
                    logger.info("Polling for runs of %d deployment(s)", len(self.served))
                    if ready_file is not None:
                        _write_atomically(ready_file, json.dumps({"pid": os.getpid(), "served": sorted(self.served.values())}))
                if loop.time() >= next_sync:
                    next_sync = loop.time() + self.sync_seconds
                    try:
                        for name in await self.discover():
                            logger.info("Serving %s", name)
                    except Exception as exc:  # noqa: BLE001 - a blip of the API must not stop the runs in progress
                        logger.warning("Could not list Ferry's deployments (%s); retrying in %ss", exc, self.sync_seconds)
        finally:
            await self.drain(runner_task, drain_seconds, hurry)
        if runner_task.done() and not runner_task.cancelled() and runner_task.exception():
            raise runner_task.exception()

    async def drain(self, runner_task: asyncio.Future, drain_seconds: float, hurry: asyncio.Event) -> None:
        """Stop polling; wait up to ``drain_seconds`` (or until ``hurry``) for the runs in flight; cancel what is left."""
        logger = self.runner._logger
        if runner_task.done():
            return
        poller = getattr(self.runner, "_scheduled_run_poller", None)
        if not self.runner.started or poller is None:  # not polling yet: nothing can be in flight
            runner_task.cancel()
            with contextlib.suppress(BaseException):
                await runner_task
            return
        # The poll loop keeps ticking but takes nothing (Prefect's own stop flag); the runner stays up meanwhile,
        # so runs in flight keep their heartbeats, cancellations from the UI still reach them, and states get written.
        poller.stopping = True
        logger.info("Stopping: taking no new runs; %d run(s) in progress get up to %gs to finish.", self.in_flight(), drain_seconds)
        deadline = asyncio.get_running_loop().time() + drain_seconds
        while self.in_flight() and not hurry.is_set() and not runner_task.done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hurry.wait(), timeout=min(remaining, 0.5))
        if self.in_flight():
            logger.warning("Cancelling %d run(s) still in progress (their history says so).", self.in_flight())
        try:  # cancels what is left (marked Cancelled), then ends the runner's loops
            await asyncio.wait_for(self.runner.astop(), timeout=RUNNER_STOP_GRACE_SECONDS / 2)
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            logger.warning("Runner did not stop cleanly: %s", exc)
        try:
            await asyncio.wait_for(asyncio.shield(runner_task), timeout=RUNNER_STOP_GRACE_SECONDS / 3)
        except (TimeoutError, Exception):  # noqa: BLE001 - shutting down
            runner_task.cancel()
            with contextlib.suppress(BaseException):
                await runner_task
        logger.info("Runner stopped; schedules stay as they are.")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_runner(
    ready_file: Path | None = None,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    limit: int | None = 4,
    poll_seconds: float | None = None,
    sync_seconds: float = 10.0,
) -> None:
    """The runner ``ferry up`` starts: apply prefect.yaml's deployments, serve them all, drain on SIGTERM."""
    from prefect import get_client

    from deployments.serve import apply_project_deployments

    stop_early = threading.Event()  # SIGTERM while deployments are being applied: do not start serving
    previous = {signum: signal.signal(signum, lambda *_: stop_early.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    project.prepare_run_environment()
    with get_client(sync_client=True) as client:
        apply_project_deployments(client)
    if stop_early.is_set():
        return
    try:
        serve = DrainingServe(limit=limit, sync_seconds=sync_seconds, poll_seconds=poll_seconds, name=f"ferry-up-{socket.gethostname()}")
        asyncio.run(serve.serve(ready_file, drain_seconds, stop_early))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":  # ``python -m deployments.draining CONFIG_JSON``: the runner child of ``ferry up``
    _config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    run_runner(
        ready_file=Path(_config["ready_file"]) if _config.get("ready_file") else None,
        drain_seconds=float(_config.get("drain_seconds", DEFAULT_DRAIN_SECONDS)),
        limit=_config.get("limit", 4),
        poll_seconds=_config.get("poll_seconds"),
        sync_seconds=float(_config.get("sync_seconds", 10.0)),
    )
