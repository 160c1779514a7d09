"""Pair probe (§4.3) against a real Redis and a minimal protocol responder written here, plus
the runner over a whole topology."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from dualbus_pipeline.config import ProbeSettings, Topology
from dualbus_pipeline.probes.model import PairResult
from dualbus_pipeline.probes.pair import probe_pair
from dualbus_pipeline.probes.runner import probe_pairs, run_all
from dualbus_pipeline.stack.redis_server import RedisProcess, free_ports
from tests.probe_targets import Responder, closed_port, health_server

SETTINGS = ProbeSettings(pair_count=40, pair_rate_per_s=200, pair_timeout_s=0.5,
                         engine_requests=40, engine_rate_per_s=400, engine_timeout_s=0.5,
                         bus_ping_count=50, bus_delivery_count=100, bus_capacity_messages=5000,
                         bus_timeout_s=0.5)


def topology(bus_url: str, engine_urls: dict[str, str] | None = None) -> Topology:
    urls = engine_urls or {}
    closed = free_ports(2)  # nothing listens on them: connections are refused
    return Topology.model_validate({
        "platform": "T",
        "buses": [{"name": "logic", "url": bus_url}],
        "engines": [{"name": n, "url": urls.get(n, f"http://127.0.0.1:{closed[i]}"),
                     "bus": "logic", "stream": f"{n}-stream", "group": f"{n}-group"}
                    for i, n in enumerate(("alpha", "beta"))],
        "pairs": [{"from": "alpha", "to": "beta"}],
        "probe": SETTINGS.model_dump(),
    })


@pytest.fixture
def responders(redis_server: RedisProcess) -> Iterator[list[Responder]]:
    started = [Responder(redis_server.url, f"{n}-stream", f"{n}-group", n).start()
               for n in ("alpha", "beta")]
    yield started
    for r in started:
        r.stop()


def test_round_trip_through_both_engines(redis_server: RedisProcess,
                                         responders: list[Responder]) -> None:
    topo = topology(redis_server.url)
    res = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "run7"))
    assert res.status == "operational", res.status_reason
    assert (res.from_, res.to, res.bus) == ("alpha", "beta", "logic")
    assert res.summary.count == 40 and res.summary.ok == 40
    sent = len(res.samples)  # 40 counted, plus any the loaded host made us re-take
    assert sent == 40 + res.summary.replaced
    r = redis.Redis.from_url(redis_server.url)
    assert r.xlen("beta-stream") == sent  # A forwarded every probe to B
    for stream in ("alpha-stream", "beta-stream"):  # both consumed and acknowledged all
        (group,) = r.xinfo_groups(stream)
        assert group["pending"] == 0 and group["entries-read"] == sent
    assert list(r.scan_iter(match="dualbus:probe:*")) == []
    # protocol messages are the only writes to engine streams
    entries = r.xrange("alpha-stream")
    assert len(entries) == sent
    fields = entries[0][1]
    assert fields[b"message_type"] == b"dualbus.probe"
    assert fields[b"forward_to"] == b"beta-stream"
    assert fields[b"reply_to"] == b"dualbus:probe:run7:reply:alpha-beta"
    assert set(fields) == {b"message_type", b"correlation_id", b"sent_ns", b"forward_to",
                           b"reply_to"}


def test_slow_hop_is_measured(redis_server: RedisProcess) -> None:
    a = Responder(redis_server.url, "alpha-stream", "alpha-group", "alpha", delay_ms=3).start()
    b = Responder(redis_server.url, "beta-stream", "beta-group", "beta").start()
    try:
        topo = topology(redis_server.url)
        # 3 ms per hop at 50/s (20 ms apart): the hop never queues behind the previous one
        slow = topo.probe.model_copy(update={"pair_rate_per_s": 50})
        res = asyncio.run(probe_pair(topo.pairs[0], topo, slow, "run8"))
    finally:
        a.stop()
        b.stop()
    assert a.handled == b.handled == len(res.samples)  # A forwarded, B replied
    # the hop's 3 ms is in every round trip; the bound above only says no queueing or
    # schedule time was charged (a busy host may add its own delays, not tens of ms)
    assert res.summary.p50 is not None and 3.0 <= res.summary.p50 < 30.0, res.summary


def test_no_responder_means_failed_samples_not_exception(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    r.xgroup_create("alpha-stream", "alpha-group", id="$", mkstream=True)  # nobody consumes
    topo = topology(redis_server.url)
    t0 = time.monotonic()
    res = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "run9"))
    assert res.status == "failed" and res.summary.ok == 0
    assert set(res.samples.error) == {"timeout"}
    # one timeout after the schedule, never one per round trip (40 × 0.5 s)
    assert time.monotonic() - t0 < 40 * 0.5 / 2
    # replies are outstanding: the reply stream is left with its TTL rather than deleted (a late
    # reply to a deleted key would recreate it without one)
    (key,) = r.scan_iter(match="dualbus:probe:*")
    assert key == b"dualbus:probe:run9:reply:alpha-beta"
    assert 0 < r.ttl(key) <= topo.probe.key_ttl_s
    assert "left to expire" in res.status_reason


def test_missing_engine_stream_is_not_created(redis_server: RedisProcess) -> None:
    topo = topology(redis_server.url)
    res = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "run12"))
    assert res.status == "failed"
    assert set(res.samples.error) == {"stream 'alpha-stream' does not exist (not created)"}
    r = redis.Redis.from_url(redis_server.url)
    assert list(r.scan_iter(match="*")) == []


def test_dead_bus_pair_fails_fast() -> None:
    topo = topology(f"redis://127.0.0.1:{closed_port()}/0")
    res = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "run10"))
    assert res.status == "failed" and "refused" in res.status_reason
    assert res.summary.count == 40


def test_run_all_over_a_topology(redis_server: RedisProcess,
                                 responders: list[Responder]) -> None:
    with health_server() as alpha:
        topo = topology(redis_server.url, {"alpha": alpha.url})
        t0 = time.monotonic()
        run = run_all(topo, "run11")
        elapsed = time.monotonic() - t0
    assert run.platform == "T" and run.run_id == "run11"
    assert [b.status for b in run.buses] == ["operational"]
    statuses = {e.name: e.status for e in run.engines}
    assert statuses == {"alpha": "operational", "beta": "unreachable"}
    assert [p.status for p in run.pairs] == ["operational"]
    assert run.settings["pair_count"] == 40
    assert elapsed < 30


def misbehaving(redis_url: str, a_mode: str = "forward", b_mode: str = "forward",
                b_delay_ms: float = 0.0, run_id: str = "runx", **settings_: float
                ) -> PairResult:
    a = Responder(redis_url, "alpha-stream", "alpha-group", "alpha", mode=a_mode).start()
    b = Responder(redis_url, "beta-stream", "beta-group", "beta", mode=b_mode,
                  delay_ms=b_delay_ms).start()
    try:
        topo = topology(redis_url)
        settings = topo.probe.model_copy(update={"pair_count": 20, "min_samples": 5,
                                                 **settings_})
        return asyncio.run(probe_pair(topo.pairs[0], topo, settings, run_id))
    finally:
        a.stop()
        b.stop()


def test_a_reply_from_a_is_a_short_circuit_not_a_round_trip(
        redis_server: RedisProcess) -> None:
    res = misbehaving(redis_server.url, a_mode="self")
    assert res.summary.ok == 0 and res.status == "failed"
    assert set(res.samples.error) == {
        "short-circuited: alpha replied itself instead of forwarding to beta"}


def test_a_reply_from_someone_else_does_not_count(redis_server: RedisProcess) -> None:
    res = misbehaving(redis_server.url, b_mode="impostor")
    assert res.summary.ok == 0
    assert set(res.samples.error) == {"reply from the wrong engine: 'mallory', not beta"}
    assert "round trips failed (reply from the wrong engine: 'mallory', not beta)" \
        in res.status_reason


def test_duplicate_replies_fail_their_round_trip(redis_server: RedisProcess) -> None:
    res = misbehaving(redis_server.url, b_mode="twice")
    assert res.summary.ok == 0
    assert set(res.samples.error) == {"duplicate reply (2 replies)"}


def test_foreign_correlation_ids_are_counted_and_ours_time_out(
        redis_server: RedisProcess) -> None:
    res = misbehaving(redis_server.url, b_mode="foreign")
    assert res.summary.ok == 0 and set(res.samples.error) == {"timeout"}
    assert (f"{len(res.samples)} reply(ies) with a correlation id this probe never sent"
            in res.status_reason), res.status_reason


def test_a_reply_later_than_the_timeout_of_its_own_send_fails(
        redis_server: RedisProcess) -> None:
    """B takes 0.3 s per message, one at a time, while round trips go out every 0.1 s: its
    queue grows and reply k comes back ~0.3 + 0.2 k s after its send. With a 0.5 s timeout
    only the first ones count; the others that come back before the probe stops listening are
    late, not successes (a single deadline after the last send counted them)."""
    res = misbehaving(redis_server.url, b_delay_ms=300, pair_rate_per_s=10)
    timeout_ns = 0.5e9
    late = [e for e in res.samples.error if e and e.startswith("late reply: ")]
    assert late, res.samples.error
    assert all(e is None or e.startswith(("late reply: ", "timeout"))
               for e in res.samples.error), res.samples.error
    for k in range(len(res.samples)):  # whatever counts came back within its own timeout
        if res.samples.ok[k]:
            assert res.samples.done_ns[k] - res.samples.start_ns[k] <= timeout_ns


def test_pairs_measured_together_send_on_distinct_phases(
        redis_server: RedisProcess) -> None:
    """Two pairs sharing no engine run in one wave, each first alone (the concurrency guard's
    window), and the wave's sends never fall on the same instants."""
    names = ("alpha", "beta", "gamma", "delta")
    started = [Responder(redis_server.url, f"{n}-stream", f"{n}-group", n).start()
               for n in names]
    try:
        closed = free_ports(4)
        topo = Topology.model_validate({
            "platform": "T", "buses": [{"name": "logic", "url": redis_server.url}],
            "engines": [{"name": n, "url": f"http://127.0.0.1:{closed[i]}", "bus": "logic",
                         "stream": f"{n}-stream", "group": f"{n}-group"}
                        for i, n in enumerate(names)],
            "pairs": [{"from": "alpha", "to": "beta"}, {"from": "gamma", "to": "delta"}],
            "probe": SETTINGS.model_copy(update={"pair_solo_count": 5,
                                                 "pair_concurrency": 2}).model_dump()})
        pairs = asyncio.run(probe_pairs(topo, "runw"))
    finally:
        for r in started:
            r.stop()
    assert [p.status for p in pairs] == ["operational", "operational"]
    assert all(p.summary.solo_p50 is not None for p in pairs)
    first, second = (sorted(p.samples.intended_ns) for p in pairs)
    period = 1e9 / SETTINGS.pair_rate_per_s
    offset = (second[0] - first[0]) % period
    assert offset == pytest.approx(period / 2, abs=period * 0.25)


