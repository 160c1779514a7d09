"""Production-safe probing (issue 9 item 4), proved on a full `dualbus run` against a real stack.

A MONITOR connection records every command the bus executes during the run. The reference
engines name their connections (CLIENT SETNAME dualbus-engine-*), so every other connection is
the probe's: its writes must touch `dualbus:probe:<run>:*` keys only, except the protocol
messages it XADDs (NOMKSTREAM) to the first engine of a pair. Afterwards no probe key is left
— or, when replies are still outstanding, only a reply stream that carries a TTL. Paced rates
are measured from the stored samples against the configured rates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
import redis

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Fault, Topology
from dualbus_pipeline.probes.pair import probe_pair
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import RedisProcess
from tests.stack_fixtures import make_topology

PROBE = {"probe": {"engine_requests": 60, "engine_rate_per_s": 300,
                   "bus_ping_count": 50, "bus_delivery_count": 120,
                   "bus_delivery_rate_per_s": 400, "bus_capacity_messages": 3000,
                   "pair_count": 30, "pair_rate_per_s": 150, "pair_timeout_s": 0.5,
                   "pair_hot_count": 10,
                   "engine_hot_requests": 10, "late_bound_ms": 50}}
WRITES = {"XADD", "XGROUP", "EXPIRE", "PEXPIRE", "EXPIREAT", "DEL", "UNLINK", "XACK", "XDEL",
          "XTRIM", "XCLAIM", "XAUTOCLAIM", "XSETID", "SET", "SETEX", "HSET", "LPUSH", "RPUSH",
          "SADD", "ZADD", "INCR", "PUBLISH", "RENAME", "COPY", "FLUSHDB", "FLUSHALL",
          "PERSIST", "RESTORE", "MOVE", "SWAPDB", "EVAL", "FCALL"}
# Everything the probe may send; docs/security.md derives the least-privilege ACL from it.
PROBE_COMMANDS = {"AUTH", "SELECT", "PING", "INFO", "XINFO", "XGROUP", "EXPIRE", "XADD",
                  "XREADGROUP", "XACK", "XREAD", "DEL", "MULTI", "EXEC", "SCAN", "TTL",
                  "TIME", "XPENDING", "XRANGE"}
TEST_CLIENT = "dualbus-test-monitor"


class Recorder:
    """MONITOR on a bus in a thread: (client address, command words) in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[tuple[str, list[str]]] = []
        self.names: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        m = redis.Redis.from_url(self.url, client_name=TEST_CLIENT)
        with m.monitor() as mon:
            self._ready.set()
            while True:
                ev: dict[str, Any] = mon.next_command()
                words = str(ev["command"]).split()
                addr = f"{ev['client_address']}:{ev['client_port']}"
                if words == ["ECHO", "stop-monitor"]:
                    return
                if [w.upper() for w in words[:2]] == ["CLIENT", "SETNAME"]:
                    self.names[addr] = words[2]
                self.commands.append((addr, words))

    def start(self) -> Recorder:
        self._thread.start()
        assert self._ready.wait(5)
        time.sleep(0.1)
        # connections opened before MONITOR started named themselves where we could not see
        for c in redis.Redis.from_url(self.url, client_name=TEST_CLIENT).client_list():
            self.names.setdefault(c["addr"], c["name"])
        return self

    def stop(self) -> None:
        redis.Redis.from_url(self.url, client_name=TEST_CLIENT).echo("stop-monitor")
        self._thread.join(10)
        assert not self._thread.is_alive()

    def by_probe(self) -> list[list[str]]:
        """Commands from connections that did not name themselves (engines and we do)."""
        return [w for addr, w in self.commands if not self.names.get(addr)]

    def by_engines(self) -> list[list[str]]:
        return [w for addr, w in self.commands
                if self.names.get(addr, "").startswith("dualbus-engine-")]


@contextmanager
def monitoring(url: str) -> Iterator[Recorder]:
    rec = Recorder(url).start()
    try:
        yield rec
    finally:
        rec.stop()


def written_keys(words: list[str]) -> list[str]:
    """The keys a write command touches (the commands the probe or engines could send)."""
    cmd = words[0].upper()
    if cmd == "XGROUP":
        return [words[2]]
    if cmd in ("DEL", "UNLINK"):
        return words[1:]
    return [words[1]]


