"""The fault matrix (issue 9 item 1; table in docs/reliability.md): real processes only.

Engines are pathological HTTP servers in a child process (tests/fault_servers.py), buses are
real redis-servers on free ports that the test kills and restarts, cross-engine pairs and
alert sinks run against the reference stack. Every case drives `dualbus run` end to end and
then reads the warehouse: the recorded classification and reason, and complete sample counts
(nothing lost, nothing half-written). Warehouse and input faults must refuse before probing:
their topology points at "witness" listening sockets that nothing may connect to.

To keep the file fast, cases that share a setup share one pipeline run (module fixtures):
`engine_run` (12 engines, one per HTTP fault), `bus_run` (a bus down at start, one killed and
one restarted mid-probe), `stack_run` (a pair whose target ignores the probe protocol, and
two broken alert sinks).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Fault, load_config
from dualbus_pipeline.stack.redis_server import RedisProcess, start_redis
from dualbus_pipeline.store import Warehouse
from tests.fault_servers import FaultServers
from tests.stack_fixtures import StackFactory, make_topology

REPO = Path(__file__).resolve().parents[2]
N_REQ = 40
N_PING = 40
N_DELIVERY = 60
N_PAIR = 10
PROBE: dict[str, Any] = {
    "engine_requests": N_REQ, "engine_rate_per_s": 200, "engine_timeout_s": 1.0,
    "bus_ping_count": N_PING, "bus_delivery_count": N_DELIVERY, "bus_delivery_rate_per_s": 200,
    "bus_capacity_messages": 2000, "bus_timeout_s": 0.3,
    "pair_count": N_PAIR, "pair_rate_per_s": 100, "pair_timeout_s": 0.5, "min_samples": 5,
    # the paced series only (the hot path has tests of its own), and a late bound generous
    # enough that a busy other core never makes the probe re-take: counts below are exact
    "engine_hot_requests": 0, "late_bound_ms": 50,
}


# --- helpers -------------------------------------------------------------------------------

def rows(wh: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def one(wh: Path, sql: str, params: list[Any] | None = None) -> Any:
    (row,) = rows(wh, sql, params)
    return row[0]


def target(wh: Path, scope: str, name: str) -> tuple[str, str]:
    (row,) = rows(wh, "SELECT status, status_reason FROM targets WHERE scope = ? AND target = ?",
                  [scope, name])
    return str(row[0]), str(row[1])


def errors(wh: Path, table: str, name: str, kind: str | None = None) -> dict[str | None, int]:
    sql = f"SELECT error, count(*) FROM {table} WHERE target = ? AND NOT replaced"
    params: list[Any] = [name]
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    return {e: int(n) for e, n in rows(wh, sql + " GROUP BY error", params)}


def assert_run_whole(wh: Path) -> str:
    """Exactly one run, completed, with samples, summaries and verdicts; returns its id."""
    ((run_id, status, error),) = rows(wh, "SELECT run_id, status, error FROM runs")
    assert status == "completed", error
    for table in ("summaries", "targets", "slo_results"):
        assert one(wh, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]) > 0, table
    return str(run_id)


def run_cli(*args: str) -> int:
    return main(["run", "--quiet", *args])


@dataclass
class Witness:
    """Listening sockets standing in for a bus and an engine; nothing may connect to them."""
    config: Path
    socks: list[socket.socket] = field(default_factory=list)

    def assert_untouched(self) -> None:
        for s in self.socks:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.accept()  # a pending connection would mean something was probed


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Witness]:
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        socks.append(s)
    bport, eport = (s.getsockname()[1] for s in socks)
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text(
        "platform: Witness\n"
        f"buses: [{{name: bus, url: 'redis://127.0.0.1:{bport}/0'}}]\n"
        f"engines: [{{name: eng, url: 'http://127.0.0.1:{eport}', bus: bus, "
        "stream: eng-stream, group: eng-group}]\n"
        "warehouse: wh/dualbus.duckdb\n")
    yield Witness(cfg, socks)
    for s in socks:
        s.close()


# --- engines: one run, twelve HTTP faults ----------------------------------------------------

ENGINE_FAULTS: dict[str, str | dict[str, Any]] = {
    "healthy": "ok",
    "blackhole": "blackhole",
    "slow": {"kind": "slow", "delay_s": 2.5},
    "e503": "http503",
    "err25": {"kind": "error_share", "ratio": 0.25},
    "garbage": "garbage",
    "junkbody": "garbage_body",
    "huge": {"kind": "huge", "size_mb": 50},
    "midclose": "midclose",
    "flap": {"kind": "flap", "up_s": 0.05, "down_s": 0.05},
    "nostream": "ok",
    "nogroup": "ok",
}


@dataclass
class EngineRun:
    wh: Path
    seconds: float


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRun]:
    base = tmp_path_factory.mktemp("engines")
    names = ["refused", *ENGINE_FAULTS]
    cfg = load_config(make_topology(base, names, extra={"probe": PROBE}))
    redis = start_redis(cfg.topology.buses[0].port, base / "redis")
    servers = FaultServers({cfg.topology.engine(n).port: k
                            for n, k in ENGINE_FAULTS.items()}).start()
    try:
        # every engine stream exists with its group, except nostream's (none) and nogroup's
        # (stream without the group)
        import redis as redis_py
        r = redis_py.Redis.from_url(redis.url)
        for e in cfg.topology.engines:
            if e.name == "nogroup":
                r.xadd(e.stream, {"x": "1"})
            elif e.name != "nostream":
                r.xgroup_create(e.stream, e.group, id="$", mkstream=True)
        r.close()
        wh = base / "wh.duckdb"
        t0 = time.monotonic()
        assert run_cli("--config", str(cfg.path), "--warehouse", str(wh)) == 0
        yield EngineRun(wh, time.monotonic() - t0)
    finally:
        servers.stop()
        redis.stop()


def test_engine_runs_are_whole_and_bounded(engine_run: EngineRun) -> None:
    wh = engine_run.wh
    assert_run_whole(wh)
    n_engines = 1 + len(ENGINE_FAULTS)
    # nothing lost: every engine has every sample and a summary, even the broken ones
    assert one(wh, "SELECT count(*) FROM engine_samples WHERE NOT replaced") == n_engines * N_REQ
    assert one(wh, "SELECT count(DISTINCT target) FROM summaries WHERE scope = 'engine'") \
        == n_engines
    # a 50 MB body, a black hole and a 2.5 s answer with a 1 s timeout: still bounded
    assert engine_run.seconds < 30


def test_engine_refuses_connections(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "refused")
    assert status == "unreachable"
    assert reason.startswith("no connection could be made (") and "refused" in reason
    assert set(errors(engine_run.wh, "engine_samples", "refused")) <= {"refused", "timeout"}


def test_engine_accepts_but_never_answers(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "blackhole")
    assert status == "unhealthy"
    assert reason == f"{N_REQ}/{N_REQ} requests failed (timeout ×{N_REQ})"


def test_engine_answers_past_the_timeout(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "slow")
    assert status == "unhealthy" and reason.endswith(f"(timeout ×{N_REQ})")
    assert errors(engine_run.wh, "engine_samples", "slow") == {"timeout": N_REQ}
    # latency of a timed-out sample is the time the probe gave up, never a fake success
    lat = one(engine_run.wh, "SELECT max(latency_ms) FROM engine_samples WHERE target = 'slow'")
    assert 950 <= lat < 2500


def test_engine_503(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "e503")
    assert status == "unhealthy"
    assert reason == f"{N_REQ}/{N_REQ} requests failed (http 503 ×{N_REQ})"
    assert one(engine_run.wh, "SELECT count(*) FROM engine_samples WHERE target = 'e503' "
                              "AND status = 503") == N_REQ


def test_engine_500_on_a_share_of_requests(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "err25")
    assert status == "degraded"
    failed = errors(engine_run.wh, "engine_samples", "err25").get("http 500", 0)
    assert abs(failed - N_REQ // 4) <= 1  # exactly 25 % (±1: warm-up GETs share the counter)
    assert reason == f"{failed}/{N_REQ} requests failed (http 500 ×{failed})"
    ratio = one(engine_run.wh, "SELECT success_ratio FROM summaries WHERE target = 'err25'")
    assert ratio == pytest.approx((N_REQ - failed) / N_REQ)


def test_engine_garbage_reply(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "garbage")
    assert status == "unhealthy"
    assert "bad response: malformed (Expected HTTP/" in reason, reason
    assert one(engine_run.wh, "SELECT count(*) FROM engine_samples WHERE target = 'garbage' "
                              "AND ok") == 0


def test_engine_junk_body_with_200_is_judged_by_status(engine_run: EngineRun) -> None:
    """A 2xx whose body is not JSON carries no health status: by the documented rule the
    sample is ok (docs/probes.md), so the engine is operational."""
    status, _ = target(engine_run.wh, "engine", "junkbody")
    assert status == "operational"


def test_engine_huge_body_is_capped(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "huge")
    assert status == "unhealthy"
    assert reason.startswith(f"{N_REQ}/{N_REQ} requests failed (")
    assert "bad response: response body too large ×" in reason
    # the probe stops reading at 1 MiB (probes/http.py MAX_BODY_BYTES); requests queued
    # behind a server busy pushing 50 MB bodies time out instead
    errs = errors(engine_run.wh, "engine_samples", "huge")
    assert set(errs) <= {"bad response: response body too large", "timeout"}, errs


def test_engine_closes_mid_response(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "midclose")
    assert status == "unhealthy"
    assert errors(engine_run.wh, "engine_samples", "midclose") == {"connection closed": N_REQ}
    assert reason == f"{N_REQ}/{N_REQ} requests failed (connection closed ×{N_REQ})"


def test_engine_flaps_during_the_probe(engine_run: EngineRun) -> None:
    status, reason = target(engine_run.wh, "engine", "flap")
    errs = errors(engine_run.wh, "engine_samples", "flap")
    ok = errs.pop(None, 0)
    assert 0 < ok < N_REQ, errs  # some answered, some did not
    assert set(errs) <= {"refused", "connection closed", "connection reset", "timeout"}, errs
    assert status in ("degraded", "unhealthy")
    assert reason.startswith(f"{N_REQ - ok}/{N_REQ} requests failed (")


def test_consumer_group_missing(engine_run: EngineRun) -> None:
    ((present, length, err),) = rows(
        engine_run.wh, "SELECT present, length, error FROM stream_stats WHERE engine = 'nogroup'")
    assert present and length == 1
    assert err == "consumer group 'nogroup-group' does not exist"
    assert target(engine_run.wh, "engine", "nogroup")[0] == "operational"  # HTTP is fine


def test_stream_missing(engine_run: EngineRun) -> None:
    ((present, err),) = rows(
        engine_run.wh, "SELECT present, error FROM stream_stats WHERE engine = 'nostream'")
    assert not present and err == "stream does not exist"
    ((present, lag, err),) = rows(
        engine_run.wh, "SELECT present, lag, error FROM stream_stats WHERE engine = 'healthy'")
    assert present and lag == 0 and err is None


# --- buses: down at start, killed mid-probe, restarted mid-probe ------------------------------

def _keys(port: int, pattern: str) -> bool:
    """True when a key matching `pattern` exists (raw RESP; False if the server is gone)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(f"*2\r\n$4\r\nKEYS\r\n${len(pattern)}\r\n{pattern}\r\n".encode())
            return not s.recv(64).startswith(b"*0")
    except OSError:
        return False


