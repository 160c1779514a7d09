"""A warehouse of known runs for report tests: written with the store's own functions.

Figures are chosen to be recognisable in rendered output (e.g. risk p50 0.2431 ms renders as
"0.243 ms"), and the platform has failures: websocket unreachable, vpin unhealthy, one pair
failed, one engine whose summary is invalid, and error- and warning-severity breaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
    SampleBatch,
    StreamStat,
    Summary,
)
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, complete_run, store_measurements

XSS = "<script>alert(1)</script>"
SETTINGS = {"engine_requests": 100, "engine_rate_per_s": 200.0, "engine_timeout_s": 1.0,
            "engine_concurrency": 8,
            "engine_capacity": {"enabled": False, "connections": 4, "duration_s": 1.0},
            "bus_ping_count": 200, "bus_delivery_count": 500, "bus_delivery_rate_per_s": 1000.0,
            "bus_capacity_messages": 20000, "bus_timeout_s": 1.5, "pair_count": 50,
            "pair_rate_per_s": 100.0, "pair_timeout_s": 2.5, "max_rate_per_s": 5000.0,
            "max_burst_messages": 200000, "key_ttl_s": 600, "stream_maxlen": 250000}


def summary(p50: float | None, *, count: int = 100, ok: int | None = None, valid: bool = True,
            invalid_reason: str | None = None) -> Summary:
    ok = count if ok is None else ok
    if p50 is None:
        return Summary(count, ok, ok / count if count else 0.0, None, None, None, None, None,
                       None, None, None, None, 100.0, None, None, valid, invalid_reason)
    return Summary(count=count, ok=ok, success_ratio=ok / count if count else 0.0,
                   mean=p50 * 1.1, p50=p50, p90=p50 * 1.5, p99=p50 * 2.0, p999=p50 * 2.5,
                   max=p50 * 3.0, min=p50 * 0.5, service_p50=p50 * 0.9,
                   service_p99=p50 * 1.8, intended_rate_per_s=200.0, achieved_rate_per_s=199.0,
                   lateness_p99_ms=0.01, valid=valid, invalid_reason=invalid_reason)


def batch(target: str, kind: Any, n: int, ok: int | None = None) -> SampleBatch:
    b = SampleBatch(target, kind)
    ok = n if ok is None else ok
    for i in range(n):
        b.add(i * 1000, i * 1000 + 10, i * 1000 + 300_000, i < ok, 200 if i < ok else 0,
              None if i < ok else "timeout")
    return b


def engine(name: str, title: str, p50: float | None, status: str = "operational",
           reason: str = "all requests answered", **kw: Any) -> EngineResult:
    s = summary(p50, **kw)
    return EngineResult(name=name, title=title, url=f"http://127.0.0.1/{name}", status=status,  # type: ignore[arg-type]
                        status_reason=reason, summary=s,
                        samples=batch(name, "engine_http", 5, 5 if s.ok else 0))


def bus(name: str, title: str, ping: float, delivery: float, throughput: float,
        lag: int = 0, pending: int = 0) -> BusResult:
    return BusResult(
        name=name, title=title, url=f"redis://127.0.0.1/{name}", status="operational",
        status_reason="PING, delivery and capacity probes succeeded",
        ping=summary(ping, count=200), delivery=summary(delivery, count=500),
        throughput_msgs_per_s=throughput, capacity_messages=20000,
        info={"instantaneous_ops_per_sec": 1234.0, "connected_clients": 7.0,
              "used_memory": 1_048_576.0},
        streams=[StreamStat(stream=f"{name}-risk-stream", group="risk-group", engine="risk",
                            exists=True, length=42, lag=lag, pending=pending, consumers=2)],
        samples=[batch(name, "bus_ping", 3), batch(name, "bus_delivery", 3)])


def pair(a: str, b: str, p50: float | None, status: str = "operational",
         reason: str = "all round trips answered", **kw: Any) -> PairResult:
    return PairResult(from_=a, to=b, bus="engine_logic", status=status,  # type: ignore[arg-type]
                      status_reason=reason, summary=summary(p50, **kw),
                      samples=batch(f"{a}->{b}", "pair_roundtrip", 2))


def slo_row(run_id: str, slo: str, scope: str, target: str, indicator: str, aggregate: str,
            value: float | None, op: str, objective: float, passed: bool, grade: str | None,
            severity: str = "error", *, key: bool = False, baseline: float | None = None,
            budget: float | None = None, burn: float | None = None,
            reason: str | None = None) -> dict[str, Any]:
    att = None
    if value:
        att = objective / value if op.startswith("<") else value / objective
    return {"run_id": run_id, "slo": slo, "scope": scope, "target": target,
            "indicator": indicator, "aggregate": aggregate, "value": value,
            "objective_op": op, "objective": objective, "objective_text": f"{op} {objective:g}",
            "baseline": baseline, "passed": passed, "attainment": att, "grade": grade,
            "severity": severity, "weight": 1.0, "is_key": key, "reason": reason,
            "error_budget_remaining": budget, "burn_rate": burn}


def insert_slo_rows(con: Any, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    sql = f"INSERT INTO slo_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for r in rows:
        con.execute(sql, [r[c] for c in cols])


def write_run(wh: Warehouse, run_id: str, *, platform: str = "Nautilus",
              risk_p50: float = 0.2431, lag: int = 0, with_failures: bool = True,
              overall: dict[str, Any] | None = None) -> None:
    engines = [
        engine("risk", "Risk", risk_p50),
        engine("analytics", "Analytics", 0.2618),
        engine("marketdata", "MarketData", 0.3312),
        engine("strategy", "Strategy", 1.1420),
        engine("xss", XSS, 0.3501),
    ]
    if with_failures:
        engines += [
            engine("websocket", "WebSocket", None, "unreachable",
                   "connection refused on every attempt (3 retries)", ok=0),
            engine("vpin", "VPIN", 0.5, "unhealthy", "body status 'unhealthy' in 100/100"),
            engine("factor", "Factor", 0.27, valid=False,
                   invalid_reason="probe fell behind schedule: lateness p99 40 ms"),
        ]
    buses = [bus("marketdata", "MarketData Bus", 0.1102, 0.4205, 3350.0),
             bus("engine_logic", "Engine Logic Bus", 0.1207, 0.4511, 3330.0, lag=lag,
                 pending=lag // 2)]
    pairs = [pair("risk", "xss", 1.4612)]
    if with_failures:
        pairs.append(pair("ml", "strategy", None, "failed", "no reply within 2.5 s", ok=0))
    slos = [
        slo_row(run_id, "engine_latency", "engine", "risk", "engine.latency_ms", "p99",
                risk_p50 * 2, "<", 10.0, True, "A+", key=True),
        slo_row(run_id, "engine_latency", "engine", "strategy", "engine.latency_ms", "p99",
                2.284, "<", 10.0, True, "A"),
        slo_row(run_id, "engine_optimization_target", "engine", "strategy",
                "engine.latency_ms", "p50", 1.142, "<", 0.5, False, "F", "warning"),
        slo_row(run_id, "engine_optimization_target", "engine", "risk",
                "engine.latency_ms", "p50", risk_p50, "<", 0.5, True, "A-", "warning"),
        slo_row(run_id, "latency_tier_ultra_low", "engine", "risk", "engine.latency_ms", "p50",
                risk_p50, "<", 0.3, risk_p50 < 0.3, None, "warning"),
        slo_row(run_id, "latency_tier_ultra_low", "engine", "analytics", "engine.latency_ms",
                "p50", 0.2618, "<", 0.3, True, None, "warning"),
        slo_row(run_id, "latency_tier_high_performance", "engine", "marketdata",
                "engine.latency_ms", "p50", 0.3312, "<", 0.4, True, None, "warning"),
        slo_row(run_id, "latency_tier_high_performance", "engine", "xss",
                "engine.latency_ms", "p50", 0.3501, "<", 0.4, True, None, "warning"),
        slo_row(run_id, "bus_throughput", "bus", "marketdata", "bus.throughput_msgs_per_s",
                "value", 3350.0, ">", 1000.0, True, "A-"),
        slo_row(run_id, "cross_engine", "pair", "risk->xss", "pair.roundtrip_ms", "p99",
                2.9224, "<", 3.0, True, "C+"),
        slo_row(run_id, "delivery_regression", "bus", "engine_logic",
                "bus.delivery_latency_ms", "p99", 0.9022, "<=", 0.495, False, "D",
                "warning", baseline=0.45, reason="regressed vs baseline"),
    ]
    if with_failures:
        slos += [
            slo_row(run_id, "system_availability", "system", "system", "system.availability",
                    "ratio", 6 / 8, ">", 0.9, False, "C", key=True, budget=0.25, burn=2.5,
                    reason="6 of 8 engines operational; objective > 90 %"),
            slo_row(run_id, "engine_success", "engine", "websocket", "engine.success_ratio",
                    "ratio", None, ">", 0.95, False, None,
                    reason="no data: engine unreachable"),
        ]
    begin_run(wh, run_id, platform, settings=SETTINGS)
    with wh.transaction() as con:
        store_measurements(con, run_id, buses, engines, pairs)
        insert_slo_rows(con, slos)
        complete_run(con, run_id, settings=SETTINGS, overall=overall or {
            "grade": "C" if with_failures else "A", "score": 71.25 if with_failures else 96.0,
            "passed": not with_failures, "result": "fail" if with_failures else "pass",
            "breaches": sum(1 for s in slos if not s["passed"] and "tier" not in s["slo"])})


def make_warehouse(path: Path, runs: int = 3, *, platform: str = "Nautilus") -> Warehouse:
    """`runs` completed runs `run-1`..`run-N` (lag rising, risk p50 steady)."""
    wh = Warehouse(path)
    for i in range(1, runs + 1):
        write_run(wh, f"run-{i}", platform=platform, lag=10 * i)
    return wh
