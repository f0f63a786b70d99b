"""One daemon thread that runs every call to the search service, in order.

The service holds an SQLite connection, which must stay on one thread; the lane keeps it there and
never blocks the UI or the process exit (daemon thread). Stale jobs can be skipped before they start.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable


class Skipped(Exception):
    """The job was dropped before it started because a newer one replaced it."""


class ServiceLane:
    def __init__(self, name: str = "mmtui-service") -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, kwargs, future, still_wanted = job
            if not future.set_running_or_notify_cancel():  # cancelled by its caller while it waited
                continue
            if still_wanted is not None and not still_wanted():
                future.set_exception(Skipped())
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller, who turns it into a notification
                future.set_exception(exc)

    def submit(self, fn: Callable[..., Any], *args: Any, still_wanted: Callable[[], bool] | None = None,
               **kwargs: Any) -> Future:
        future: Future = Future()
        self._jobs.put((fn, args, kwargs, future, still_wanted))
        return future

    async def call(self, fn: Callable[..., Any], *args: Any, still_wanted: Callable[[], bool] | None = None,
                   **kwargs: Any) -> Any:
        """Run fn on the lane and await its result from the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args, still_wanted=still_wanted, **kwargs))

    def close(self) -> None:
        self._jobs.put(None)


async def in_daemon_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run long blocking work (model load, build, training) on its own daemon thread and await it.

    Unlike the default executor, a daemon thread never holds the process open when the user quits.
    """
    future: Future = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=getattr(fn, "__name__", "mmtui-work"), daemon=True).start()
    return await asyncio.wrap_future(future)