class BusSaboteur(threading.Thread):
    """Kills a bus (SIGKILL) the moment its delivery phase starts; optionally restarts it."""

    def __init__(self, proc: RedisProcess, restart: Callable[[], RedisProcess] | None) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.restart = restart
        self.killed_at: float | None = None
        self.restarted: RedisProcess | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if _keys(self.proc.port, "dualbus:probe:*:delivery"):
                time.sleep(0.1)  # some deliveries go out first
                os.kill(self.proc.pid, signal.SIGKILL)
                if self.proc.proc is not None:
                    self.proc.proc.wait()
                self.killed_at = time.monotonic()
                if self.restart is not None:
                    self.restarted = self.restart()
                return
            time.sleep(0.002)


@dataclass
class BusRun:
    wh: Path
    killer: BusSaboteur
    restarter: BusSaboteur


@pytest.fixture(scope="module")
def bus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusRun]:
    base = tmp_path_factory.mktemp("buses")
    path = make_topology(base, [{"name": "d1", "bus": "dead"}, {"name": "d2", "bus": "dead"},
                                {"name": "k1", "bus": "killed"}],
                         buses=("dead", "killed", "restarted"), pairs=[("d1", "d2")],
                         # 1 s: the window in which the probe retries a refused connect, so a
                         # restart on a loaded 2-core host still lands inside it
                         extra={"probe": {**PROBE, "bus_timeout_s": 1.0}})
    cfg = load_config(path)
    killed = cfg.topology.bus("killed")
    restarted = cfg.topology.bus("restarted")
    procs = [start_redis(killed.port, base / "killed"),
             start_redis(restarted.port, base / "restarted")]
    servers = FaultServers({cfg.topology.engine(n).port: "ok" for n in ("d1", "d2", "k1")})
    killer = BusSaboteur(procs[0], None)
    restarter = BusSaboteur(procs[1], lambda: start_redis(restarted.port, base / "restarted2"))
    try:
        servers.start()
        killer.start()
        restarter.start()
        wh = base / "wh.duckdb"
        assert run_cli("--config", str(path), "--warehouse", str(wh)) == 0
        yield BusRun(wh, killer, restarter)
    finally:
        killer.stop.set()
        restarter.stop.set()
        killer.join(5)
        restarter.join(5)
        servers.stop()
        for p in procs:
            p.stop()
        if restarter.restarted is not None:
            restarter.restarted.stop()


