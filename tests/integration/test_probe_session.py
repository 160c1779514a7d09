"""Probe sessions (probes/session.py): the probes of a run in a child process, against a real
Redis and a real HTTP server; what the parent sees when the child fails, dies or is dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import redis

from dualbus_pipeline.config import ProbeSettings, Topology
from dualbus_pipeline.errors import ProbeError
from dualbus_pipeline.probes.model import BusResult, EngineResult
from dualbus_pipeline.probes.session import ProbeSession, measure, opened_for_run
from dualbus_pipeline.stack.redis_server import RedisProcess
from tests.probe_targets import HealthServer, closed_port, health_server

QUICK = ProbeSettings(engine_requests=20, engine_rate_per_s=400, engine_timeout_s=0.5,
                      bus_ping_count=20, bus_delivery_count=20, bus_capacity_messages=1000,
                      bus_timeout_s=0.5, pair_count=5, pair_timeout_s=0.3,
                      engine_hot_requests=5, late_bound_ms=50)


def topology(bus_url: str, engine_url: str, settings: ProbeSettings = QUICK) -> Topology:
    return Topology.model_validate({
        "platform": "Session test",
        "buses": [{"name": "only_bus", "url": bus_url}],
        "engines": [{"name": "lonely", "url": engine_url, "bus": "only_bus",
                     "stream": "lonely-in", "group": "lonely-g"}],
        "probe": settings.model_dump(),
    })


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with health_server() as srv:
        yield srv


def test_phases_arrive_in_order_with_their_results(redis_server: RedisProcess,
                                                   server: HealthServer) -> None:
    topo = topology(redis_server.url, server.url)
    with ProbeSession() as session:
        session.start(topo, "run-s1", ("buses", "engines"))
        buses = session.result("buses")
        engines = session.result("engines")
    assert [type(b) for b in buses.results] == [BusResult]
    assert buses.results[0].name == "only_bus" and buses.results[0].status == "operational"
    assert [type(e) for e in engines.results] == [EngineResult]
    (e,) = engines.results
    assert e.name == "lonely" and e.summary.count == 20 and e.summary.ok == 20
    assert 0 < buses.seconds < 30 and 0 < engines.seconds < 30
    # the child cleaned up after itself on the bus
    assert list(redis.Redis.from_url(redis_server.url).scan_iter("dualbus:probe:*")) == []


def test_a_phase_not_asked_for_is_refused(redis_server: RedisProcess,
                                          server: HealthServer) -> None:
    with ProbeSession() as session:
        session.start(topology(redis_server.url, server.url), "run-s2", ("engines",))
        with pytest.raises(ProbeError, match="does not measure pairs"):
            session.result("pairs")
        assert session.result("engines").results[0].summary.ok == 20


def test_a_killed_child_fails_the_phase_with_its_exit_code(redis_server: RedisProcess) -> None:
    slow = QUICK.model_copy(update={"engine_requests": 400, "engine_rate_per_s": 100})
    with ProbeSession() as session:
        session.start(topology(redis_server.url, f"http://127.0.0.1:{closed_port()}", slow),
                      "run-s3", ("engines",))
        time.sleep(0.5)
        os.kill(session.pid, signal.SIGKILL)
        with pytest.raises(ProbeError, match=r"exited \(code -9\) before measuring engines"):
            session.result("engines")


def test_a_session_closed_before_start_probes_nothing(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    session = ProbeSession()
    pid = session.pid
    session.close()
    assert session.returncode in (0, -signal.SIGTERM)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert r.dbsize() == 0


def test_measure_uses_the_session_opened_for_the_run(redis_server: RedisProcess,
                                                     server: HealthServer) -> None:
    topo = topology(redis_server.url, server.url)
    with ProbeSession() as session:
        session.start(topo, "run-s4", ("engines",))
        with opened_for_run(session):
            got = measure(topo, "run-s4", "engines")
        assert got is session.result("engines")  # the very frame the session delivered
    # no session opened for this run: measure() runs the phase in a session of its own
    own = measure(topo, "run-s5", "engines")
    assert own.results[0].summary.ok == 20


def test_the_child_dies_with_its_parent(redis_server: RedisProcess) -> None:
    """SIGKILL the process that opened the session: the probe process follows at once
    (PR_SET_PDEATHSIG), it does not go on probing an orphaned run."""
    script = textwrap.dedent(f"""
        import sys, time
        from dualbus_pipeline.config import ProbeSettings, Topology
        from dualbus_pipeline.probes.session import ProbeSession
        topo = Topology.model_validate({{
            "platform": "p", "buses": [{{"name": "b", "url": "{redis_server.url}"}}],
            "engines": [{{"name": "e", "url": "http://127.0.0.1:{closed_port()}", "bus": "b",
                          "stream": "s", "group": "g"}}],
            "probe": {{"engine_requests": 2000, "engine_rate_per_s": 100}}}})
        s = ProbeSession()
        s.start(topo, "orphan", ("engines",))
        print(s.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # running
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _alive(child):
            return
        time.sleep(0.05)
    pytest.fail(f"probe process {child} outlived its parent")


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
