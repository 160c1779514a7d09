"""Trend tables: each target's indicators over runs vs a baseline, the system trend per run,
and the "previous baseline vs current" comparison with computed improvement factors.

`refresh_trends(con, run_id)` writes the run's `trend_points` (a standard indicator set plus
every indicator/aggregate the run's single-run SLOs used), then fills baseline, delta % and
the regression flag. Baseline rule: the pinned run's value if a run is pinned, else the median
of the last N good (completed, not excluded) runs before this one. The query functions return
plain dicts for the report.
"""

from __future__ import annotations

import statistics
from typing import Any

import pyarrow as pa

from dualbus_pipeline.indicators import CATALOGUE, MIN_SAMPLES
from dualbus_pipeline.store import baselines
from dualbus_pipeline.store.slo_queries import Connection, measure, run_row, run_targets
from dualbus_pipeline.store.warehouse import STORED

DEFAULT_BASELINE_RUNS = 5
# A point regresses when it moved this many percent the wrong way from its baseline.
REGRESSION_PCT = 20.0

# Always trended, whatever the SLOs say: (indicator, aggregate).
STANDARD_SERIES: tuple[tuple[str, str], ...] = (
    ("engine.latency_ms", "p50"), ("engine.latency_ms", "p99"),
    ("engine.success_ratio", "ratio"),
    ("bus.delivery_latency_ms", "p99"), ("bus.throughput_msgs_per_s", "value"),
    ("bus.consumer_lag", "value"),
    ("pair.roundtrip_ms", "p99"), ("pair.success_ratio", "ratio"),
    ("system.availability", "ratio"), ("system.combined_throughput_msgs_per_s", "value"),
)

_POINT_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("scope", pa.string()), ("target", pa.string()), ("indicator", pa.string()),
    ("aggregate", pa.string()), ("unit", pa.string()), ("direction", pa.string()),
    ("value", pa.float64())])

_KEY = "t.scope = b.scope AND t.target = b.target AND t.indicator = b.indicator " \
       "AND t.aggregate = b.aggregate"


def refresh_trends(con: Connection, run_id: str, *,
                   baseline_runs: int = DEFAULT_BASELINE_RUNS,
                   regression_pct: float = REGRESSION_PCT) -> dict[str, Any]:
    """(Re)write the run's trend points with baseline, delta and regression flag."""
    run = run_row(con, run_id)
    if run is None:
        raise ValueError(f"run {run_id!r} is not in the warehouse")
    series = list(STANDARD_SERIES)
    for ind_name, agg in con.execute(
            "SELECT DISTINCT indicator, aggregate FROM slo_results WHERE run_id = ? "
            "AND window_text IS NULL ORDER BY ALL", [run_id]).fetchall():
        if ind_name in CATALOGUE and (ind_name, agg) not in series:
            series.append((ind_name, agg))
    rows: list[dict[str, Any]] = []
    for ind_name, agg in series:
        ind = CATALOGUE[ind_name]
        targets = run_targets(con, run_id, ind.scope)
        got = {m.target: m for m in measure(con, ind, agg, [run_id], targets)}
        for t in targets:
            m = got.get(t)
            ok = m is not None and m.value is not None and not (
                ind.kind == "samples" and m.good < MIN_SAMPLES[agg])
            rows.append({"run_id": run_id, "started_at": run.started_at, "scope": ind.scope,
                         "target": t, "indicator": ind_name, "aggregate": agg,
                         "unit": ind.unit, "direction": ind.direction,
                         "value": m.value if ok and m is not None else None})
    con.execute("DELETE FROM trend_points WHERE run_id = ?", [run_id])
    if rows:
        data = pa.Table.from_pylist(rows, schema=_POINT_SCHEMA)
        con.register("_dualbus_trend_points", data)
        try:
            cols = ", ".join(_POINT_SCHEMA.names)
            con.execute(f"INSERT INTO trend_points ({cols}) "
                        f"SELECT {cols} FROM _dualbus_trend_points")
        finally:
            con.unregister("_dualbus_trend_points")
    pinned = baselines.pinned_run(con)
    source = _fill_baselines(con, run_id, run.started_at, pinned, baseline_runs)
    con.execute(
        "UPDATE trend_points SET "
        "delta_pct = CASE WHEN value IS NOT NULL AND baseline IS NOT NULL AND baseline <> 0 "
        "THEN (value - baseline) / abs(baseline) * 100 END WHERE run_id = ?", [run_id])
    con.execute(
        "UPDATE trend_points SET regression = CASE WHEN delta_pct IS NULL THEN NULL "
        "WHEN direction = 'lower' THEN delta_pct > ? ELSE delta_pct < -? END "
        "WHERE run_id = ?", [regression_pct, regression_pct, run_id])
    counts = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE regression), count(baseline) "
        "FROM trend_points WHERE run_id = ?", [run_id]).fetchone()
    assert counts is not None
    return {"trend_points": int(counts[0]), "regressions": int(counts[1]),
            "with_baseline": int(counts[2]), "baseline": source}


