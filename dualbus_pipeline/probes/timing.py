"""Clocks and pacing for open-loop probes: sleep until a send is due, never spin.

A paced probe sleeps until each send is due and then sends. Its own lateness (woke after the
due time) is recorded per sample and is *not* charged to the target: latency runs from the
moment the probe was ready to send (model.py, "start"). What the probe host delays beyond
``probe.late_bound_ms`` is re-taken (retake.py). So the probe needs timers that are accurate
enough for the lateness to say something about the host, and nothing more: no busy-waiting,
which would take a core from the platform being measured (product.md §4.4).

Blocking threads sleep with ``time.sleep`` (nanosleep: tens of microseconds late on an idle
host). The engine loop is asyncio on a selector that keeps microsecond timeouts
(`run_on_precise_loop`): epoll rounds every timeout up to whole milliseconds, which would make
every send up to 1 ms late by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import selectors
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

now_ns = time.perf_counter_ns


def sleep_until_ns(target_ns: int) -> int:
    """Block the calling thread until ``target_ns`` (perf_counter_ns clock); return the time it
    woke (at or after ``target_ns``; the difference is the probe's own lateness)."""
    ahead = target_ns - now_ns()  # one reading: a negative length would raise in time.sleep
    if ahead > 0:
        time.sleep(ahead / 1e9)
    return now_ns()


async def async_sleep_until_ns(target_ns: int) -> int:
    """Await until ``target_ns``; return the time the loop resumed us."""
    ahead = target_ns - now_ns()
    if ahead > 0:
        await asyncio.sleep(ahead / 1e9)
    return now_ns()


_EpollBase: type[selectors.BaseSelector] = getattr(selectors, "EpollSelector",
                                                   selectors.SelectSelector)


class _PreciseEpollSelector(_EpollBase):  # type: ignore[valid-type,misc]
    """epoll for any number of descriptors, with microsecond timeouts.

    ``epoll_wait`` rounds its timeout up to whole milliseconds, and ``select(2)`` cannot watch
    descriptors >= 1024. An epoll descriptor is itself pollable (readable while any watched
    descriptor is ready), so a timed wait is ``select([epoll_fd], timeout)`` followed by a
    non-blocking ``epoll_wait``.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            select.select([self.fileno()], [], [], timeout)
            timeout = 0
        events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        return events


def _new_precise_loop() -> asyncio.AbstractEventLoop:
    if hasattr(selectors, "EpollSelector"):
        sel = _PreciseEpollSelector()
        if sel.fileno() < 1000:  # select(2) can watch it
            return asyncio.SelectorEventLoop(sel)
        sel.close()  # >1000 descriptors already open: millisecond epoll (lateness will show)
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(selectors.SelectSelector())  # microseconds already


def run_on_precise_loop(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh microsecond-timer loop in this thread."""
    loop = _new_precise_loop()
    try:
        return loop.run_until_complete(factory())
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def in_thread(fn: Callable[[], T], name: str) -> T:
    """Run blocking ``fn`` in a dedicated daemon thread (not the shared default executor, whose
    few workers would serialize concurrent probes); await its result."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def body() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, False, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=body, name=name, daemon=True).start()
    return await fut
