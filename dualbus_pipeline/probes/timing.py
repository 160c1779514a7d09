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
import ctypes.util
import gc
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


def lower_timer_slack() -> None:
    """Make this thread's sleeps and selects wake within microseconds (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
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
        # The precise loop's selector waits with microsecond timeouts (select(2)).
        await asyncio.sleep((remaining - SPIN_NS) / 1e9)
    while now_ns() < target_ns:
        await asyncio.sleep(0)


class _PreciseSelector(selectors.SelectSelector):
    """select(2) takes a microsecond timeout; epoll only whole milliseconds (rounded up)."""


def _new_precise_loop() -> asyncio.AbstractEventLoop:
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
    """Run a coroutine to completion on a fresh microsecond-timer loop in this thread.

    Falls back to the default loop when the process already has descriptors >= 1024 (select(2)
    cannot watch them); the lateness recorded per sample then shows the coarser timers.
    """
    lower_timer_slack()
    try:
        probe_fd = _probe_fd()
    except OSError:
        probe_fd = 0
    loop = _new_precise_loop() if probe_fd < 1000 else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(factory())
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _probe_fd() -> int:
    import socket

    with socket.socket() as s:
        return s.fileno()


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