def _fill_baselines(con: Connection, run_id: str, started_at: Any, pinned: str | None,
                    n: int) -> str:
    if pinned is not None and pinned != run_id:
        con.execute(
            "UPDATE trend_points t SET baseline = b.value, baseline_runs = 1, "
            "baseline_source = ? FROM (SELECT * FROM trend_points WHERE run_id = ? "
            f"AND value IS NOT NULL) b WHERE t.run_id = ? AND {_KEY}",
            [f"pinned {pinned}", pinned, run_id])
        return f"pinned run {pinned}"
    con.execute(
        "UPDATE trend_points t SET baseline = b.med, baseline_runs = b.n, "
        "baseline_source = 'median of ' || b.n || ' runs' FROM ("
        " SELECT scope, target, indicator, aggregate, median(value) AS med, count(*) AS n"
        " FROM (SELECT p.*, row_number() OVER (PARTITION BY p.scope, p.target, p.indicator,"
        "       p.aggregate ORDER BY p.started_at DESC) AS rn"
        "       FROM trend_points p JOIN runs r ON r.run_id = p.run_id"
        f"       WHERE r.{STORED} AND NOT r.excluded AND p.run_id <> ?"
        "       AND p.started_at < ? AND p.value IS NOT NULL)"
        " WHERE rn <= ? GROUP BY scope, target, indicator, aggregate) b "
        f"WHERE t.run_id = ? AND {_KEY}", [run_id, started_at, n, run_id])
    return f"median of up to {n} previous good runs"


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def target_trend(con: Connection, *, scope: str | None = None, target: str | None = None,
                 indicator: str | None = None, aggregate: str | None = None,
                 until_run: str | None = None, limit_runs: int = 50) -> list[dict[str, Any]]:
    """Trend points (oldest first) over the last `limit_runs` runs up to `until_run`."""
    where = ["1 = 1"]
    params: list[Any] = []
    for col, val in (("scope", scope), ("target", target), ("indicator", indicator),
                     ("aggregate", aggregate)):
        if val is not None:
            where.append(f"p.{col} = ?")
            params.append(val)
    if until_run is not None:
        where.append("p.started_at <= (SELECT started_at FROM runs WHERE run_id = ?)")
        params.append(until_run)
    sql = ("WITH recent AS (SELECT DISTINCT p.run_id, p.started_at FROM trend_points p "
           f"WHERE {' AND '.join(where)} ORDER BY p.started_at DESC LIMIT ?) "
           "SELECT p.* FROM trend_points p JOIN recent USING (run_id) "
           f"WHERE {' AND '.join(where)} ORDER BY p.started_at, p.scope, p.target, "
           "p.indicator, p.aggregate")
    return _dicts(con.execute(sql, [*params, limit_runs, *params]))