def test_bus_runs_are_whole(bus_run: BusRun) -> None:
    wh = bus_run.wh
    assert_run_whole(wh)
    assert one(wh, "SELECT count(*) FROM bus_samples WHERE NOT replaced") == \
        3 * (N_PING + N_DELIVERY)
    assert one(wh, "SELECT count(*) FROM pair_samples WHERE NOT replaced") == N_PAIR


def test_bus_down_at_start(bus_run: BusRun) -> None:
    wh = bus_run.wh
    status, reason = target(wh, "bus", "dead")
    assert status == "unreachable"
    assert reason == "no PING or delivery succeeded (refused)"
    assert one(wh, "SELECT count(*) FROM bus_samples WHERE target = 'dead' AND ok") == 0
    for e, n in errors(wh, "bus_samples", "dead").items():
        assert e in ("refused", "not attempted: refused"), (e, n)
    # the engines' streams on it are reported unread, the pair over it failed
    for (err,) in rows(wh, "SELECT error FROM stream_stats WHERE bus = 'dead'"):
        assert err == "not read: refused"
    status, reason = target(wh, "pair", "d1->d2")
    assert status == "failed" and reason.startswith("could not use bus: refused")
    assert errors(wh, "pair_samples", "d1->d2") == {"not attempted: refused": N_PAIR}


