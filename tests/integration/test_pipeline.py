"""End to end: `dualbus run` on a real stack with a foreign topology, a temp warehouse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import load_config
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.store import Warehouse
from tests.stack_fixtures import StackFactory, make_topology

REPO = Path(__file__).resolve().parents[2]
SMALL_PROBE = {"probe": {"engine_requests": 40, "engine_rate_per_s": 400,
                         "bus_ping_count": 60, "bus_delivery_count": 60,
                         "bus_delivery_rate_per_s": 600, "bus_capacity_messages": 3000,
                         "pair_count": 15, "pair_rate_per_s": 150,
                         "engine_max_send_rate_per_s": 800, "engine_hot_requests": 10,
                         "pair_hot_count": 10,
                         "late_bound_ms": 50}}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackManager]:
    """A platform that looks nothing like the shipped one: 2 buses named otherwise, 4 engines
    with their own health paths, streams and groups, one of them down."""
    base = tmp_path_factory.mktemp("foreign")
    path = make_topology(
        base,
        [{"name": "ingest", "stream": "orb:ingest:in", "group": "ingest-workers"},
         {"name": "scorer", "bus": "orders", "stream": "orb:scorer:in", "group": "sc"},
         {"name": "ledger", "health_path": "/status", "bus": "orders"},
         {"name": "gateway"}],
        buses=("ticks", "orders"), pairs=[("scorer", "ledger")],
        platform="Orbital", health_path="/healthz", faults={"gateway": {"down": True}},
        extra=SMALL_PROBE)
    factory = StackFactory()
    yield factory(path)
    factory.close()


def _config(stack: StackManager) -> str:
    return str(stack.cfg.path)


def _count(wh: Path, sql: str, params: list[object] | None = None) -> int:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return int(con.execute(sql, params or []).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def test_run_twice_stores_both_runs_with_every_sample(
        foreign: StackManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wh = tmp_path / "wh.duckdb"
    for _ in range(2):
        assert main(["run", "--config", _config(foreign), "--warehouse", str(wh)]) == 0
    out = capsys.readouterr().out
    assert "✓ engine_measurements" in out and "report: " in out
    assert "✓ probes " in out and "Dagster started in " in out
    assert _count(wh, "SELECT count(*) FROM runs WHERE status = 'completed'") == 2
    # every counted sample of every run (re-takes are stored too, flagged): 4 engines × 40
    # paced requests and 10 back to back on the 3 that answer, pairs 15 + 10, buses 60 + 60
    assert _count(wh, "SELECT count(*) FROM engine_samples WHERE kind = 'engine_http' "
                      "AND NOT replaced") == 2 * 4 * 40
    assert _count(wh, "SELECT count(*) FROM engine_samples WHERE kind = 'engine_hot'") == \
        2 * 3 * 10
    assert _count(wh, "SELECT count(*) FROM pair_samples WHERE kind = 'pair_roundtrip' "
                      "AND NOT replaced") == 2 * 15
    assert _count(wh, "SELECT count(*) FROM pair_samples WHERE kind = 'pair_hot'") == 2 * 10
    assert _count(wh, "SELECT count(*) FROM bus_samples WHERE NOT replaced") == \
        2 * 2 * (60 + 60)
    assert _count(wh, "SELECT count(*) FROM targets WHERE target = 'gateway' "
                      "AND status = 'unreachable'") == 2
    assert _count(wh, "SELECT count(*) FROM slo_results") > 0
    run_ids = [line.split()[1] for line in out.splitlines() if line.startswith("run ")]
    for run_id in run_ids:
        assert (tmp_path / "reports" / run_id / "results.json").exists()
        # Phase order of `dualbus run` (one probe process, one clock): buses, engines, pairs;
        # Dagster starts only after them (docs/decisions.md).
        bus_end, engine_start, engine_end, pair_start = (_count(wh, sql, [run_id]) for sql in (
            "SELECT max(done_ns) FROM bus_samples WHERE run_id = ?",
            "SELECT min(intended_ns) FROM engine_samples WHERE run_id = ?",
            "SELECT max(done_ns) FROM engine_samples WHERE run_id = ?",
            "SELECT min(intended_ns) FROM pair_samples WHERE run_id = ?"))
        assert bus_end < engine_start and engine_end < pair_start


def test_report_json_follows_the_contract(foreign: StackManager, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert main(["run", "--config", _config(foreign), "--warehouse", str(wh), "--quiet"]) == 0
    out = tmp_path / "export.json"
    assert main(["report", "--config", _config(foreign), "--warehouse", str(wh),
                 "--format", "json", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("run_id", "started_at", "finished_at", "platform", "engines", "buses", "pairs",
                "system", "slos", "overall"):
        assert key in r, key
    assert r["platform"] == "Orbital"
    engines = {e["name"]: e for e in r["engines"]}
    assert set(engines) == {"ingest", "scorer", "ledger", "gateway"}
    for e in engines.values():
        assert set(e) >= {"name", "status", "requests", "success_ratio", "latency_ms"}
        assert set(e["latency_ms"]) == {"mean", "p50", "p90", "p99", "p999", "max"}
    assert engines["gateway"]["status"] == "unreachable"
    assert engines["ingest"]["status"] == "operational"
    assert engines["ingest"]["requests"] == 40
    for b in r["buses"]:
        assert set(b) >= {"name", "status", "ping_ms", "delivery_ms", "throughput_msgs_per_s",
                          "success_ratio"}
    assert {b["name"] for b in r["buses"]} == {"ticks", "orders"}
    (pair,) = r["pairs"]
    assert set(pair) >= {"from", "to", "status", "roundtrip_ms", "success_ratio"}
    assert (pair["from"], pair["to"]) == ("scorer", "ledger")
    assert set(r["system"]) == {"engines_total", "engines_operational", "availability",
                                "combined_bus_throughput_msgs_per_s"}
    assert r["system"]["engines_total"] == 4 and r["system"]["engines_operational"] == 3
    assert r["system"]["availability"] == 0.75
    for s in r["slos"]:
        assert set(s) >= {"name", "scope", "target", "indicator", "value", "objective",
                          "passed", "grade", "severity"}
    assert set(r["overall"]) >= {"grade", "score", "passed", "breaches"}


def test_sigkill_mid_run_leaves_no_partial_rows(foreign: StackManager, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    cfg = load_config(_config(foreign))
    slow = cfg.path.parent / "slow.yaml"
    text = cfg.path.read_text().replace("engine_requests: 40", "engine_requests: 400")
    slow.write_text(text.replace("engine_rate_per_s: 400", "engine_rate_per_s: 100"))
    proc = subprocess.Popen([sys.executable, "-m", "dualbus_pipeline.cli", "run", "--config",
                             str(slow), "--warehouse", str(wh)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # probing starts with this line; the engines take 4 s
        if line.startswith("dualbus: running"):
            break
    time.sleep(2.5)  # the buses take ~1.5 s: kill while the engines are being probed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert _count(wh, "SELECT count(*) FROM runs") == 1
    assert _count(wh, "SELECT count(*) FROM runs WHERE status = 'completed'") == 0
    for table in ("engine_samples", "bus_samples", "pair_samples", "summaries", "slo_results"):
        assert _count(wh, f"SELECT count(*) FROM {table}") == 0, table
    # the next run works, and the killed one is recorded as aborted
    assert main(["run", "--config", _config(foreign), "--warehouse", str(wh), "--quiet"]) == 0
    assert _count(wh, "SELECT count(*) FROM runs WHERE status = 'aborted'") == 1
    assert _count(wh, "SELECT count(*) FROM runs WHERE status = 'completed'") == 1


def test_second_writer_fails_clearly_and_writes_nothing(
        foreign: StackManager, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    wh = tmp_path / "wh.duckdb"
    Warehouse(wh).migrate()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                               f"c = duckdb.connect({str(wh)!r}); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("DUALBUS_LOCK_TIMEOUT_S", "1")
        assert main(["run", "--config", _config(foreign), "--warehouse", str(wh)]) == 1
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    err = capsys.readouterr().err
    assert "is locked by another process" in err and f"PID {holder.pid}" in err
    assert _count(wh, "SELECT count(*) FROM runs") == 0


def test_bad_config_exits_2_and_writes_nothing(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "dualbus.yaml"
    bad.write_text("platform: x\nbuses: [{name: b, url: 'tcp://nope'}]\nwarehouse: w.duckdb\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "buses[0].url: must be a redis:// or rediss:// URL" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()


def test_unreachable_platform_still_completes(tmp_path: Path) -> None:
    """Nothing listening anywhere: every target is reported failed, the run completes."""
    path = make_topology(tmp_path, ["a", "b"], pairs=[("a", "b")], extra={
        "probe": {"engine_requests": 5, "bus_ping_count": 5, "bus_delivery_count": 5,
                  "bus_capacity_messages": 100, "pair_count": 3, "engine_timeout_s": 0.2,
                  "bus_timeout_s": 0.2, "pair_timeout_s": 0.2}})
    wh = tmp_path / "wh.duckdb"
    started = time.monotonic()
    assert main(["run", "--config", str(path), "--warehouse", str(wh), "--quiet"]) == 0
    assert time.monotonic() - started < 30
    assert _count(wh, "SELECT count(*) FROM targets WHERE status IN "
                      "('unreachable', 'failed')") == 4  # 2 engines, 1 bus, 1 pair


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    first = wh.migrate()
    assert first and first[0] == 1
    assert wh.migrate() == []
    assert _count(tmp_path / "w.duckdb", "SELECT count(*) FROM schema_migrations") == len(first)


def test_scoring_thresholds_from_the_config_decide_the_result(
        foreign: StackManager, tmp_path: Path) -> None:
    """The same measurements, two pass thresholds: the stored result follows the config."""
    import yaml

    doc = yaml.safe_load(Path(_config(foreign)).read_text())
    doc["scoring"] = {"pass_score": 0, "warning_score": 0}
    lenient = Path(_config(foreign)).with_name("lenient.yaml")
    lenient.write_text(yaml.safe_dump(doc))
    wh = tmp_path / "wh.duckdb"
    # a key SLO (availability 3/4 < 90 %) fails whatever the thresholds: prove the threshold
    # path with a custom SLO dir holding only a non-key, always-missed warning SLO
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    (slo_dir / "one.yaml").write_text(
        "version: dualbus/v1\nslos:\n  - name: impossible\n    scope: engine\n"
        "    indicator: engine.latency_ms\n    aggregate: p50\n"
        "    objective: {op: '<', value: 0.000001}\n    severity: warning\n")
    for config in (_config(foreign), str(lenient)):
        assert main(["run", "--config", config, "--warehouse", str(wh), "--slo",
                     str(slo_dir), "--quiet"]) == 0
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute("SELECT overall_score, overall_result FROM runs "
                           "ORDER BY started_at").fetchall()
    finally:
        con.close()
    # score 50 (every target misses a warning SLO: half a point each) in both runs
    assert [r[0] for r in rows] == [50.0, 50.0]
    assert [r[1] for r in rows] == ["fail", "pass"]  # < warning 75 by default; ≥ pass 0
