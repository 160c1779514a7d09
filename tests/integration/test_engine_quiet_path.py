"""The engine probe's quiet path (engine_prober.py, `take`): a prober alone on its thread,
with nothing of the thread pending, takes a sample with a blocking sleep, the write and a read
off the socket, and no pass of the event loop; whatever that path cannot finish (a slow answer,
a connection the engine closed while the probe slept, a dead engine) the loop finishes as on
its own path. Real servers in their own process (tests/fault_servers.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dualbus_pipeline.config import ProbeSettings
from dualbus_pipeline.probes.engine_hot import hot_series
from dualbus_pipeline.probes.engine_prober import EngineProber
from dualbus_pipeline.probes.engine_series import Series, unfinished
from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.timing import now_ns
from tests.integration.test_probes_engine import FAST, engine

# 5/s: the quiet path reads an answer for up to half a period (100 ms), far more than a
# loopback answer takes even with the other core busy
SLOW_PACE = FAST.model_copy(update={"engine_rate_per_s": 5, "engine_timeout_s": 1.0,
                                    "min_samples": 5})


def _paced(port: int, settings: ProbeSettings, count: int, *,
           exclusive: bool) -> tuple[EngineProber, SampleBatch]:
    async def go() -> tuple[EngineProber, SampleBatch]:
        prober = EngineProber(engine(f"http://127.0.0.1:{port}"), settings,
                              exclusive=exclusive)
        return prober, await prober.paced(count)

    return asyncio.run(go())


def _errors(batch: SampleBatch) -> list[str | None]:
    return [e for e, r in zip(batch.error, batch.replaced, strict=True) if not r]


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_a_prober_alone_takes_its_samples_on_the_quiet_path(fault_server: int) -> None:
    prober, batch = _paced(fault_server, SLOW_PACE, 10, exclusive=True)
    assert _errors(batch) == [None] * 10 and all(batch.ok)
    assert prober.quiet_samples == 10
    assert unfinished() == 0


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_a_prober_sharing_its_loop_never_does(fault_server: int) -> None:
    prober, batch = _paced(fault_server, SLOW_PACE, 10, exclusive=False)
    assert _errors(batch) == [None] * 10 and all(batch.ok)
    assert prober.quiet_samples == 0


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_the_hot_series_takes_the_quiet_path_too(fault_server: int) -> None:
    async def go() -> tuple[EngineProber, SampleBatch]:
        prober = EngineProber(engine(f"http://127.0.0.1:{fault_server}"), SLOW_PACE, exclusive=True)
        return prober, await hot_series(prober, 20)

    prober, batch = asyncio.run(go())
    assert _errors(batch) == [None] * 20 and prober.quiet_samples == 20


@pytest.mark.parametrize("fault_server", [{"kind": "slow", "delay_s": 0.2}], indirect=True)
def test_answers_slower_than_half_a_period_are_finished_by_the_loop(fault_server: int) -> None:
    """20/s: each answer takes 200 ms, four periods: the quiet path gives up on it after
    25 ms, the loop reads it, and while it is out the next samples go through the loop (on
    more connections) instead of blocking it."""
    settings = SLOW_PACE.model_copy(update={"engine_rate_per_s": 20})
    prober, batch = _paced(fault_server, settings, 12, exclusive=True)
    assert _errors(batch) == [None] * 12
    assert min(batch.latency_ms()) >= 200
    assert prober.quiet_samples == 0
    assert unfinished() == 0


@pytest.mark.parametrize("fault_server", [{"kind": "idle_close", "idle_s": 0.02}], indirect=True)
def test_a_connection_closed_while_the_probe_slept_is_replaced(fault_server: int) -> None:
    """The engine closes each connection 20 ms after its answer, while the quiet path sleeps
    (200 ms periods): the close is seen before the write, the sample goes out on a new
    connection through the loop, and no sample fails."""
    _, batch = _paced(fault_server, SLOW_PACE, 6, exclusive=True)
    assert _errors(batch) == [None] * 6 and all(batch.ok)
    assert unfinished() == 0


@pytest.mark.parametrize("fault_server", [{"kind": "blackhole"}], indirect=True)
def test_a_silent_engine_times_out_each_sample(fault_server: int) -> None:
    settings = SLOW_PACE.model_copy(update={"engine_timeout_s": 0.3})
    prober, batch = _paced(fault_server, settings, 4, exclusive=True)
    assert _errors(batch) == ["timeout"] * 4
    assert prober.quiet_samples == 0
    assert unfinished() == 0


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_no_quiet_path_while_another_sample_of_the_thread_is_out(fault_server: int) -> None:
    """A sample of any series on the thread still out (an answer, connect or timeout the
    loop must see to) keeps every prober on the loop's path until it is finished."""
    async def go() -> None:
        prober = EngineProber(engine(f"http://127.0.0.1:{fault_server}"), SLOW_PACE, exclusive=True)
        await prober.prepare()
        other = Series()
        other.new(now_ns())  # another engine's sample, not finished yet
        prober.s.new(now_ns())
        assert prober.quiet_conn() is None
        other.settle()
        conn = prober.quiet_conn()
        assert conn is not None
        conn.abort()
        prober.s.settle()
        prober.close_all()

    asyncio.run(go())
    assert unfinished() == 0


def test_a_sample_is_finished_once_when_its_connect_and_its_timeout_end_together() -> None:
    """An engine whose accept queue is full: every connect hangs, and each sample's timeout
    and its connect's end at the same instant. The sample is finished once (the first
    outcome stands), so the thread's count of unfinished samples, which decides the quiet
    path, comes back to zero."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue: later SYNs are dropped, connects hang
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        settings = SLOW_PACE.model_copy(update={"engine_rate_per_s": 20,
                                                "engine_timeout_s": 0.2})
        _, batch = _paced(port, settings, 4, exclusive=True)
    finally:
        for c in fillers:
            c.close()
        listener.close()
    assert _errors(batch) == ["timeout"] * 4
    assert unfinished() == 0