def test_bus_killed_mid_probe(bus_run: BusRun) -> None:
    wh = bus_run.wh
    assert bus_run.killer.killed_at is not None, "the saboteur never saw the delivery phase"
    status, reason = target(wh, "bus", "killed")
    assert status == "degraded"
    assert f"PING success {1:.1%}" not in reason
    assert reason.startswith("delivery success ")
    assert "capacity: setup failed: " in reason  # refused, or reset by the dying server
    delivered = one(wh, "SELECT count(*) FROM bus_samples WHERE target = 'killed' "
                        "AND kind = 'bus_delivery' AND ok")
    assert delivered < N_DELIVERY
    errs = errors(wh, "bus_samples", "killed", "bus_delivery")
    errs.pop(None, None)
    assert errs and all(e and ("refused" in e or "closed" in e or "reset" in e
                               or e == "timeout") for e in errs), errs
    assert one(wh, "SELECT throughput FROM targets WHERE target = 'killed'") is None


def test_bus_restarted_mid_probe(bus_run: BusRun) -> None:
    wh = bus_run.wh
    assert bus_run.restarter.restarted is not None
    status, reason = target(wh, "bus", "restarted")
    assert status == "degraded" and reason.startswith("delivery success ")
    assert one(wh, "SELECT count(*) FROM bus_samples WHERE target = 'restarted' "
                   "AND kind = 'bus_delivery' AND NOT ok") > 0
    # the probe came back with the bus: the capacity burst after the restart was measured
    assert one(wh, "SELECT throughput FROM targets WHERE target = 'restarted'") > 0
    # and its probe keys are gone from the new server (cleanup reconnected)
    assert not _keys(bus_run.restarter.restarted.port, "dualbus:probe:*")


# --- the reference stack: protocol ignored, alert sinks down and slow ------------------------

