"""The reference stack's fastapi flavour against real processes: FastAPI + uvicorn engines,
one OS process each, the probe protocol through their blocking redis-py consumer threads,
every fault seen from outside over real HTTP, and switching flavour on a running stack."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Engine, Fault, load_config
from dualbus_pipeline.errors import StackError
from dualbus_pipeline.stack import procs
from dualbus_pipeline.stack.manager import StackManager
from tests.stack_fixtures import StackFactory, make_topology

# -- helpers: what a client outside the stack sees ----------------------------------------


def get(engine: Engine) -> tuple[int, dict[str, Any], float, str | None]:
    """One GET of the engine's health path: (status, JSON body, elapsed ms, Server header)."""
    conn = http.client.HTTPConnection(engine.host, engine.port, timeout=5.0)
    try:
        t0 = time.perf_counter()
        conn.request("GET", engine.health_path)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
    finally:
        conn.close()
    return resp.status, json.loads(body), elapsed, resp.getheader("server")


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def bus_client(manager: StackManager, bus: str) -> redis.Redis:
    return redis.Redis.from_url(manager.topology.bus(bus).url, socket_timeout=5)


def probe(r: redis.Redis, first: Engine, then: Engine | None = None, timeout: float = 2.0
          ) -> tuple[str, dict[bytes, bytes] | None, float]:
    """One dualbus.probe to `first` (forwarded to `then` if given), as product.md §4.3 says:
    (correlation id, reply fields or None, round trip ms)."""
    cid = uuid.uuid4().hex
    reply_to = f"dualbus:probe:test:{cid}"
    fields = {"message_type": "dualbus.probe", "correlation_id": cid,
              "sent_ns": str(time.time_ns()), "reply_to": reply_to}
    if then is not None:
        fields["forward_to"] = then.stream
    # the reply stream exists before the probe is sent, as the probe makes it: replies are
    # XADDed with NOMKSTREAM
    init = r.xadd(reply_to, {"init": "1"})
    t0 = time.perf_counter()
    r.xadd(first.stream, fields)  # type: ignore[arg-type]
    got: Any = r.xread({reply_to: init}, block=int(timeout * 1000), count=1)
    elapsed = (time.perf_counter() - t0) * 1000
    r.delete(reply_to)
    return cid, (dict(got[0][1][0][1]) if got else None), elapsed