def regressions(con: Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's trend points that regressed against their baseline, worst first."""
    return _dicts(con.execute(
        "SELECT * FROM trend_points WHERE run_id = ? AND regression "
        "ORDER BY abs(delta_pct) DESC", [run_id]))


def system_trend(con: Connection, *, until_run: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Per completed run (oldest first): availability, combined throughput, grade, score."""
    sql = f"SELECT * FROM system_trend WHERE {STORED}"
    params: list[Any] = []
    if until_run is not None:
        sql = (f"SELECT * FROM system_trend WHERE ({STORED} OR run_id = ?) AND "
               "started_at <= (SELECT started_at FROM runs WHERE run_id = ?)")
        params = [until_run, until_run]
    rows = _dicts(con.execute(f"SELECT * FROM ({sql} ORDER BY started_at DESC LIMIT ?) "
                              "ORDER BY started_at", [*params, limit]))
    return rows


# (column of system_trend, label, unit, direction)
COMPARED = (
    ("mean_engine_latency_ms", "Average engine latency", "ms", "lower"),
    ("max_engine_p99_ms", "Worst engine p99 latency", "ms", "lower"),
    ("availability", "System availability", "ratio", "higher"),
    ("combined_throughput_msgs_per_s", "Combined bus throughput", "msgs/s", "higher"),
    ("failed_samples", "Failed probe samples", "samples", "lower"),
)


def baseline_comparison(con: Connection, run_id: str, *,
                        baseline_runs: int = DEFAULT_BASELINE_RUNS) -> dict[str, Any]:
    """"Previous baseline vs current": per headline metric, baseline, current, improvement
    factor (baseline/current when lower is better, current/baseline otherwise) and change %."""
    rows = {r["run_id"]: r for r in system_trend(con, until_run=run_id, limit=100_000)}
    current = rows.get(run_id)
    pinned = baselines.pinned_run(con)
    source: str | None
    if pinned is not None and pinned != run_id:
        base_rows = [r for r in system_trend(con, until_run=pinned, limit=1)
                     if r["run_id"] == pinned]
        source = f"pinned run {pinned}"
    else:
        base_rows = [r for r in reversed(list(rows.values()))
                     if r["run_id"] != run_id and not r["excluded"]][:baseline_runs]
        source = f"median of {len(base_rows)} previous runs" if base_rows else None
    metrics = []
    for col, label, unit, direction in COMPARED:
        vals = [float(r[col]) for r in base_rows if r.get(col) is not None]
        base = statistics.median(vals) if vals else None
        cur = None if current is None or current.get(col) is None else float(current[col])
        factor = change = None
        if base is not None and cur is not None:
            num, den = (base, cur) if direction == "lower" else (cur, base)
            factor = num / den if den else None
            change = (cur - base) / abs(base) * 100 if base else None
        metrics.append({"metric": col, "label": label, "unit": unit, "direction": direction,
                        "baseline": base, "current": cur, "factor": factor,
                        "change_pct": change,
                        "improved": None if factor is None else factor > 1.0})
    return {"run_id": run_id, "baseline": {"source": source,
                                           "run_ids": [r["run_id"] for r in base_rows]},
            "metrics": metrics}


def report_trends(con: Connection, run_id: str, *, limit: int = 20,
                  baseline_runs: int = DEFAULT_BASELINE_RUNS,
                  regression_pct: float = REGRESSION_PCT) -> dict[str, Any]:
    """Trend series for the report (`series`: per scope, target, indicator and aggregate, its
    points oldest first with baseline, current, delta % and the regression flag of the trend
    tables), the baseline comparison, the system trend, and `tolerance`: the factor a move
    must exceed to count as better or worse (1 + regression_pct / 100)."""
    points = target_trend(con, until_run=run_id, limit_runs=limit)
    objectives = {(r[0], r[1], r[2]): r[3] for r in con.execute(
        "SELECT target, indicator, aggregate, min(objective) FROM slo_results "
        "WHERE run_id = ? AND window_text IS NULL AND objective_text NOT LIKE '%baseline%' "
        "GROUP BY ALL", [run_id]).fetchall()}
    series: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for p in points:
        key = (p["scope"], p["target"], p["indicator"], p["aggregate"])
        short = p["indicator"].split(".", 1)[1].removesuffix("_ms").removesuffix(
            "_msgs_per_s")
        words = short.replace("_", " ") + (
            "" if p["aggregate"] in ("value", "ratio") else f" {p['aggregate']}")
        s = series.setdefault(key, {
            "scope": p["scope"], "target": p["target"], "indicator": p["indicator"],
            "metric": p["aggregate"] if short == "latency" else f"{short} {p['aggregate']}",
            "label": f"{p['target']} {words}", "unit": p["unit"],
            "direction": p["direction"],
            "objective": objectives.get((p["target"], p["indicator"], p["aggregate"])),
            "baseline": None, "current": None, "delta_pct": None, "regression": None,
            "points": []})
        s["points"].append({"run_id": p["run_id"], "started_at": str(p["started_at"]),
                            "value": p["value"]})
        if p["run_id"] == run_id:
            s.update(baseline=p["baseline"], current=p["value"], delta_pct=p["delta_pct"],
                     regression=p["regression"])
    comparison = baseline_comparison(con, run_id, baseline_runs=baseline_runs)
    return {"baseline": {"run_id": (comparison["baseline"]["run_ids"] or [None])[0],
                         "run_ids": comparison["baseline"]["run_ids"],
                         "label": comparison["baseline"]["source"]},
            "series": list(series.values()), "comparison": comparison,
            "tolerance": 1 + regression_pct / 100,
            "system": system_trend(con, until_run=run_id, limit=limit),
            "regressions": regressions(con, run_id)}