@dataclass
class StackRun:
    wh: Path
    seconds: float
    down_sink: str
    slow_sink: str


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    base = tmp_path_factory.mktemp("stackrun")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there any more: the sink is down
    slow = socket.socket()  # accepts (backlog) and never answers: a hung sink
    slow.bind(("127.0.0.1", 0))
    slow.listen(64)
    slow_port = slow.getsockname()[1]
    down_sink = f"json://127.0.0.1:{dead_port}/hook"
    slow_sink = f"json://127.0.0.1:{slow_port}/hook?rto=1&cto=1"
    path = make_topology(base, ["a", "b"], pairs=[("a", "b")], extra={
        "probe": PROBE, "alerts": [{"url": down_sink}, {"url": slow_sink}]})
    factory = StackFactory()
    try:
        factory(path, faults={"b": Fault(probe_protocol=False)})
        wh = base / "wh.duckdb"
        t0 = time.monotonic()
        assert run_cli("--config", str(path), "--warehouse", str(wh)) == 0
        yield StackRun(wh, time.monotonic() - t0, down_sink, slow_sink)
    finally:
        factory.close()
        slow.close()


def test_engine_ignoring_the_probe_protocol(stack_run: StackRun) -> None:
    wh = stack_run.wh
    assert_run_whole(wh)
    status, reason = target(wh, "pair", "a->b")
    assert status == "failed"
    # b's group read and acknowledged every forwarded message, and b never replied
    why = "no probe protocol on b: it consumed the forwarded message but neither " \
          "forwarded nor replied"
    assert reason.startswith(f"{N_PAIR}/{N_PAIR} round trips failed ({why})"), reason
    assert errors(wh, "pair_samples", "a->b") == {why: N_PAIR}
    # the engines themselves are fine: only the round trip is failed
    assert target(wh, "engine", "b")[0] == "operational"
    assert one(wh, "SELECT passed FROM slo_results WHERE target = 'a->b' "
                   "AND slo = 'pair_success_ratio'") is False


@pytest.mark.parametrize("which", ["down", "slow"])
def test_alert_sink_down_or_slow(stack_run: StackRun, which: str) -> None:
    wh = stack_run.wh
    assert_run_whole(wh)  # a broken sink never fails the run
    assert stack_run.seconds < 60
    sink_index = 0 if which == "down" else 1
    out = rows(wh, "SELECT kind, attempts, delivered_at, expired_at, last_error, "
                   "next_attempt_at FROM outbox WHERE sink_index = ? ORDER BY id", [sink_index])
    firing = one(wh, "SELECT count(*) FROM alerts WHERE state = 'firing'")
    # the run's firing alerts reach this sink as one grouped message (alerting.group_by: run)
    assert firing > 1 and len(out) == 1, "the run's alerts are queued for this sink"
    ((kind, attempts, delivered, expired, last_error, next_at),) = out
    # held for a later retry: not delivered, not dropped, not expired
    assert kind == "group" and delivered is None and expired is None
    assert next_at is not None
    # it was tried (a try and two quick retries) and says why it failed
    assert attempts == 3 and "Connection error" in last_error
    assert one(wh, "SELECT count(*) FROM outbox WHERE sink_index = ? AND title LIKE "
                   "'FIRING error: % alerts on %'", [sink_index]) == 1
    assert one(wh, "SELECT count(*) FROM alerts WHERE state = 'firing'") >= 1


# --- warehouse faults: refuse before probing, lose nothing -----------------------------------

def test_warehouse_locked_by_another_process(
        witness: Witness, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    wh = tmp_path / "locked.duckdb"
    Warehouse(wh).migrate()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, time; "
                               f"c = duckdb.connect({str(wh)!r}); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("DUALBUS_LOCK_TIMEOUT_S", "1")
        t0 = time.monotonic()
        assert run_cli("--config", str(witness.config), "--warehouse", str(wh)) == 1
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"dualbus: warehouse {wh} is locked by another process (held by PID "
                    f"{holder.pid}); waited 1s (another dualbus run or dagster dev is writing; "
                    "retry when it finishes)")
    witness.assert_untouched()
    assert one(wh, "SELECT count(*) FROM runs") == 0


