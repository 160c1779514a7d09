"""Reference engines' delay fault: slept on microsecond timers, not spun (stack/engine.py)."""

import asyncio
import sys
import time

import pytest

from dualbus_pipeline.stack.engine import (
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