def test_hot_path_runs_back_to_back_through_both_engines(
        redis_server: RedisProcess, responders: list[Responder]) -> None:
    """After the paced series, the runner sends `pair_hot_count` round trips one after the
    other: each leaves only when the previous reply is in, each passes A then B."""
    topo = topology(redis_server.url)
    topo = topo.model_copy(update={"probe": topo.probe.model_copy(
        update={"pair_hot_count": 15})})
    (res,) = asyncio.run(probe_pairs(topo, "runh"))
    assert res.hot is not None and res.hot_samples is not None
    assert res.hot.count == res.hot.ok == 15
    hot = res.hot_samples
    assert hot.kind == "pair_hot" and hot.target == "alpha->beta"
    for k in range(1, 15):  # one in flight: every send after the previous reply
        assert hot.start_ns[k] >= hot.done_ns[k - 1]
    r = redis.Redis.from_url(redis_server.url)
    assert r.xlen("beta-stream") == len(res.samples) + 15
    assert list(r.scan_iter(match="dualbus:probe:*")) == []


def test_hot_path_measures_a_slow_hop_and_stops_at_a_failure(
        redis_server: RedisProcess) -> None:
    from dualbus_pipeline.probes.pair_hot import probe_pair_hot_blocking

    a = Responder(redis_server.url, "alpha-stream", "alpha-group", "alpha", delay_ms=3).start()
    b = Responder(redis_server.url, "beta-stream", "beta-group", "beta").start()
    try:
        topo = topology(redis_server.url)
        batch = probe_pair_hot_blocking(topo.pairs[0], topo, topo.probe, "runs", 10)
    finally:
        a.stop()
        b.stop()
    assert all(batch.ok) and len(batch) == 10
    assert min(batch.latency_ms()) >= 3.0
    short = Responder(redis_server.url, "alpha-stream", "alpha-group", "alpha",
                      mode="self").start()
    try:
        batch = probe_pair_hot_blocking(topo.pairs[0], topo, topo.probe, "runf", 10)
    finally:
        short.stop()
    assert len(batch) == 1 and batch.error == [
        "short-circuited: alpha replied itself instead of forwarding to beta"]


def test_no_hot_path_for_a_pair_that_never_answered(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    r.xgroup_create("alpha-stream", "alpha-group", id="$", mkstream=True)  # nobody consumes
    topo = topology(redis_server.url)
    (res,) = asyncio.run(probe_pairs(topo, "runn"))
    assert res.summary.ok == 0 and res.hot is None and res.hot_samples is None
