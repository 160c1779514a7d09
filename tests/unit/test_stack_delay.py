"""Reference engines' event loops (stack/engine.py host_loop): a delay fault is slept on
microsecond timers, not spun; other hosts run on uvloop unless told not to."""

import asyncio
import sys
import time

import pytest

from dualbus_pipeline.stack.engine import (
    LOOP_ENV,
    EngineSpec,
    FaultSpec,
    HostSpec,
    MicrosecondLoop,
    host_loop,
    precise_sleep,
)


def _host(delay_ms: float) -> HostSpec:
    engine = EngineSpec(name="e", bind="127.0.0.1", port=1, health_path="/health",
                        bus_url="redis://127.0.0.1:1/0", stream="s", group="g",
                        fault=FaultSpec(delay_ms=delay_ms))
    return HostSpec(host_id="h", engines=[engine])


def _sleeps(loop: asyncio.AbstractEventLoop, seconds: float, n: int) -> tuple[float, float]:
    """Wall and CPU seconds of n precise sleeps on this loop."""
    async def run() -> None:
        for _ in range(n):
            await precise_sleep(seconds)

    wall, cpu = time.perf_counter(), time.thread_time()
    loop.run_until_complete(run())
    return time.perf_counter() - wall, time.thread_time() - cpu


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux's")
def test_only_hosts_with_a_delay_fault_get_microsecond_timers() -> None:
    for delay, fine in ((0.0, False), (1.0, True)):
        loop = host_loop(_host(delay))
        try:
            assert isinstance(loop, MicrosecondLoop) is fine
        finally:
            loop.close()


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_hosts_without_a_delay_fault_run_on_uvloop_unless_asked_not_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    for env, want_uvloop in ((None, True), ("uvloop", True), ("asyncio", False),
                             (" AsyncIO ", False)):
        if env is None:
            monkeypatch.delenv(LOOP_ENV, raising=False)
        else:
            monkeypatch.setenv(LOOP_ENV, env)
        for delay in (0.0, 1.0):
            loop = host_loop(_host(delay))
            try:
                assert isinstance(loop, uvloop.Loop) is (want_uvloop and not delay), (env, delay)
            finally:
                loop.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux's")
def test_a_delay_is_slept_not_spun() -> None:
    loop = host_loop(_host(1.0))
    try:
        wall, cpu = _sleeps(loop, 0.001, 60)
    finally:
        loop.close()
    assert wall >= 60 * 0.001  # never shorter than asked
    # A millisecond loop spins all of a 1 ms delay (CPU ≈ wall); microsecond timers sleep it
    # and spin its last 0.2 ms.
    assert cpu < 0.5 * wall, (cpu, wall)
