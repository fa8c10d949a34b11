"""A worker pool of daemon threads, so an interrupted fetch never holds the process open.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so after
Ctrl-C a process would wait for every in-flight request (up to its read timeout) and every
retry back-off (up to ``max_backoff``) before it could end. These workers are daemon threads:
a stopped run abandons them, they give up at their next rate-limiter call, and the process
exits at once. The futures are ordinary :class:`concurrent.futures.Future` objects, so
``concurrent.futures.wait`` works on them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["DaemonPool"]

T = TypeVar("T")

_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonPool:
    """Run callables on ``workers`` daemon threads.

    Args:
        workers: how many threads run tasks at once (at least 1).
        name: the thread-name prefix, for debuggers and logs.
    """

    def __init__(self, workers: int, name: str = "cijobs-worker") -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; its future holds the result or the exception."""
        future: Future[T] = Future()
        self._tasks.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Let each thread end after its current task; never waits."""
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # even KeyboardInterrupt belongs to the waiter
                future.set_exception(exc)
