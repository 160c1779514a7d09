"""A warehouse of known runs for report tests: written with the store's own functions.

`write_run`: figures chosen to be recognisable in rendered output (e.g. risk p50 0.2431 ms
renders as "0.243 ms"), and the platform has failures: websocket unreachable, vpin unhealthy,
one pair failed, one engine whose summary is invalid, error- and warning-severity breaches,
and with `unjudged=True` one engine whose summary is inconclusive plus a pending baseline.

`write_seed_run`: the seed's platform (13 engines, 2 buses, 4 pairs) and situation (websocket
down, vpin unhealthy, strategy and backtesting slower on the hot path) from raw samples,
summarized by the probes' own `summarize` and judged by the shipped `slo/` through
`evaluate_run`: the report test reads the whole chain, not hand-written verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.settings import ProbeSettings
from dualbus_pipeline.slospec.evaluate import Evaluation, evaluate_run
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements

REPO = Path(__file__).resolve().parents[1]

XSS = "<script>alert(1)</script>"
SETTINGS = {"engine_requests": 100, "engine_rate_per_s": 200.0, "engine_timeout_s": 1.0,
            "engine_concurrency": 8,
            "engine_capacity": {"enabled": False, "connections": 4, "duration_s": 1.0},
            "bus_ping_count": 200, "bus_delivery_count": 500, "bus_delivery_rate_per_s": 1000.0,
            "bus_capacity_messages": 20000, "bus_timeout_s": 1.5, "pair_count": 50,
            "pair_rate_per_s": 100.0, "pair_timeout_s": 2.5, "max_rate_per_s": 5000.0,
            "max_burst_messages": 200000, "key_ttl_s": 600, "stream_maxlen": 250000}


def summary(p50: float | None, *, count: int = 100, ok: int | None = None, valid: bool = True,
            invalid_reason: str | None = None, **guard: Any) -> Summary:
    """`guard`: replaced, inconclusive, solo_p50, note (what probes/ record per summary)."""
    ok = count if ok is None else ok
    if p50 is None:
        return Summary(count, ok, ok / count if count else 0.0, None, None, None, None, None,
                       None, None, None, None, 100.0, None, None, valid, invalid_reason,
                       **guard)
    return Summary(count=count, ok=ok, success_ratio=ok / count if count else 0.0,
                   mean=p50 * 1.1, p50=p50, p90=p50 * 1.5, p99=p50 * 2.0, p999=p50 * 2.5,
                   max=p50 * 3.0, min=p50 * 0.5, service_p50=p50 * 0.9,
                   service_p99=p50 * 1.8, intended_rate_per_s=200.0, achieved_rate_per_s=199.0,
                   lateness_p99_ms=0.01, valid=valid, invalid_reason=invalid_reason, **guard)


def batch(target: str, kind: Any, n: int, ok: int | None = None) -> SampleBatch:
    b = SampleBatch(target, kind)
    ok = n if ok is None else ok
    for i in range(n):
        b.add(i * 1000, i * 1000 + 10, i * 1000 + 300_000, i < ok, 200 if i < ok else 0,
              None if i < ok else "timeout")
    return b


def engine(name: str, title: str, p50: float | None, status: str = "operational",
           reason: str = "all requests answered", *, hot_p50: float | None = None,
           **kw: Any) -> EngineResult:
    s = summary(p50, **kw)
    hot = None if hot_p50 is None else summary(hot_p50, count=50)
    return EngineResult(name=name, title=title, url=f"http://127.0.0.1/{name}", status=status,  # type: ignore[arg-type]
                        status_reason=reason, summary=s,
                        samples=batch(name, "engine_http", 5, 5 if s.ok else 0), hot=hot,
                        hot_samples=None if hot is None else batch(name, "engine_hot", 5))


def bus(name: str, title: str, ping: float, delivery: float, throughput: float,
        lag: int = 0, pending: int = 0, **delivery_guard: Any) -> BusResult:
    return BusResult(
        name=name, title=title, url=f"redis://127.0.0.1/{name}", status="operational",
        status_reason="PING, delivery and capacity probes succeeded",
        ping=summary(ping, count=200), delivery=summary(delivery, count=500, **delivery_guard),
        throughput_msgs_per_s=throughput, capacity_messages=20000,
        info={"instantaneous_ops_per_sec": 1234.0, "connected_clients": 7.0,
              "used_memory": 1_048_576.0},
        streams=[StreamStat(stream=f"{name}-risk-stream", group="risk-group", engine="risk",
                            exists=True, length=42, lag=lag, pending=pending, consumers=2,
                            lag_ms=float(lag * 50), pending_age_ms=float(pending * 100),
                            idle_ms=5.0, consumed=1.0, status="OK",
                            status_reason=f"{lag} undelivered; the group moves")],
        samples=[batch(name, "bus_ping", 3), batch(name, "bus_delivery", 3)])


def pair(a: str, b: str, p50: float | None, status: str = "operational",
         reason: str = "all round trips answered", **kw: Any) -> PairResult:
    return PairResult(from_=a, to=b, bus="engine_logic", status=status,  # type: ignore[arg-type]
                      status_reason=reason, summary=summary(p50, **kw),
                      samples=batch(f"{a}->{b}", "pair_roundtrip", 2))


def slo_row(run_id: str, slo: str, scope: str, target: str, indicator: str, aggregate: str,
            value: float | None, op: str, objective: float, passed: bool | None, grade: str | None,
            severity: str = "error", *, key: bool = False, baseline: float | None = None,
            budget: float | None = None, burn: float | None = None,
            reason: str | None = None, outcome: str | None = None,
            events: tuple[int, int, float, str, str] | None = None,
            kind: str | None = None, windows: str | None = None) -> dict[str, Any]:
    """`events`: (good, total, sli_target, burn_state, burn_text) of an SLO with a budget."""
    att = None
    if value and outcome not in ("inconclusive", "pending_baseline"):
        att = objective / value if op.startswith("<") else value / objective
    if outcome is None:
        outcome = "pass" if passed else ("no_data" if value is None else "breach")
    return {"run_id": run_id, "slo": slo, "scope": scope, "target": target,
            "indicator": indicator, "aggregate": aggregate, "value": value,
            "objective_op": op, "objective": objective, "objective_text": f"{op} {objective:g}",
            "baseline": baseline, "passed": passed, "attainment": att, "grade": grade,
            "severity": severity, "weight": 1.0, "is_key": key, "reason": reason,
            "error_budget_remaining": budget, "burn_rate": burn, "outcome": outcome,
            **dict(zip(("good", "total", "sli_target", "burn_state", "burn_text"),
                       events or (None,) * 5, strict=True)),
            "slo_kind": kind or "objective", "burn_windows": windows}


def insert_slo_rows(con: Any, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    sql = f"INSERT INTO slo_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for r in rows:
        con.execute(sql, [r[c] for c in cols])


INCONCLUSIVE = ("inconclusive: p50 2.100 ms with 5 engines in flight was 5.0× its p50 alone "
                "(0.420 ms), and the re-measure budget (probe.remeasure_budget_s 30) was spent")
PAIR_NOTE = "re-measured alone: p50 1.460 ms with other pairs in flight was 2.1× its p50 alone"
BUS_NOTE = "4 delivery samples re-taken: the probe host delayed their send"
RE_MEASURED = ("re-measured alone: p50 0.900 ms with 5 engines in flight was 2.1× its p50 "
               "alone (0.420 ms)")


def _unjudged(run_id: str) -> tuple[list[EngineResult], list[dict[str, Any]]]:
    """An engine whose paced summary is inconclusive, one re-measured alone with re-takes,
    and the results that go with them (one inconclusive, two pending baseline)."""
    engines = [engine("ml", "ML", 2.1, valid=False, invalid_reason=INCONCLUSIVE,
                      inconclusive=True, solo_p50=0.42, hot_p50=0.2511),
               engine("features", "Features", 0.42, replaced=3, solo_p50=0.42,
                      note=RE_MEASURED)]
    slos = [
        slo_row(run_id, "engine_latency", "engine", "ml", "engine.latency_ms", "p99", None,
                "<", 10.0, None, None, outcome="inconclusive", reason=INCONCLUSIVE),
        slo_row(run_id, "engine_latency", "engine", "features", "engine.latency_ms", "p99",
                0.84, "<", 10.0, True, "A+"),
        slo_row(run_id, "engine_latency_regression", "engine", "risk", "engine.latency_ms",
                "p99", 0.4862, "<=", 0.0, None, None, "warning", outcome="pending_baseline",
                reason="pending baseline: 2 of 5 runs"),
        slo_row(run_id, "engine_latency_regression", "engine", "strategy",
                "engine.latency_ms", "p99", 2.284, "<=", 0.0, None, None, "warning",
                outcome="pending_baseline", reason="pending baseline: 2 of 5 runs"),
    ]
    return engines, slos


def write_run(wh: Warehouse, run_id: str, *, platform: str = "Nautilus",
              risk_p50: float = 0.2431, lag: int = 0, with_failures: bool = True,
              overall: dict[str, Any] | None = None, unjudged: bool = False) -> None:
    engines = [
        engine("risk", "Risk", risk_p50, hot_p50=0.1912),
        engine("analytics", "Analytics", 0.2618, hot_p50=0.2105),
        engine("marketdata", "MarketData", 0.3312, hot_p50=0.2203),
        engine("strategy", "Strategy", 1.1420, hot_p50=1.0507),
        engine("xss", XSS, 0.3501, hot_p50=0.2301),
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
                "engine.latency_ms", "p50", 1.142, "<", 0.5, False, "F", "warning",
                kind="optimization"),
        slo_row(run_id, "engine_optimization_target", "engine", "risk",
                "engine.latency_ms", "p50", risk_p50, "<", 0.5, True, "A-", "warning",
                kind="optimization"),
        slo_row(run_id, "latency_tier_ultra_low", "engine", "risk", "engine.latency_ms", "p50",
                risk_p50, "<", 0.3, risk_p50 < 0.3, None, "warning", kind="tier"),
        slo_row(run_id, "latency_tier_ultra_low", "engine", "analytics", "engine.latency_ms",
                "p50", 0.2618, "<", 0.3, True, None, "warning", kind="tier"),
        slo_row(run_id, "latency_tier_high_performance", "engine", "marketdata",
                "engine.latency_ms", "p50", 0.3312, "<", 0.4, True, None, "warning", kind="tier"),
        slo_row(run_id, "latency_tier_high_performance", "engine", "xss",
                "engine.latency_ms", "p50", 0.3501, "<", 0.4, True, None, "warning", kind="tier"),
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
                    events=(6, 8, 0.9, "ok", "burn rate below every alert threshold"),
                    windows='{"30d": 2.5, "3d": 2.5, "6h": 2.5}',
                    reason="6 of 8 engines operational; objective > 90 %"),
            slo_row(run_id, "engine_success", "engine", "websocket", "engine.success_ratio",
                    "ratio", None, ">", 0.95, False, None,
                    reason="no data: engine unreachable"),
        ]
    if unjudged:
        more_engines, more_slos = _unjudged(run_id)
        engines += more_engines
        slos += more_slos
        pairs[0] = pair("risk", "xss", 1.4612, replaced=2, solo_p50=0.7, note=PAIR_NOTE)
        buses[0] = bus("marketdata", "MarketData Bus", 0.1102, 0.4205, 3350.0, replaced=4,
                       solo_p50=0.4, note=BUS_NOTE)
    begin_run(wh, run_id, platform, settings=SETTINGS)
    with wh.transaction() as con:
        store_measurements(con, run_id, buses, engines, pairs)
        insert_slo_rows(con, slos)
        mark_evaluated(con, run_id, settings=SETTINGS, overall=overall or {
            "grade": "C" if with_failures else "A", "score": 71.25 if with_failures else 96.0,
            "passed": not with_failures, "result": "fail" if with_failures else "pass",
            "breaches": sum(1 for s in slos if s["outcome"] in ("breach", "no_data")
                            and s["slo_kind"] != "tier")})


def make_warehouse(path: Path, runs: int = 3, *, platform: str = "Nautilus") -> Warehouse:
    """`runs` completed runs `run-1`..`run-N` (lag rising, risk p50 steady)."""
    from dualbus_pipeline.store.trends import refresh_trends

    wh = Warehouse(path)
    for i in range(1, runs + 1):
        write_run(wh, f"run-{i}", platform=platform, lag=10 * i)
        with wh.transaction() as con:  # what the trend_tables asset does after each run
            refresh_trends(con, f"run-{i}")
    return wh


# ----------------------------------------------------------------------- the seed's picture

# (name, title, hot p50 ms or None): the seed's 13 engines; None = no successful answer
SEED_ENGINES: tuple[tuple[str, str, float | None], ...] = (
    ("analytics", "Analytics", 0.21), ("backtesting", "Backtesting", 0.75),
    ("risk", "Risk", 0.19), ("factor", "Factor", 0.24), ("ml", "ML", 0.27),
    ("features", "Features", 0.22), ("websocket", "WebSocket", None),
    ("strategy", "Strategy", 1.05), ("marketdata", "MarketData", 0.2),
    ("portfolio", "Portfolio", 0.23), ("collateral", "Collateral", 0.25),
    ("vpin", "VPIN", None), ("enhanced_vpin", "Enhanced VPIN", 0.28))
SEED_PAIRS = (("analytics", "risk"), ("ml", "strategy"), ("factor", "portfolio"),
              ("risk", "collateral"))
# What a paced request pays on top of the hot path: the idle wake-ups of both ends.
PACED_EXTRA_MS = 0.4


def spread(center: float, n: int) -> list[float]:
    """n latencies around `center` (±15 %), whole microseconds, in a scrambled order."""
    return [round(center * (0.85 + 0.3 * ((i * 37) % n) / n), 3) for i in range(n)]


def timed(target: str, kind: Any, latencies: Sequence[float], every_ms: float, *,
          ok: bool = True, error: str | None = None, status: int = 200) -> SampleBatch:
    """A batch sent on a fixed schedule, each sample `latency` after its intended send."""
    b = SampleBatch(target, kind)
    for i, lat in enumerate(latencies):
        t = round(i * every_ms * 1e6)
        b.add(t, t, t + round(lat * 1e6), ok, status if ok else 0, error)
    return b


def seed_engine(name: str, title: str, hot_p50: float | None,
                settings: ProbeSettings) -> EngineResult:
    rate, n = settings.engine_rate_per_s, settings.engine_requests
    if name == "websocket":
        paced = timed(name, "engine_http", [1.0] * n, 1000 / rate, ok=False, error="refused")
        return EngineResult(name=name, title=title, url=f"http://127.0.0.1/{name}",
                            status="unreachable",
                            status_reason="no connection could be made (refused)",
                            summary=summarize(paced, rate, settings.min_samples,
                                              settings.late_bound_ms), samples=paced)
    failing = hot_p50 is None  # vpin: answers, but its body says unhealthy
    center = 0.3 if failing else float(hot_p50)  # type: ignore[arg-type]
    paced = timed(name, "engine_http", spread(center + PACED_EXTRA_MS, n), 1000 / rate,
                  ok=not failing, error="status unhealthy" if failing else None)
    hot = timed(name, "engine_hot", spread(center, settings.engine_hot_requests), center,
                ok=not failing, error="status unhealthy" if failing else None)
    return EngineResult(
        name=name, title=title, url=f"http://127.0.0.1/{name}",
        status="unhealthy" if failing else "operational",
        status_reason=f"{n}/{n} requests failed (status unhealthy ×{n})" if failing
        else f"{n}/{n} requests succeeded",
        summary=summarize(paced, rate, settings.min_samples, settings.late_bound_ms),
        samples=paced, hot=summarize(hot, None, settings.min_samples), hot_samples=hot)


def seed_bus(name: str, title: str, engines: Sequence[str],
             settings: ProbeSettings) -> BusResult:
    ping = timed(name, "bus_ping", spread(0.11, settings.bus_ping_count), 0.2)
    delivery = timed(name, "bus_delivery", spread(0.42, settings.bus_delivery_count),
                     1000 / settings.bus_delivery_rate_per_s)
    return BusResult(
        name=name, title=title, url=f"redis://127.0.0.1/{name}", status="operational",
        status_reason="PING, delivery and capacity probes succeeded",
        ping=summarize(ping, None, settings.min_samples),
        delivery=summarize(delivery, settings.bus_delivery_rate_per_s, settings.min_samples,
                           settings.late_bound_ms),
        throughput_msgs_per_s=3340.0, capacity_messages=settings.bus_capacity_messages,
        info={"instantaneous_ops_per_sec": 1234.0},
        streams=[StreamStat(stream=f"nautilus-{e}-streams", group=f"{e}-group", engine=e,
                            exists=True, length=10, lag=0, pending=0, consumers=1, lag_ms=0.0,
                            pending_age_ms=0.0, idle_ms=12.0, consumed=1.0, status="OK",
                            status_reason="consumed: nothing waiting, 0 unacknowledged")
                 for e in engines],
        samples=[ping, delivery])


def seed_pair(a: str, b: str, settings: ProbeSettings) -> PairResult:
    rt = timed(f"{a}->{b}", "pair_roundtrip", spread(1.2, settings.pair_count),
               1000 / settings.pair_rate_per_s)
    hot = timed(f"{a}->{b}", "pair_hot", spread(0.9, settings.pair_hot_count), 0.9)
    return PairResult(from_=a, to=b, bus="engine_logic", status="operational",
                      status_reason=f"{settings.pair_count}/{settings.pair_count} round trips "
                      "answered", summary=summarize(rt, settings.pair_rate_per_s,
                                                    settings.min_samples,
                                                    settings.late_bound_ms), samples=rt,
                      hot=summarize(hot, None, settings.min_samples), hot_samples=hot)


def write_seed_run(wh: Warehouse, run_id: str = "seed-1") -> Evaluation:
    """The seed scenario stored and judged by the shipped SLOs (module docstring)."""
    settings = ProbeSettings()
    engines = [seed_engine(n, t, hot, settings) for n, t, hot in SEED_ENGINES]
    names = [n for n, _, _ in SEED_ENGINES]
    buses = [seed_bus("marketdata", "MarketData Bus", names[:6], settings),
             seed_bus("engine_logic", "Engine Logic Bus", names[6:], settings)]
    pairs = [seed_pair(a, b, settings) for a, b in SEED_PAIRS]
    dumped = settings.model_dump(mode="json")
    begin_run(wh, run_id, "Nautilus", settings=dumped)
    with wh.transaction() as con:
        store_measurements(con, run_id, buses, engines, pairs)
        ev = evaluate_run(con, run_id, load_slo_dir(REPO / "slo"), baseline_runs=5)
        mark_evaluated(con, run_id, settings=dumped, overall=ev.overall, probe_cpu_s=1.25)
    return ev