def fields_of_xadd(words: list[str]) -> dict[str, str]:
    i = words.index("*")
    rest = words[i + 1:]
    return dict(zip(rest[::2], rest[1::2], strict=True))


def _rows(wh: Path, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _run(path: Path, wh: Path) -> str:
    assert main(["run", "--config", str(path), "--warehouse", str(wh), "--quiet"]) == 0
    ((run_id,),) = _rows(wh, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    return str(run_id)


def assert_rates_respected(wh: Path, run_id: str) -> None:
    """Paced probes never ran ahead of their configured rate (measured from stored samples)."""
    rates = {("engine_samples", "engine_http"): 300.0, ("bus_samples", "bus_delivery"): 400.0,
             ("pair_samples", "pair_roundtrip"): 150.0}
    for (table, kind), rate in rates.items():
        rows = _rows(wh, f"SELECT target, intended_ns, sent_ns FROM {table} "
                         "WHERE run_id = ? AND kind = ? ORDER BY target, seq", [run_id, kind])
        per_target: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for target, intended, sent in rows:
            per_target[target].append((int(intended), int(sent)))
        assert per_target, (table, kind)
        for target, samples in per_target.items():
            start = samples[0][0]
            for i, (intended, sent) in enumerate(samples):
                # never ahead of the schedule: by any moment t, at most rate·(t − start) + 1
                # requests have been sent
                assert sent >= intended - 50_000, (target, i)
                assert i + 1 <= rate * (sent - start) / 1e9 + 1 + 1e-6, (target, i)
            # achieved rate over the schedule (open loop: a stalled send is caught up, never
            # ahead of time, so the whole run stays within the rate)
            achieved = (len(samples) - 1) / ((samples[-1][1] - start) / 1e9)
            assert achieved <= rate * 1.01, (table, target, achieved, rate)


@pytest.fixture
def platform(tmp_path: Path,
             stack_factory: Callable[..., StackManager]) -> tuple[Path, StackManager]:
    path = make_topology(tmp_path, ["alpha", "beta", "gamma"], pairs=[("alpha", "beta")],
                         extra=PROBE)
    return path, stack_factory(path)


def test_full_run_writes_only_probe_keys_and_protocol_messages_at_capped_rates(
        platform: tuple[Path, StackManager], tmp_path: Path) -> None:
    path, stack = platform
    bus_url = stack.topology.bus("bus").url
    r = redis.Redis.from_url(bus_url)
    before = {k: r.type(k) for k in r.scan_iter(match="*")}
    wh = tmp_path / "wh.duckdb"
    with monitoring(bus_url) as rec:
        run_id = _run(path, wh)
    assert_rates_respected(wh, run_id)
    prefix = f"dualbus:probe:{run_id}:"
    probe = rec.by_probe()
    assert len(probe) > 3000  # the run really went through this recorder
    used = {w[0].upper() for w in probe}
    assert used <= PROBE_COMMANDS, used - PROBE_COMMANDS
    protocol = 0
    for words in probe:
        cmd = words[0].upper()
        if cmd not in WRITES:
            continue
        keys = written_keys(words)
        if cmd == "XADD" and keys == ["alpha-stream"]:
            # a protocol message to the pair's first engine: nothing else, never creating
            # or trimming the engine's stream
            assert words[2].upper() == "NOMKSTREAM" and "MAXLEN" not in words, words
            f = fields_of_xadd(words)
            assert set(f) == {"message_type", "correlation_id", "sent_ns", "forward_to",
                              "reply_to"}
            assert f["message_type"] == "dualbus.probe" and f["forward_to"] == "beta-stream"
            # the paced series, then the hot path on a reply stream of its own
            assert f["reply_to"] in (f"{prefix}reply:alpha-beta",
                                     f"{prefix}reply:alpha-beta:hot"), f
            protocol += 1
            continue
        assert all(k.startswith(prefix) for k in keys), words
        if cmd == "XADD":
            assert "MAXLEN" in words, words  # every probe stream is capped
    assert protocol == 30 + 10
    # the engines did their part of the protocol on their own connections
    engine_writes = [w for w in rec.by_engines() if w[0].upper() == "XADD"]
    assert sum(1 for w in engine_writes if w[1] == "beta-stream") == 30 + 10
    assert sum(1 for w in engine_writes if w[1] == f"{prefix}reply:alpha-beta") == 30
    assert sum(1 for w in engine_writes if w[1] == f"{prefix}reply:alpha-beta:hot") == 10
    # the probe created each of its keys together with its expiry, in one MULTI/EXEC
    for i, words in enumerate(probe):
        if words[0].upper() == "XGROUP" or (words[0].upper() == "XADD" and
                                            words[1].startswith(prefix) and "init" in words):
            assert probe[i - 1][0].upper() == "MULTI" and probe[i + 1][0].upper() == "EXPIRE"
    # nothing left behind, nothing else changed
    assert list(r.scan_iter(match="dualbus:probe:*")) == []
    after = {k: r.type(k) for k in r.scan_iter(match="*")}
    assert after == before


def test_rate_above_the_safety_cap_is_refused_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_topology(tmp_path, ["alpha"], extra={
        "probe": {"engine_rate_per_s": 800, "max_rate_per_s": 500}})
    wh = tmp_path / "wh.duckdb"
    assert main(["run", "--config", str(path), "--warehouse", str(wh)]) == 2
    err = capsys.readouterr().err
    assert "engine_rate_per_s=800.0 exceeds the safety cap max_rate_per_s=500.0" in err
    assert not wh.exists()


def test_late_replies_never_leave_a_key_without_ttl(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    """beta answers after the pair timeout: its replies arrive once the probe has moved on."""
    path = make_topology(tmp_path, ["alpha", "beta"], pairs=[("alpha", "beta")], extra={
        "probe": {**PROBE["probe"], "pair_count": 20, "pair_timeout_s": 0.1,
                  "engine_requests": 20, "engine_timeout_s": 0.5}})
    stack = stack_factory(path, faults={"beta": Fault(delay_ms=400)})
    r = redis.Redis.from_url(stack.topology.bus("bus").url)
    run_id = _run(path, tmp_path / "wh.duckdb")
    ((status, reason),) = _rows(tmp_path / "wh.duckdb", "SELECT status, status_reason FROM "
                                "targets WHERE run_id = ? AND scope = 'pair'", [run_id])
    assert status == "failed" and "left to expire" in reason
    deadline = time.monotonic() + 5
    key = f"dualbus:probe:{run_id}:reply:alpha-beta".encode()
    while time.monotonic() < deadline and r.xlen(key) < 21:  # init entry + 20 late replies
        time.sleep(0.1)
    assert r.xlen(key) == 21
    left = list(r.scan_iter(match="dualbus:probe:*"))
    assert left == [key]
    assert all(r.ttl(k) > 0 for k in left)


def test_pair_probe_sweeps_orphaned_reply_streams(redis_server: RedisProcess) -> None:
    """A reply later than the TTL recreates a reply stream with no expiry; the next pair probe
    deletes such orphans (and nothing else)."""
    r = redis.Redis.from_url(redis_server.url)
    for n in ("alpha", "beta"):
        r.xgroup_create(f"{n}-stream", f"{n}-group", id="$", mkstream=True)
    r.xadd("dualbus:probe:old:reply:a-b", {"correlation_id": "x"})           # orphan
    r.xadd("dualbus:probe:live:reply:a-b", {"init": "1"})
    r.expire("dualbus:probe:live:reply:a-b", 300)                            # a live run's
    r.xadd("app:reply:a-b", {"x": "1"})                                      # not ours
    topo = Topology.model_validate({
        "platform": "T", "buses": [{"name": "b", "url": redis_server.url}],
        "engines": [{"name": n, "url": f"http://127.0.0.1:{9 + i}", "bus": "b",
                     "stream": f"{n}-stream", "group": f"{n}-group"}
                    for i, n in enumerate(("alpha", "beta"))],
        "pairs": [{"from": "alpha", "to": "beta"}],
        "probe": {"pair_count": 5, "pair_timeout_s": 0.1}})
    asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "now"))
    left = sorted(r.scan_iter(match="*reply*"))
    assert left == [b"app:reply:a-b", b"dualbus:probe:live:reply:a-b",
                    b"dualbus:probe:now:reply:alpha-beta"]
