"""Clocks and precise pacing for open-loop probes.

Latency is measured from the *intended* send time, so any lateness of the probe's own timer
would be charged to the target. Kernel timers are coarse (epoll waits in whole milliseconds,
nanosleep has 50 µs of default timer slack), so pacing sleeps until ``SPIN_NS`` before the
intended time and then spins — yielding the GIL on every turn (``time.sleep(0)``) so other
probe threads are not starved. Threads that pace also lower their timer slack to 1 ns (Linux
``prctl(PR_SET_TIMERSLACK)``; a no-op elsewhere).

The lateness that remains is recorded per sample (sent − intended) and judged by the
validity rules in stats.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import select
import selectors
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

now_ns = time.perf_counter_ns
SPIN_NS = 300_000  # wake this early, then spin: covers the wake-up jitter measured here

_PR_SET_TIMERSLACK = 29


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # dlopen(NULL): the symbols already loaded, libc's among them. Not ctypes.util.find_library,
    # which forks `ldconfig -p` (1.6 ms, and a copy of the probe process) on every call, and
    # each probe thread used to call it while other probes were timing.
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def lower_timer_slack() -> None:
    """Make this thread's sleeps and selects wake within microseconds (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(Exception):
            libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(1), 0, 0, 0)


def sleep_until_ns(target_ns: int) -> None:
    """Block the calling thread until ``target_ns`` (perf_counter_ns clock), precisely."""
    remaining = target_ns - now_ns()
    if remaining > SPIN_NS:
        time.sleep((remaining - SPIN_NS) / 1e9)
    while now_ns() < target_ns:
        time.sleep(0)  # releases the GIL on each turn


async def async_sleep_until_ns(target_ns: int) -> None:
    """Await until ``target_ns``: coarse asyncio sleep, then a short spin of loop turns.

    Each turn of the spin is ``asyncio.sleep(0)``: one event-loop iteration with a zero-timeout
    select, so responses that arrive meanwhile are still read (and timestamped) at once.
    """
    remaining = target_ns - now_ns()
    if remaining > SPIN_NS + 1_000_000:
        await asyncio.sleep((remaining - SPIN_NS - 1_000_000) / 1e9)
    remaining = target_ns - now_ns()
    if remaining > SPIN_NS:
        # The precise loop's selector waits with microsecond timeouts (see below).
        await asyncio.sleep((remaining - SPIN_NS) / 1e9)
    while now_ns() < target_ns:
        await asyncio.sleep(0)


class _PreciseSelector(selectors.SelectSelector):
    """select(2) takes a microsecond timeout; epoll only whole milliseconds (rounded up)."""


_EpollBase: type[selectors.BaseSelector] = getattr(selectors, "EpollSelector",
                                                   selectors.SelectSelector)


class _PreciseEpollSelector(_EpollBase):  # type: ignore[valid-type,misc]
    """epoll for any number of descriptors, woken with microsecond precision.

    ``epoll_wait`` rounds its timeout up to whole milliseconds, and ``select(2)`` cannot watch
    descriptors >= 1024 (a run over hundreds of engines opens more). An epoll descriptor is
    itself pollable — readable while any watched descriptor is ready — so a timed wait is
    ``select([epoll_fd], timeout_us)`` followed by a non-blocking ``epoll_wait``.
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
    return asyncio.SelectorEventLoop(_PreciseSelector())


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the cyclic GC off while probes are timing.

    In a process with a large heap (a Dagster run holds hundreds of thousands of objects) a
    full collection stops every thread for ~100 ms; measured here as 110 ms of probe lateness
    at p99 inside `dualbus run` and none in `dualbus probe`. Probes preallocate their sample
    arrays, so pausing the collector for a few seconds costs little memory.
    """
    global _gc_pausers
    with _gc_lock:
        if _gc_pausers == 0:
            gc.collect()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()


def run_on_precise_loop(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh microsecond-timer loop in this thread
    (epoll woken through select(2) on Linux, so descriptors >= 1024 are fine; plain select(2)
    elsewhere)."""
    lower_timer_slack()
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
            with gc_paused():
                result = fn()
        except BaseException as exc:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, False, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=body, name=name, daemon=True).start()
    return await fut
