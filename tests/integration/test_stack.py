"""The reference stack against real processes: up/down/status, every fault seen from outside,
the probe protocol through a real Redis round trip, idempotence, and port conflicts."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Engine, Fault, load_config
from dualbus_pipeline.errors import StackError
from dualbus_pipeline.stack import procs
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import port_is_open
from dualbus_pipeline.stack.synthetic import synthetic_topology
from tests.stack_fixtures import StackFactory, make_topology

PROBE_TIMEOUT_S = 2.0


# -- helpers: what a client outside the stack sees ----------------------------------------

def get(engine: Engine, timeout: float = 2.0) -> tuple[int, dict[str, object], float]:
    """One GET of the engine's health path: (status, JSON body, elapsed ms)."""
    conn = http.client.HTTPConnection(engine.host, engine.port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request("GET", engine.health_path)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
    finally:
        conn.close()
    return resp.status, json.loads(body), elapsed


def request(engine: Engine, method: str, path: str) -> int:
    """One request to the engine's port: its status code."""
    conn = http.client.HTTPConnection(engine.host, engine.port, timeout=2.0)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def bus_client(manager: StackManager, bus: str) -> redis.Redis:
    return redis.Redis.from_url(manager.topology.bus(bus).url, socket_timeout=5)


def probe(r: redis.Redis, first: Engine, then: Engine | None = None,
          timeout: float = PROBE_TIMEOUT_S) -> tuple[dict[bytes, bytes] | None, float]:
    """Send one dualbus.probe to `first` (forwarded to `then` if given); wait for the reply on
    a fresh reply stream. Returns (reply fields or None, round trip ms)."""
    cid = uuid.uuid4().hex
    reply_to = f"dualbus:probe:test:{cid}"
    fields = {"message_type": "dualbus.probe", "correlation_id": cid,
              "sent_ns": str(time.time_ns()), "reply_to": reply_to}
    if then is not None:
        fields["forward_to"] = then.stream
    t0 = time.perf_counter()
    r.xadd(first.stream, fields)  # type: ignore[arg-type]
    got: Any = r.xread({reply_to: "0"}, block=int(timeout * 1000), count=1)
    elapsed = (time.perf_counter() - t0) * 1000
    r.delete(reply_to)
    if not got:
        return None, elapsed
    _stream, entries = got[0]
    return dict(entries[0][1]), elapsed


def pending(r: redis.Redis, engine: Engine) -> int:
    groups: Any = r.xinfo_groups(engine.stream)
    return int(next(g["pending"] for g in groups if g["name"].decode() == engine.group))


def wait_pending_zero(r: redis.Redis, engine: Engine, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while (n := pending(r, engine)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return n


def pids_of(manager: StackManager) -> dict[str, int]:
    return {c.kind + ":" + c.name: c.pid for c in manager.status().components if c.pid}


# -- a topology that looks nothing like the shipped one ---------------------------------

@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    return make_topology(
        tmp_path,
        [{"name": "ledger", "stream": "acme:ledger:in", "group": "ledger-workers"},
         {"name": "pricer", "stream": "acme:pricer:in", "group": "pricer-workers",
          "bus": "orders_bus"},
         {"name": "audit", "stream": "acme:audit:in", "group": "audit-workers"}],
        buses=("quotes", "orders_bus"), pairs=[("ledger", "audit")],
        health_path="/_meta/alive", platform="Acme Clearing")


def test_up_status_probe_protocol_and_down(foreign: Path) -> None:
    cfg = load_config(foreign)
    manager = StackManager(cfg)
    try:
        status = manager.up()
        assert status.ok
        assert [(c.kind, c.name) for c in status.components] == [
            ("bus", "quotes"), ("bus", "orders_bus"),
            ("engine", "ledger"), ("engine", "pricer"), ("engine", "audit")]
        assert all(c.up and c.pid for c in status.components)
        assert manager.state_dir == foreign.parent / "warehouse" / "stack"
        # one process per engine: each can be killed on its own
        assert len({c.pid for c in status.engines}) == 3

        ledger, pricer, audit = (cfg.topology.engine(n) for n in ("ledger", "pricer", "audit"))
        code, body, _ = get(pricer)
        assert (code, body["status"], body["engine"]) == (200, "healthy", "pricer")
        # one route per engine: another path is 404, another method 405 (GET and HEAD serve)
        assert request(pricer, "GET", "/health") == 404
        assert request(pricer, "POST", pricer.health_path) == 405
        assert request(pricer, "HEAD", pricer.health_path) == 200
        # and no access log: a thousand engines must not write a line per request
        for _ in range(5):
            get(pricer)
        log = (manager.log_dir / "engine-pricer.log").read_text()
        assert "pricer: listening on" in log and pricer.health_path + " HTTP" not in log

        quotes = bus_client(manager, "quotes")
        # forward: ledger → audit's stream → audit replies; the reply names the last hop
        reply, _ = probe(quotes, ledger, audit)
        assert reply is not None
        assert reply[b"replied_by"] == b"audit"
        assert set(reply) == {b"correlation_id", b"sent_ns", b"replied_by"}
        # the forwarded copy carries every field but forward_to
        fwd: Any = quotes.xrange(audit.stream)
        assert fwd and b"forward_to" not in fwd[-1][1]
        assert fwd[-1][1][b"message_type"] == b"dualbus.probe"
        # direct reply from an engine on the other bus
        reply, _ = probe(bus_client(manager, "orders_bus"), pricer)
        assert reply is not None and reply[b"replied_by"] == b"pricer"
        # other messages are acked and ignored (no reply, nothing forwarded)
        before = quotes.xlen(audit.stream)
        quotes.xadd(ledger.stream, {"message_type": "trade", "forward_to": audit.stream})
        assert wait_pending_zero(quotes, ledger) == 0
        assert quotes.xlen(audit.stream) == before

        # kill one engine: only it goes down
        manager.kill("pricer")
        status = manager.status()
        assert not status.component("pricer").up
        assert status.component("ledger").up and status.component("audit").up
        assert refused(pricer.port)
        pids = [c.pid for c in manager.status().components if c.pid]
    finally:
        manager.down()

    ports = [b.port for b in cfg.topology.buses] + [e.port for e in cfg.topology.engines]
    assert all(refused(p) for p in ports)
    assert not any(procs.is_alive(p) for p in pids)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    status = manager.status()
    assert not any(c.up or c.pid for c in status.components)
    assert not list((manager.state_dir / "run").glob("*.json"))


def test_up_is_idempotent_and_restarts_only_changed_engines(
        foreign: Path, stack_factory: Callable[..., StackManager]) -> None:
    manager = stack_factory(foreign)
    first = pids_of(manager)
    again = StackManager(manager.cfg)  # a second `dualbus stack up` in another process
    status = again.up()
    assert status.ok and pids_of(again) == first
    status = again.up(faults={"audit": Fault(unhealthy=True)})
    after = pids_of(again)
    assert after["engine:audit"] != first["engine:audit"]
    assert {k: v for k, v in after.items() if k != "engine:audit"} == \
        {k: v for k, v in first.items() if k != "engine:audit"}
    assert status.component("audit").http_status == 503


# -- every fault, observed from outside, on one shared stack ----------------------------

@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackManager]:
    path = make_topology(
        tmp_path_factory.mktemp("faulty"),
        ["ok", "gone", "sick", "slow", "flaky", "mute"],
        faults={"sick": {"unhealthy": True}, "mute": {"probe_protocol": False}})
    factory = StackFactory()
    # faults both from the config's stack: section and from the caller
    yield factory(path, faults={"gone": Fault(down=True), "slow": Fault(delay_ms=40),
                                "flaky": Fault(error_ratio=0.3)})
    factory.close()


def test_status_reports_faults(faulty: StackManager) -> None:
    status = faulty.status()
    assert status.ok  # the down engine is expected down
    gone = status.component("gone")
    assert not gone.up and not gone.expected_up and gone.pid is None
    assert "fault: down" in gone.detail
    assert status.component("sick").http_status == 503


def test_down_fault_is_not_listening(faulty: StackManager) -> None:
    assert refused(faulty.topology.engine("gone").port)
    reply, _ = probe(bus_client(faulty, "bus"), faulty.topology.engine("gone"), timeout=0.3)
    assert reply is None


def test_unhealthy_fault_answers_503(faulty: StackManager) -> None:
    code, body, _ = get(faulty.topology.engine("sick"))
    assert code == 503 and body["status"] == "unhealthy"
    code, body, _ = get(faulty.topology.engine("ok"))
    assert code == 200 and body["status"] == "healthy"


def test_delay_fault_slows_health_and_probe_hops(faulty: StackManager) -> None:
    ok, slow = faulty.topology.engine("ok"), faulty.topology.engine("slow")
    fast_ms = statistics.median(get(ok)[2] for _ in range(20))
    slow_ms = [get(slow)[2] for _ in range(10)]
    assert min(slow_ms) >= 40
    assert statistics.median(slow_ms) < 40 + 30
    assert fast_ms < 20
    r = bus_client(faulty, "bus")
    reply, direct_ms = probe(r, slow)  # one slow hop
    assert reply is not None and direct_ms >= 40
    reply, two_hops_ms = probe(r, slow, slow)  # slow forwards to itself: two slow hops
    assert reply is not None and reply[b"replied_by"] == b"slow" and two_hops_ms >= 80
    reply, ok_ms = probe(r, ok)
    assert reply is not None and ok_ms < 40


def test_error_ratio_fault_share_of_500s(faulty: StackManager) -> None:
    flaky = faulty.topology.engine("flaky")
    codes = [get(flaky)[0] for _ in range(200)]
    assert set(codes) == {200, 500}
    assert abs(codes.count(500) / 200 - 0.3) <= 0.03


def test_probe_protocol_off_acks_but_never_replies(faulty: StackManager) -> None:
    r = bus_client(faulty, "bus")
    mute, ok = faulty.topology.engine("mute"), faulty.topology.engine("ok")
    reply, _ = probe(r, mute, timeout=0.5)
    assert reply is None
    before = r.xlen(ok.stream)
    reply, _ = probe(r, mute, ok, timeout=0.5)
    assert reply is None and r.xlen(ok.stream) == before
    assert wait_pending_zero(r, mute) == 0  # consumed and acked all the same
    assert probe(r, ok)[0] is not None  # the protocol works on a healthy engine
    code, body, _ = get(mute)  # and its HTTP side is unaffected
    assert code == 200 and body["status"] == "healthy"


# -- scenarios, conflicts, resilience, CLI ------------------------------------------------

def test_seed_scenario_on_a_foreign_topology_uses_what_exists(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    # only websocket and vpin exist here; config overrides the scenario for vpin
    path = make_topology(tmp_path, ["websocket", "vpin", "alpha"],
                         faults={"vpin": {"delay_ms": 1}})
    manager = stack_factory(path, scenario="seed")
    status = manager.status()
    assert status.scenario == "seed"
    assert not status.component("websocket").up
    assert status.component("vpin").http_status == 200  # config won over "unhealthy"
    assert status.component("alpha").http_status == 200
    with pytest.raises(StackError, match="unknown scenario 'nope'"):
        manager.up("nope")


def test_taken_port_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    path = make_topology(tmp_path, ["alpha", "beta"])
    cfg = load_config(path)
    beta = cfg.topology.engine("beta")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", beta.port))
    squatter.listen()
    manager = StackManager(cfg)
    try:
        with pytest.raises(StackError) as exc:
            manager.up()
        msg = str(exc.value)
        assert f"port {beta.port} (engine beta)" in msg and "\n" not in msg
        assert refused(cfg.topology.bus("bus").port)
        assert refused(cfg.topology.engine("alpha").port)
    finally:
        squatter.close()
        manager.down()


def test_engines_reconnect_after_the_bus_restarts(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    manager = stack_factory(make_topology(tmp_path, ["alpha"]))
    bus_pid = manager.status().component("bus", "bus").pid
    assert bus_pid
    procs.terminate([bus_pid])
    assert manager.status().component("bus", "bus").up is False
    manager.up()  # restarts just the bus, empty: the engine must recreate its group
    r = bus_client(manager, "bus")
    alpha = manager.topology.engine("alpha")
    deadline = time.monotonic() + 8
    reply = None
    while reply is None and time.monotonic() < deadline:
        reply, _ = probe(r, alpha, timeout=0.5)
    assert reply is not None and reply[b"replied_by"] == b"alpha"


def test_cli_synthetic_engines_status_and_down(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = make_topology(tmp_path, ["alpha"])
    base_port = _free_range(5)
    assert main(["stack", "up", "--config", str(base), "--engines", "5",
                 "--engines-per-host", "3", "--base-port", str(base_port)]) == 0
    out = capsys.readouterr().out
    topo_path = Path(out.strip().splitlines()[-1].removeprefix("topology: "))
    try:
        synth = load_config(topo_path)
        assert [e.port for e in synth.topology.engines] == list(range(base_port, base_port + 5))
        assert main(["stack", "status", "--config", str(topo_path)]) == 0
        table = capsys.readouterr().out
        assert "6/6 components up" in table
        status = StackManager(synth).status()
        assert len({c.pid for c in status.engines}) == 2  # 3 + 2 engines per process
        e0, e1 = synth.topology.engine("e0000"), synth.topology.engine("e0001")
        reply, _ = probe(redis.Redis.from_url(synth.topology.buses[0].url), e0, e1)
        assert reply is not None and reply[b"replied_by"] == b"e0001"
    finally:
        assert main(["stack", "down", "--config", str(base)]) == 0
    assert all(refused(p) for p in range(base_port, base_port + 5))
    assert main(["stack", "status", "--config", str(base)]) == 0
    assert "0/2 components up" in capsys.readouterr().out


def test_a_faulted_engine_gets_a_process_of_its_own(tmp_path: Path) -> None:
    """With several engines per process, a slow engine must not share an event loop with
    healthy ones (its delay would become theirs): it runs alone, and can be killed alone."""
    base_port = _free_range(5)
    synth = synthetic_topology(load_config(make_topology(tmp_path, ["alpha"])), 5,
                               tmp_path / "stack", base_port=base_port, engines_per_host=3)
    manager = StackManager(synth, tmp_path / "stack")
    try:
        assert manager.up("healthy", faults={"e0001": Fault(delay_ms=20)}).ok
        pids = {c.name: c.pid for c in manager.status().engines}
        others = {n: pid for n, pid in pids.items() if n != "e0001"}
        assert pids["e0001"] not in others.values()
        assert len(set(others.values())) == 2  # 4 healthy engines striped over 2 processes
        manager.kill("e0001")
        assert refused(base_port + 1) and not refused(base_port)
    finally:
        manager.down()


def test_cli_error_is_one_line_exit_1(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = make_topology(tmp_path, ["alpha"])
    bus_port = urlsplit(load_config(path).topology.bus("bus").url).port
    assert bus_port
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", bus_port))
    squatter.listen()
    try:
        assert main(["stack", "up", "--config", str(path)]) == 1
    finally:
        squatter.close()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dualbus: port {bus_port} (bus bus) already in use")
    assert len(err.splitlines()) == 1
    assert not port_is_open("127.0.0.1", bus_port)


def _free_range(n: int) -> int:
    """A base port with n consecutive free ports above it."""
    for base in range(31000 + os.getpid() % 2000 * 10, 60000, 97):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_engine_spec_files_are_owner_only(faulty: StackManager) -> None:
    """Engine host specs carry the bus URL (password included): mode 0600."""
    specs = list((faulty.state_dir / "run").glob("*.spec.json"))
    assert specs
    for spec in specs:
        assert spec.stat().st_mode & 0o777 == 0o600, spec
