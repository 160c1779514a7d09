"""`HttpConnection.wait_here`: the answer of the only request in flight is read off the socket
in the probe's thread (engine_prober.py, `fire`); what has not come by the deadline is the
event loop's to read, and the request count in flight stays exact. Real servers in their own
process (tests/fault_servers.py)."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Iterator

import pytest

from dualbus_pipeline.probes.http import HttpConnection, build_get, in_flight
from dualbus_pipeline.probes.timing import now_ns
from dualbus_pipeline.stack.redis_server import free_port
from tests.fault_servers import FaultServers
from tests.integration.test_probes_engine import FAST, probe


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    servers = FaultServers({port: request.param}).start()
    try:
        yield port
    finally:
        servers.stop()


async def _connect(port: int) -> HttpConnection:
    _, conn = await asyncio.get_running_loop().create_connection(
        lambda: HttpConnection(now_ns), "127.0.0.1", port)
    return conn


@pytest.mark.parametrize("server", [{"kind": "ok"}], indirect=True)
def test_the_answer_is_read_in_thread_before_the_loop_runs_again(server: int) -> None:
    async def go() -> None:
        conn = await _connect(server)
        for _ in range(5):
            fut = conn.arm()
            conn.write(build_get("127.0.0.1", server, "/health"))
            assert in_flight() == 1
            conn.wait_here(now_ns() + 5_000_000_000)
            # no await since the write: only the in-thread read can have finished it
            assert fut.done() and in_flight() == 0
            _, status, body, keep_alive = fut.result()
            assert status == 200 and b"healthy" in body and keep_alive
        conn.abort()

    asyncio.run(go())


@pytest.mark.parametrize("server", [{"kind": "split", "gap_s": 0.3}], indirect=True)
def test_an_answer_not_complete_by_the_deadline_is_finished_by_the_loop(server: int) -> None:
    async def go() -> None:
        conn = await _connect(server)
        fut = conn.arm()
        t0 = now_ns()
        conn.write(build_get("127.0.0.1", server, "/health"))
        conn.wait_here(t0 + 100_000_000)  # the first half comes at once, the rest 0.3 s later
        assert not fut.done() and in_flight() == 1
        done, status, body, _ = await asyncio.wait_for(fut, 5)
        assert status == 200 and body == b'{"status": "healthy"}'
        assert done - t0 >= 300_000_000  # stamped when the rest arrived, by the loop
        assert in_flight() == 0
        conn.abort()

    asyncio.run(go())


@pytest.mark.parametrize("server", [{"kind": "midclose"}], indirect=True)
def test_a_close_mid_answer_is_left_to_the_loop_and_counted_out(server: int) -> None:
    async def go() -> None:
        conn = await _connect(server)
        fut = conn.arm()
        conn.write(build_get("127.0.0.1", server, "/health"))
        conn.wait_here(now_ns() + 5_000_000_000)  # returns at the end of the stream
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(fut, 5)
        assert in_flight() == 0

    asyncio.run(go())


@pytest.mark.parametrize("server", [{"kind": "split", "gap_s": 0.03}], indirect=True)
@pytest.mark.parametrize("rate", [10, 100])
def test_split_answers_are_whole_samples_whoever_reads_the_rest(server: int,
                                                                rate: int) -> None:
    """At 10/s the 30 ms gap is inside the in-thread wait (half a period, 50 ms); at 100/s it
    is not (5 ms), and the loop reads the rest: every sample is whole either way, and charged
    the gap."""
    settings = FAST.model_copy(update={"engine_requests": 12, "engine_rate_per_s": rate,
                                       "min_samples": 10})
    t0 = time.monotonic()
    r = probe(f"http://127.0.0.1:{server}", settings)
    assert r.status == "operational", r.status_reason
    counted = [lat for lat, rep in zip(r.samples.latency_ms(), r.samples.replaced, strict=True)
               if not rep]
    assert len(counted) == 12 and min(counted) >= 30, counted
    assert time.monotonic() - t0 < 30
    assert in_flight() == 0


@pytest.mark.parametrize("server", [{"kind": "ok"}], indirect=True)
def test_a_descriptor_select_cannot_watch_is_left_to_the_loop(server: int) -> None:
    """A process with over 1024 descriptors open (a large topology): a connection numbered
    beyond select(2)'s limit is not waited on in-thread, and its answer still arrives."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"descriptor limit {hard} < 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    spare: list[int] = []
    try:
        while not spare or spare[-1] < 1100:
            spare.append(os.open(os.devnull, os.O_RDONLY))

        async def go() -> None:
            conn = await _connect(server)
            assert conn.transport is not None
            assert conn.transport.get_extra_info("socket").fileno() >= 1024
            fut = conn.arm()
            conn.write(build_get("127.0.0.1", server, "/health"))
            conn.wait_here(now_ns() + 5_000_000_000)  # returns at once: not select's to watch
            _, status, _, _ = await asyncio.wait_for(fut, 5)
            assert status == 200 and in_flight() == 0
            conn.abort()

        asyncio.run(go())
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