def wait_pending_zero(r: redis.Redis, engine: Engine, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        groups: Any = r.xinfo_groups(engine.stream)
        n = int(next(g["pending"] for g in groups if g["name"].decode() == engine.group))
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def engine_pids(manager: StackManager) -> dict[str, int]:
    return {c.name: c.pid for c in manager.status().engines if c.pid}


def assert_gone(pids: list[int], timeout: float = 5.0) -> None:
    """Every PID has exited and been reaped. A multi-threaded child (a uvicorn engine, a Redis
    server) shows as a zombie while its threads exit and cannot be reaped until they have, so
    `procs.is_alive` may call it dead before it is collected: ask again until it is gone."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if procs.is_alive(pid) or _answers_kill_0(pid)]
        if left:
            time.sleep(0.02)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _answers_kill_0(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def close(factory: StackFactory) -> None:
    """Stop every stack of `factory` (failing on a listener left behind) and check that no
    process of theirs is left, not even a zombie."""
    pids = [c.pid for m in factory.started for c in m.status().components if c.pid]
    factory.close()
    assert_gone(pids)


def start_fastapi(factory: StackFactory, path: Path,
                  faults: Mapping[str, Fault] | None = None) -> StackManager:
    """Like the `stack_factory` fixture, with the fastapi flavour."""
    manager = StackManager(load_config(path))
    factory.started.append(manager)
    manager.up(faults=faults, flavour="fastapi")
    return manager


# -- a healthy platform that looks nothing like the shipped one -----------------------------

@pytest.fixture(scope="module")
def zeta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackManager]:
    path = make_topology(
        tmp_path_factory.mktemp("zeta"),
        [{"name": "cashbook", "stream": "zeta.cashbook.cmd", "group": "cashbook-svc"},
         {"name": "fxgate", "stream": "zeta.fxgate.cmd", "group": "fxgate-svc",
          "bus": "book_bus"},
         {"name": "notary", "stream": "zeta.notary.cmd", "group": "notary-svc"}],
        buses=("tape", "book_bus"), pairs=[("cashbook", "notary")],
        health_path="/internal/healthz", platform="Zeta Settlement")
    factory = StackFactory()
    yield start_fastapi(factory, path)
    close(factory)


def test_every_engine_is_a_healthy_uvicorn_process_of_its_own(zeta: StackManager) -> None:
    status = zeta.status()
    assert status.ok and status.flavour == "fastapi"
    assert "flavour fastapi" in status.table().splitlines()[-1]
    pids = engine_pids(zeta)
    assert sorted(pids) == ["cashbook", "fxgate", "notary"]
    assert len(set(pids.values())) == 3
    r = {b: bus_client(zeta, b) for b in ("tape", "book_bus")}
    for name, pid in pids.items():
        assert "dualbus_pipeline.stack.fastapi_engine" in cmdline(pid)
        engine = zeta.topology.engine(name)
        code, body, _, server = get(engine)
        assert (code, body["status"], body["engine"]) == (200, "healthy", name)
        assert body["bus_connected"] is True
        assert server == "uvicorn"
        groups: Any = r[engine.bus].xinfo_groups(engine.stream)
        assert [g["name"].decode() for g in groups] == [engine.group]
    # access_log=False: requests leave no line in the engine's log
    log = (zeta.log_dir / "engine-notary.log").read_text()
    assert "fastapi on http://" in log and "/internal/healthz HTTP" not in log


def test_probe_protocol_round_trip_through_blocking_consumers(zeta: StackManager) -> None:
    cashbook, fxgate, notary = (zeta.topology.engine(n)
                                for n in ("cashbook", "fxgate", "notary"))
    tape = bus_client(zeta, "tape")
    cid, reply, _ = probe(tape, cashbook, notary)
    assert reply is not None
    assert reply == {b"correlation_id": cid.encode(), b"sent_ns": reply[b"sent_ns"],
                     b"replied_by": b"notary"}
    forwarded: Any = tape.xrange(notary.stream)
    assert forwarded and b"forward_to" not in forwarded[-1][1]
    assert forwarded[-1][1][b"correlation_id"] == cid.encode()
    # a direct reply from the engine on the other bus
    cid, reply, _ = probe(bus_client(zeta, "book_bus"), fxgate)
    assert reply is not None and reply[b"replied_by"] == b"fxgate"
    assert reply[b"correlation_id"] == cid.encode()
    # anything else is acked and ignored
    before = tape.xlen(notary.stream)
    tape.xadd(cashbook.stream, {"message_type": "trade", "forward_to": notary.stream})
    assert wait_pending_zero(tape, cashbook) == 0
    assert tape.xlen(notary.stream) == before
    assert wait_pending_zero(tape, notary) == 0


def test_a_spec_with_two_engines_is_refused(zeta: StackManager, tmp_path: Path) -> None:
    spec = json.loads(next((zeta.state_dir / "run").glob("*.spec.json")).read_text())
    spec["engines"] = spec["engines"] * 2
    path = tmp_path / "two.spec.json"
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "dualbus_pipeline.stack.fastapi_engine",
                          str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2
    assert "exactly one engine (got 2)" in out.stderr


# -- every fault, observed from outside ------------------------------------------------------

@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackManager]:
    path = make_topology(tmp_path_factory.mktemp("faulty-fastapi"),
                         ["relay", "mute", "sick", "gone", "flaky", "slow"])
    factory = StackFactory()
    yield start_fastapi(factory, path, faults={
        "mute": Fault(probe_protocol=False), "sick": Fault(unhealthy=True),
        "gone": Fault(down=True), "flaky": Fault(error_ratio=0.5),
        "slow": Fault(delay_ms=20)})
    close(factory)


def test_probe_protocol_off_acks_and_never_answers(faulty: StackManager) -> None:
    r = bus_client(faulty, "bus")
    relay, mute = faulty.topology.engine("relay"), faulty.topology.engine("mute")
    assert probe(r, relay, mute, timeout=1.0)[1] is None
    assert probe(r, mute, timeout=1.0)[1] is None
    assert wait_pending_zero(r, mute) == 0  # consumed and acked all the same
    assert probe(r, mute, relay)[1] is None  # not forwarded either
    _, reply, _ = probe(r, relay)
    assert reply is not None and reply[b"replied_by"] == b"relay"
    code, body, _, _ = get(mute)  # its HTTP side is unaffected
    assert (code, body["status"]) == (200, "healthy")


def test_unhealthy_answers_503(faulty: StackManager) -> None:
    code, body, _, _ = get(faulty.topology.engine("sick"))
    assert (code, body["status"], body["engine"]) == (503, "unhealthy", "sick")
    assert faulty.status().component("sick").http_status == 503


def test_down_is_not_listening(faulty: StackManager) -> None:
    gone = faulty.topology.engine("gone")
    assert refused(gone.port)
    status = faulty.status()
    assert status.ok  # expected down
    assert not status.component("gone").expected_up and status.component("gone").pid is None


def test_error_ratio_half_is_exactly_half(faulty: StackManager) -> None:
    flaky = faulty.topology.engine("flaky")
    answers = [get(flaky) for _ in range(20)]
    codes = [a[0] for a in answers]
    assert codes.count(500) == 10 and codes.count(200) == 10
    assert {a[1]["status"] for a in answers if a[0] == 500} == {"error"}


def test_delay_slows_health_and_probe_hops(faulty: StackManager) -> None:
    slow = faulty.topology.engine("slow")
    assert all(get(slow)[2] >= 20 for _ in range(5))
    r = bus_client(faulty, "bus")
    _, reply, one_hop_ms = probe(r, slow)
    assert reply is not None and one_hop_ms >= 20
    _, reply, two_hops_ms = probe(r, slow, slow)  # forwards to itself: two delayed hops
    assert reply is not None and reply[b"replied_by"] == b"slow" and two_hops_ms >= 40


# -- flavour is a property of `up` ------------------------------------------------------------

def test_switching_flavour_replaces_the_engines_and_down_stops_all(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two aiohttp engines share a process here; the fastapi flavour ignores that
    path = make_topology(tmp_path, ["ingest", "matcher"], health_path="/status/live",
                         extra={"stack": {"engines_per_host": 2}})
    cfg = load_config(path)
    manager = StackManager(cfg)
    seen: list[int] = []
    try:
        assert main(["stack", "up", "--config", str(path)]) == 0
        assert "flavour aiohttp" in capsys.readouterr().out
        before = engine_pids(manager)
        bus_pid = manager.status().component("bus", "bus").pid
        assert len(set(before.values())) == 1
        assert "dualbus_pipeline.stack.engine " in cmdline(before["ingest"])

        assert main(["stack", "up", "--config", str(path), "--flavour", "fastapi"]) == 0
        capsys.readouterr()
        after = engine_pids(manager)
        assert len(set(after.values())) == 2 and not set(after.values()) & set(before.values())
        assert not procs.is_alive(before["ingest"])
        assert all("fastapi_engine" in cmdline(pid) for pid in after.values())
        assert manager.status().component("bus", "bus").pid == bus_pid  # the bus stays
        for name in after:
            code, body, _, server = get(cfg.topology.engine(name))
            assert (code, body["status"], server) == (200, "healthy", "uvicorn")
        _, reply, _ = probe(bus_client(manager, "bus"), cfg.topology.engine("ingest"),
                            cfg.topology.engine("matcher"))
        assert reply is not None and reply[b"replied_by"] == b"matcher"

        assert main(["stack", "status", "--config", str(path)]) == 0
        assert "3/3 components up (scenario healthy, flavour fastapi)" in capsys.readouterr().out
        assert StackManager(cfg).up(flavour="fastapi").ok  # same flavour: nothing restarts
        assert engine_pids(manager) == after
        assert main(["stack", "up", "--config", str(path)]) == 0  # and back again
        assert "flavour aiohttp" in capsys.readouterr().out
        back = engine_pids(manager)
        assert len(set(back.values())) == 1 and not set(back.values()) & set(after.values())
        assert "dualbus_pipeline.stack.engine " in cmdline(back["matcher"])
        seen = [*before.values(), *after.values(), *back.values(), bus_pid or 0]
        with pytest.raises(StackError, match="unknown stack flavour 'flask'"):
            manager.up(flavour="flask")
    finally:
        assert main(["stack", "down", "--config", str(path)]) == 0
    assert_gone(seen)
    ports = [cfg.topology.bus("bus").port] + [e.port for e in cfg.topology.engines]
    assert all(refused(p) for p in ports)
    assert manager.status().flavour is None


def test_a_fastapi_engine_reconnects_after_the_bus_restarts(tmp_path: Path) -> None:
    factory = StackFactory()
    try:
        manager = start_fastapi(factory, make_topology(tmp_path, ["solo"]))
        engine_pid = engine_pids(manager)["solo"]
        bus_pid = manager.status().component("bus", "bus").pid
        assert bus_pid
        procs.terminate([bus_pid])
        manager.up(flavour="fastapi")  # restarts just the bus, empty: NOGROUP → recreate
        assert engine_pids(manager)["solo"] == engine_pid
        r = bus_client(manager, "bus")
        solo = manager.topology.engine("solo")
        deadline = time.monotonic() + 10
        reply = None
        while reply is None and time.monotonic() < deadline:
            reply = probe(r, solo, timeout=0.5)[1]
        assert reply is not None and reply[b"replied_by"] == b"solo"
    finally:
        close(factory)
