"""Clocks and precise pacing for open-loop probes.

Latency is measured from the *intended* send time, so any lateness of the probe's own timer
would be charged to the target. Kernel timers are coarse (epoll waits in whole milliseconds,
nanosleep has 50 µs of default timer slack), so pacing sleeps until a little before the
intended time and then spins — yielding the GIL on every turn (``time.sleep(0)``) so other
probe threads are not starved. Threads that pace also lower their timer slack to 1 ns (Linux
``prctl(PR_SET_TIMERSLACK)``; a no-op elsewhere).

How early is measured, not fixed (`SpinBudget`): each pacing thread records how late its
timed sleeps wake and spins for the recent p90 of that overshoot plus a margin. A fixed 300 µs
covered the worst VM we measured, but on a machine whose wake-ups land within ~75 µs it
spent most of a core spinning at a 5,000/s send budget, and the starved loop then ran tens of
milliseconds late (docs/benchmarks.md, "Scale").

The lateness that remains is recorded per sample (sent − intended) and judged by the
validity rules in stats.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import math
import select
import selectors
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

now_ns = time.perf_counter_ns
SPIN_START_NS = 300_000  # spin this long until a thread has measured its own wake-ups
SPIN_MIN_NS = 30_000
SPIN_MAX_NS = 300_000  # the p99 wake-up overshoot of the worst VM we measured
SPIN_MARGIN_NS = 20_000
SPIN_QUANTILE = 0.9
SPIN_WINDOW = 512  # the wake-ups the quantile is taken over
SPIN_REFIT = 64  # refit after this many new wake-ups


class SpinBudget:
    """How long before an intended send one pacing thread stops sleeping and spins.

    Fed the overshoot of every timed sleep (woke − asked to wake), it keeps the last
    ``SPIN_WINDOW`` of them and spins for their ``SPIN_QUANTILE`` plus ``SPIN_MARGIN_NS``,
    within [``SPIN_MIN_NS``, ``cap_ns``]: enough to cover the wake-ups this machine delivers
    under its current load, and no more CPU than that. The overshoot includes whatever else
    kept the thread (the GIL, other callbacks of its event loop), which the spin must cover
    just the same. Its tail is preemption (milliseconds, when other processes want the
    cores), which no spin covers: hence a p90, not a p99, and a cap — a thread whose sends are
    S apart caps its spin at S/2 (`cap_for_spacing`), so spinning can never take its loop
    from the work of sending and reading.
    """

    def __init__(self) -> None:
        self.ns = SPIN_START_NS
        self.cap_ns = SPIN_MAX_NS
        self._seen: deque[int] = deque(maxlen=SPIN_WINDOW)
        self._fresh = 0
        self._pinned = False

    def pin(self, ns: int) -> None:
        """Spin exactly ``ns`` from now on, whatever the wake-ups measure."""
        self.ns = self.cap_ns = ns
        self._pinned = True

    def cap_for_spacing(self, spacing_ns: float) -> None:
        """This thread's sends are ``spacing_ns`` apart: spin at most half of that."""
        self.cap_ns = max(SPIN_MIN_NS, min(SPIN_MAX_NS, int(spacing_ns / 2)))
        self.ns = min(self.ns, self.cap_ns)

    def record(self, overshoot_ns: int) -> None:
        self._seen.append(max(0, overshoot_ns))
        self._fresh += 1
        if self._fresh >= SPIN_REFIT and not self._pinned:
            self._fresh = 0
            ranked = sorted(self._seen)
            q = ranked[min(len(ranked) - 1, math.ceil(SPIN_QUANTILE * len(ranked)) - 1)]
            self.ns = min(self.cap_ns, max(SPIN_MIN_NS, q + SPIN_MARGIN_NS))


_local = threading.local()


def spin_budget() -> SpinBudget:
    """This thread's `SpinBudget` (each pacing thread learns its own wake-ups)."""
    budget: SpinBudget | None = getattr(_local, "spin", None)
    if budget is None:
        budget = _local.spin = SpinBudget()
    return budget


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
    budget = spin_budget()
    wake = target_ns - budget.ns
    # One clock reading for the test and the length: a thread preempted between two readings
    # computed a negative sleep, and time.sleep raised ValueError (a bus probe crashed and
    # its healthy bus was reported unreachable, seen in a benchmark).
    ahead = wake - now_ns()
    if ahead > 0:
        time.sleep(ahead / 1e9)
        budget.record(now_ns() - wake)
    while now_ns() < target_ns:
        time.sleep(0)  # releases the GIL on each turn


async def async_sleep_until_ns(target_ns: int) -> None:
    """Await until ``target_ns``: coarse asyncio sleep, then a short spin of loop turns.

    Each turn of the spin is ``asyncio.sleep(0)``: one event-loop iteration with a zero-timeout
    select, so responses that arrive meanwhile are still read (and timestamped) at once.
    """
    budget = spin_budget()
    wake = target_ns - budget.ns
    ahead = wake - now_ns()  # one reading per decision, as in sleep_until_ns
    if ahead > 1_000_000:  # far off: a coarse sleep first, its overshoot is slack
        await asyncio.sleep((ahead - 1_000_000) / 1e9)
        ahead = wake - now_ns()
    if ahead > 0:
        # The precise loop's selector waits with microsecond timeouts (see below).
        await asyncio.sleep(ahead / 1e9)
        budget.record(now_ns() - wake)
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
