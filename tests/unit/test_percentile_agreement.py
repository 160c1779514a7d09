"""One percentile definition (issue 19, item 7): the SLO value of a percentile, the figure in
results.json and the trend point of the same run and target are one number, nearest rank.

Samples go through the real path: `summarize` (probes/stats.py) → `store_measurements` into a
DuckDB file → `evaluate_run` → `build_results(run_bundle(...))` → `refresh_trends`. Sample
counts of 50 and 137 are where an interpolating definition (DuckDB's quantile_cont) gives
numbers between two samples; the test shows it would disagree, so agreement is not luck.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
    SampleBatch,
)
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.slospec.evaluate import evaluate_run
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store.queries import run_bundle
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements
from dualbus_pipeline.store.trends import refresh_trends
from dualbus_pipeline.store.warehouse import Warehouse

AGGREGATES = ("p50", "p90", "p99")


def batch(target: str, kind: Any, n: int, rng: random.Random) -> SampleBatch:
    """n successful samples with distinct latencies in whole 0.1 µs steps (so results.json's
    4-decimal rounding keeps them exact), paced every 10 ms."""
    b = SampleBatch(target, kind)
    for i, k in enumerate(rng.sample(range(1_000, 50_000), n)):
        t = i * 10_000_000
        b.add(t, t, t + k * 100, True, 200)
    return b


def interpolated(values: list[float], q: float) -> float:
    """What quantile_cont computes: linear interpolation between the closest ranks."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def slos() -> list[Slo]:
    out = []
    for scope, indicator in (("engine", "engine.latency_ms"), ("engine", "engine.hot_latency_ms"),
                             ("bus", "bus.ping_ms"), ("bus", "bus.delivery_latency_ms"),
                             ("pair", "pair.roundtrip_ms"), ("pair", "pair.hot_roundtrip_ms")):
        for agg in AGGREGATES:
            out.append(Slo.model_validate({
                "name": f"{indicator.replace('.', '_')}_{agg}", "scope": scope,
                "indicator": indicator, "aggregate": agg,
                "objective": {"op": "<", "value": 100}}))
    return out


def summarized(b: SampleBatch) -> Any:
    return summarize(b, 100.0, 20, 1.0)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, Any, dict[str, Any]]:
    rng = random.Random(19)
    engines, buses, pairs = [], [], []
    for name, n in (("risk", 50), ("ml", 137)):
        paced, hot = batch(name, "engine_http", n, rng), batch(name, "engine_hot", n, rng)
        engines.append(EngineResult(name=name, title=name, url="http://127.0.0.1/",
                                    status="operational", status_reason="ok",
                                    summary=summarized(paced), samples=paced,
                                    hot=summarize(hot, None, 20), hot_samples=hot))
    for name, n in (("md", 50), ("logic", 137)):
        ping, delivery = batch(name, "bus_ping", n, rng), batch(name, "bus_delivery", n, rng)
        buses.append(BusResult(name=name, title=name, url="redis://127.0.0.1/0",
                               status="operational", status_reason="ok",
                               ping=summarize(ping, None, 20), delivery=summarized(delivery),
                               throughput_msgs_per_s=1000.0, capacity_messages=10, info={},
                               streams=[], samples=[ping, delivery]))
    for (a, b), n in ((("risk", "ml"), 50), (("ml", "risk"), 137)):
        rt = batch(f"{a}->{b}", "pair_roundtrip", n, rng)
        hot = batch(f"{a}->{b}", "pair_hot", n, rng)
        pairs.append(PairResult(from_=a, to=b, bus="logic", status="operational",
                                status_reason="ok", summary=summarized(rt), samples=rt,
                                hot=summarize(hot, None, 20), hot_samples=hot))
    wh = Warehouse(tmp_path_factory.mktemp("pct") / "w.duckdb")
    begin_run(wh, "r1", "Test")
    with wh.transaction() as con:
        store_measurements(con, "r1", buses, engines, pairs)
        ev = evaluate_run(con, "r1", slos(), baseline_runs=3)
        mark_evaluated(con, "r1", settings={}, overall=ev.overall)
    with wh.transaction() as con:
        refresh_trends(con, "r1")
    with wh.connect() as con:
        results = build_results(run_bundle(con, "r1"))
    return wh, ev, results


def figure(results: dict[str, Any], indicator: str, target: str, agg: str) -> float:
    """The results.json figure of one indicator, target and percentile."""
    field = {"engine.latency_ms": ("engines", "latency_ms"),
             "engine.hot_latency_ms": ("engines", "hot_latency_ms"),
             "bus.ping_ms": ("buses", "ping_ms"), "bus.delivery_latency_ms": ("buses",
                                                                               "delivery_ms"),
             "pair.roundtrip_ms": ("pairs", "roundtrip_ms"),
             "pair.hot_roundtrip_ms": ("pairs", "hot_roundtrip_ms")}[indicator]
    for t in results[field[0]]:
        name = f"{t['from']}->{t['to']}" if field[0] == "pairs" else t["name"]
        if name == target:
            return float(t[field[1]][agg])
    raise AssertionError(f"{target} not in results.json {field[0]}")


def test_every_slo_percentile_equals_the_results_json_figure(
        stored: tuple[Warehouse, Any, dict[str, Any]]) -> None:
    _, ev, results = stored
    checked = 0
    for r in ev.results:
        assert r.outcome == "pass", r
        assert r.value == figure(results, r.indicator, r.target, r.aggregate), \
            (r.slo, r.target)
        checked += 1
    assert checked == 6 * 3 * 2  # six indicators, three percentiles, two targets each
    # and results.json's own slos[] carry the same value as its tables
    for s in results["slos"]:
        assert s["value"] == figure(results, s["indicator"], s["target"], s["aggregate"])


def test_an_interpolating_percentile_would_disagree(
        stored: tuple[Warehouse, Any, dict[str, Any]]) -> None:
    wh, ev, _ = stored
    differs = 0
    with wh.connect() as con:
        for r in ev.results:
            table, kind = {"engine.latency_ms": ("engine_samples", "engine_http"),
                           "engine.hot_latency_ms": ("engine_samples", "engine_hot"),
                           "bus.ping_ms": ("bus_samples", "bus_ping"),
                           "bus.delivery_latency_ms": ("bus_samples", "bus_delivery"),
                           "pair.roundtrip_ms": ("pair_samples", "pair_roundtrip"),
                           "pair.hot_roundtrip_ms": ("pair_samples", "pair_hot")}[r.indicator]
            values = [v for (v,) in con.execute(
                f"SELECT latency_ms FROM {table} WHERE run_id = 'r1' AND target = ? "
                "AND kind = ?", [r.target, kind]).fetchall()]
            assert len(values) in (50, 137)
            q = {"p50": 0.5, "p90": 0.9, "p99": 0.99}[r.aggregate]
            differs += interpolated(values, q) != r.value
    # most figures sit between two samples (they coincide where q·(n-1) is a whole rank,
    # e.g. p50 of 137)
    assert differs > len(ev.results) * 2 // 3


def test_trend_points_are_the_same_number(
        stored: tuple[Warehouse, Any, dict[str, Any]]) -> None:
    wh, _, results = stored
    with wh.connect() as con:
        points = con.execute(
            "SELECT scope, target, indicator, aggregate, value FROM trend_points "
            "WHERE run_id = 'r1' AND aggregate IN ('p50', 'p90', 'p99') "
            "AND indicator LIKE '%_ms'").fetchall()
    assert len(points) >= 10
    for _, target, indicator, agg, value in points:
        assert value == figure(results, indicator, target, agg), (indicator, target, agg)