def test_warehouse_file_corrupted(witness: Witness, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    wh = tmp_path / "corrupt.duckdb"
    junk = os.urandom(64 * 1024)
    wh.write_bytes(junk)
    assert run_cli("--config", str(witness.config), "--warehouse", str(wh)) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dualbus: warehouse {wh}: cannot open: ")
    assert "not a valid DuckDB database file" in line
    witness.assert_untouched()
    assert wh.read_bytes() == junk  # never "repaired" by overwriting someone's file
    assert not (tmp_path / "reports").exists()


@pytest.fixture
def mount_dir(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`mount_dir("size=1M")` → a fresh tmpfs with those options (root only)."""
    mounted: list[Path] = []
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")

    def mount(options: str) -> Path:
        d = tmp_path / f"mnt{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], check=True)
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_warehouse_on_a_read_only_path(witness: Witness, mount_dir: Callable[[str], Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    d = mount_dir("size=16M")
    wh = d / "ro.duckdb"
    Warehouse(wh).migrate()
    subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    before = wh.read_bytes()
    assert run_cli("--config", str(witness.config), "--warehouse", str(wh)) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dualbus: warehouse {wh}: cannot open: ")
    assert "Read-only file system" in line
    witness.assert_untouched()
    assert wh.read_bytes() == before
    assert one(wh, "SELECT count(*) FROM runs") == 0  # still a readable warehouse
    # a new warehouse on the same read-only path refuses the same way
    assert run_cli("--config", str(witness.config), "--warehouse", str(d / "new.duckdb")) == 1
    assert "Read-only file system" in capsys.readouterr().err
    witness.assert_untouched()


def test_disk_full_fails_clearly_and_keeps_earlier_runs(
        tmp_path: Path, mount_dir: Callable[[str], Path]) -> None:
    path = make_topology(tmp_path, ["solo"], extra={"probe": PROBE})
    cfg = load_config(path)
    redis = start_redis(cfg.topology.buses[0].port, tmp_path / "redis")
    servers = FaultServers({cfg.topology.engine("solo").port: "ok"}).start()
    try:
        first = tmp_path / "first.duckdb"
        assert run_cli("--config", str(path), "--warehouse", str(first)) == 0
        ((run1,),) = rows(first, "SELECT run_id FROM runs WHERE status = 'completed'")
        size = first.stat().st_size
        # a disk with room for the warehouse as it is, and a few KB more
        d = mount_dir(f"size={size + 64 * 1024}")
        wh = d / "full.duckdb"
        shutil.copyfile(first, wh)
        big = path.parent / "big.yaml"
        big.write_text(path.read_text().replace(f"engine_requests: {N_REQ}",
                                                "engine_requests: 4000").replace(
            "engine_rate_per_s: 200", "engine_rate_per_s: 4000"))
        proc = subprocess.run([sys.executable, "-m", "dualbus_pipeline.cli", "run", "--quiet",
                               "--config", str(big), "--warehouse", str(wh)],
                              capture_output=True, text=True, timeout=120)
    finally:
        servers.stop()
        redis.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("dualbus: ") and "No space left on device" in line, line
    # intact: the earlier run is whole, the failed one left no sample and no verdict
    assert Warehouse(wh, lock_timeout_s=1).migrate() == []  # opens and is usable
    runs = {r: (s, e) for r, s, e in rows(wh, "SELECT run_id, status, error FROM runs")}
    assert runs.pop(str(run1))[0] == "completed"
    ((status, error),) = runs.values()
    assert status == "failed" and "No space left on device" in error, (status, error)
    for table in ("engine_samples", "bus_samples", "summaries", "targets", "slo_results"):
        assert one(wh, f"SELECT count(*) FROM {table} WHERE run_id <> ?", [run1]) == 0, table
        assert one(wh, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run1]) == \
            one(first, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run1]), table


# --- bad input: exit 2, one line per problem, nothing probed or written ----------------------

def test_invalid_topology(witness: Witness, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(witness.config.read_text().replace("platform: Witness",
                                                      "platform: Witness\nbogus: 1")
                   + "probe: {engine_timeout_s: -1}\n")
    assert run_cli("--config", str(bad)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert any(f"{bad}" in ln and "bogus" in ln for ln in lines), lines
    assert any("probe.engine_timeout_s" in ln for ln in lines), lines
    witness.assert_untouched()
    assert not (tmp_path / "wh").exists()


def test_invalid_slo(witness: Witness, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    slo = tmp_path / "slo"
    slo.mkdir()
    (slo / "bad.yaml").write_text(
        "version: dualbus/v1\nslos:\n  - name: x\n    description: d\n    scope: engine\n"
        "    indicator: engine.latency_ms\n    aggregate: p42\n"
        "    objective: {op: '<', value: 10}\n    severity: error\n")
    assert run_cli("--config", str(witness.config), "--slo", str(slo)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{slo / 'bad.yaml'}:7: ") and "aggregate" in lines[0]
    witness.assert_untouched()
    assert not (tmp_path / "wh").exists()
