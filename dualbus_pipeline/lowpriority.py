"""Work in a background thread at idle CPU priority, while the probes measure.

`dualbus run` imports Dagster and builds its definitions and instance (~2.5 s of CPU here)
while its probe process measures (commands/run.py). That start-up must not take CPU time the
measurement wants. Linux schedules threads, and any thread may put itself in ``SCHED_IDLE``:
it then runs only on CPU time nobody else wants, and — unlike nice 19, which we measured
first — a CPU running only idle-class work still counts as idle when the kernel places a
waking task. That is not the whole story on a VM, where the host sees a busy vCPU either way:
measured there, idle-class work beside the engine probes still raised their p50, so
`dualbus run` lets it overlap only the bus probes (docs/benchmarks.md has the A/B). Where
``SCHED_IDLE`` is unavailable the thread uses nice 19, elsewhere normal priority.

An idle-class thread can be starved by a busy host. Once the measurement is over,
``restore()`` asks for normal priority back (allowed for root, CAP_SYS_NICE or an
RLIMIT_NICE of 20; otherwise the thread finishes at idle priority, which a quiet host does
not notice).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
LOWEST_NICE = 19


def lower_this_thread() -> str:
    """Put the calling thread in the idle class (else nice 19); return which, or 'normal'."""
    if not sys.platform.startswith("linux"):
        return "normal"
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)
        return "nice"
    return "normal"


class IdleWorker:
    """One background thread at idle priority running submitted calls in order."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = \
            queue.SimpleQueue()
        self._tid: int | None = None
        self.priority = "normal"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dualbus-idle", daemon=True)
        self._thread.start()
        self._ready.wait()

    def __enter__(self) -> IdleWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._tasks.put((fn, fut))
        return fut

    def restore(self) -> bool:
        """Ask for normal priority back for the worker thread (see the module docstring)."""
        if self.priority == "normal" or self._tid is None:
            return True
        try:
            os.sched_setscheduler(self._tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, self._tid, 0)
        except (OSError, AttributeError):
            return False
        self.priority = "normal"
        return True

    def close(self) -> None:
        """Stop after the queued calls. Does not wait for a call still running (an interrupted
        run must not wait for Dagster's import to finish); the thread is a daemon."""
        self._tasks.put(None)
        self._thread.join(0.5)

    def _loop(self) -> None:
        self._tid = threading.get_native_id()
        self.priority = lower_this_thread()
        self._ready.set()
        while (task := self._tasks.get()) is not None:
            fn, fut = task
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to whoever waits on the future
                fut.set_exception(exc)
