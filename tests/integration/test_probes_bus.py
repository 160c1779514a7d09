"""Bus probe against real Redis servers: measurements, passive health, safety, dead buses."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from dualbus_pipeline.config import Bus, Engine, ProbeSettings
from dualbus_pipeline.probes.bus import probe_bus
from dualbus_pipeline.probes.model import BusResult
from dualbus_pipeline.probes.streams import watched_on
from dualbus_pipeline.stack.redis_server import RedisProcess
from tests.conftest import REPO
from tests.probe_targets import closed_port

# A generous late bound: these tests are about what buses do and must hold while the other
# core is busy (re-takes have their own tests: tests/unit/test_paced.py).
SETTINGS = ProbeSettings(bus_ping_count=100, bus_delivery_count=200,
                         bus_delivery_rate_per_s=1000, bus_capacity_messages=20_000,
                         bus_timeout_s=0.5, late_bound_ms=50, retake_fraction=0.5)
WRITES = {"XADD", "XGROUP", "EXPIRE", "DEL", "XACK", "SET", "HSET", "LPUSH", "RPUSH",
          "XTRIM", "UNLINK", "PUBLISH", "SADD", "ZADD", "INCR", "XCLAIM", "XAUTOCLAIM"}


def bus(url: str) -> Bus:
    return Bus(name="b1", url=url)


def eng(name: str, stream: str) -> Engine:
    return Engine(name=name, url=f"http://127.0.0.1:{closed_port()}", bus="b1", stream=stream,
                  group=f"{name}-group")


def run(b: Bus, engines: list[Engine], settings: ProbeSettings = SETTINGS,
        run_id: str = "run1") -> BusResult:
    return asyncio.run(probe_bus(b, watched_on(engines, b.name), settings, run_id))


def probe_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="dualbus:probe:*"))


def test_healthy_bus_measures_and_cleans_up(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    r.xgroup_create("risk-stream", "risk-group", id="0", mkstream=True)
    for i in range(5):
        r.xadd("risk-stream", {"n": i})
    r.xreadgroup("risk-group", "c1", {"risk-stream": ">"}, count=2)  # 2 pending, lag 3
    engines = [eng("risk", "risk-stream"), eng("ghost", "missing-stream")]
    res = run(bus(redis_server.url), engines)
    assert res.status == "operational", res.status_reason
    assert res.ping.count == 100 and res.ping.ok == 100 and res.ping.p50 is not None
    assert res.ping.p50 < 5
    assert res.delivery.count == 200 and res.delivery.ok == 200 and res.delivery.valid
    assert res.throughput_msgs_per_s is not None and res.throughput_msgs_per_s > 10_000
    assert res.info["connected_clients"] >= 1 and "instantaneous_ops_per_sec" in res.info
    risk, ghost = res.streams
    assert (risk.exists, risk.length, risk.pending, risk.lag, risk.consumers) == (
        True, 5, 2, 3, 1)
    assert not ghost.exists and ghost.error == "stream does not exist"
    assert probe_keys(r) == []
    assert r.xlen("risk-stream") == 5  # engine streams are only read


def test_missing_group_is_reported(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    r.xadd("s", {"a": 1})
    res = run(bus(redis_server.url), [eng("x", "s")],
              SETTINGS.model_copy(update={"bus_capacity_messages": 0}))
    st = res.streams[0]
    assert st.exists and st.error == "consumer group 'x-group' does not exist"


def test_nothing_written_outside_probe_namespace(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    r.xgroup_create("risk-stream", "risk-group", id="$", mkstream=True)
    before = sorted(r.scan_iter(match="*"))
    commands: list[list[str]] = []

    def monitor() -> None:
        m = redis.Redis.from_url(redis_server.url)
        with m.monitor() as mon:
            while True:
                ev: dict[str, Any] = mon.next_command()
                words = str(ev["command"]).split()
                if words == ["ECHO", "stop-monitor"]:
                    return
                commands.append(words)

    t = threading.Thread(target=monitor, daemon=True)
    t.start()
    time.sleep(0.2)
    res = run(bus(redis_server.url), [eng("risk", "risk-stream")],
              SETTINGS.model_copy(update={"bus_capacity_messages": 2000}))
    r.echo("stop-monitor")
    t.join(5)
    assert res.status == "operational"
    writes = [c for c in commands if c and c[0].upper() in WRITES]
    assert len(writes) > 200
    for c in writes:
        key = c[2] if c[0].upper() == "XGROUP" else c[1]
        assert key.startswith("dualbus:probe:run1:b1:"), c
    assert sorted(r.scan_iter(match="*")) == before


def test_probe_keys_carry_ttl_and_maxlen(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    seen: dict[str, int] = {}
    stop = threading.Event()

    def watch() -> None:
        w = redis.Redis.from_url(redis_server.url)
        while not stop.is_set():
            for k in w.scan_iter(match="dualbus:probe:*"):
                ttl = int(w.ttl(k))
                if ttl != -2:  # -2: deleted between SCAN and TTL (cleanup)
                    seen[k.decode()] = ttl
            time.sleep(0.005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    run(bus(redis_server.url), [], SETTINGS.model_copy(update={"key_ttl_s": 120}))
    stop.set()
    t.join(2)
    assert "dualbus:probe:run1:b1:delivery" in seen
    assert all(0 < ttl <= 120 for ttl in seen.values()), seen
    assert probe_keys(r) == []


def test_password_and_database_in_url(redis_factory: Callable[..., RedisProcess]) -> None:
    srv = redis_factory(password="s3cret")
    res = run(bus(f"redis://:s3cret@127.0.0.1:{srv.port}/3"), [],
              SETTINGS.model_copy(update={"bus_capacity_messages": 1000}))
    assert res.status == "operational", res.status_reason
    assert "s3cret" not in res.url
    wrong = run(bus(f"redis://:nope@127.0.0.1:{srv.port}/0"), [])
    assert wrong.status == "unreachable" and wrong.ping.ok == 0


def test_dead_bus_is_unreachable_not_an_exception() -> None:
    t0 = time.monotonic()
    res = run(bus(f"redis://127.0.0.1:{closed_port()}/0"), [eng("risk", "risk-stream")])
    assert res.status == "unreachable"
    assert res.ping.count == 100 and res.ping.ok == 0 and "refused" in (res.error or "")
    assert res.delivery.count == 200 and res.delivery.ok == 0
    assert res.throughput_msgs_per_s is None
    assert not res.streams[0].exists
    assert time.monotonic() - t0 < 10  # fails fast, not one timeout per sample (150 s)


def test_bus_killed_mid_probe_yields_failed_samples(redis_server: RedisProcess) -> None:
    settings = SETTINGS.model_copy(update={"bus_delivery_count": 1500,
                                           "bus_capacity_messages": 0})

    def kill_soon() -> None:
        time.sleep(0.6)
        os.kill(redis_server.pid, signal.SIGKILL)

    threading.Thread(target=kill_soon, daemon=True).start()
    t0 = time.monotonic()
    res = run(bus(redis_server.url), [], settings)
    assert time.monotonic() - t0 < 5
    d = res.delivery
    assert d.count == 1500 and 0 < d.ok < 1500
    assert res.status == "degraded"
    assert any(e and ("refused" in e or "reset" in e or "closed" in e) for e in
               res.samples[1].error)


def test_a_stalled_bus_is_charged_and_breaches_the_delivery_slo(
        redis_server: RedisProcess, tmp_path: Path) -> None:
    """CLIENT PAUSE freezes the bus for 80 ms in the middle of the delivery schedule. The
    messages due meanwhile wait in a blocked XADD: that wait is the bus's, so they are slow
    samples (not probe lateness, not an invalid summary), and the shipped delivery SLO
    (p99 < 10 ms) is breached rather than "no data"."""
    settings = SETTINGS.model_copy(update={"bus_delivery_count": 500, "bus_ping_count": 20,
                                           "bus_capacity_messages": 0})
    r = redis.Redis.from_url(redis_server.url)
    key = "dualbus:probe:stall:b1:delivery"

    def pause_mid_schedule() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if r.exists(key) and r.xlen(key) >= 100:
                r.execute_command("CLIENT", "PAUSE", 80, "ALL")
                return
            time.sleep(0.002)

    pauser = threading.Thread(target=pause_mid_schedule, daemon=True)
    pauser.start()
    res = run(bus(redis_server.url), [], settings, run_id="stall")
    pauser.join()
    d = res.delivery
    assert d.valid and not d.inconclusive and d.ok == 500, d
    assert d.p99 is not None and d.p99 > 10, d  # ~80 ms at the stall, 1 ms apart
    slow = [lat for lat, ok in zip(res.samples[1].latency_ms(), res.samples[1].ok,
                                   strict=True) if ok and lat > 10]
    assert len(slow) >= 10

    from dualbus_pipeline.slospec.evaluate import evaluate_run
    from dualbus_pipeline.slospec.loader import load_slo_dir
    from dualbus_pipeline.store.runs import begin_run, store_measurements
    from dualbus_pipeline.store.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.migrate()
    begin_run(wh, "stall", "p")
    slos = [s for s in load_slo_dir(REPO / "slo") if s.name == "bus_delivery_p99"]
    with wh.transaction() as con:
        store_measurements(con, "stall", [res], [], [])
        (verdict,) = evaluate_run(con, "stall", slos, baseline_runs=5).results
    assert verdict.outcome == "breach" and verdict.value is not None and verdict.value > 10
