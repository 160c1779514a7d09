"""Trend series for the report, in the plain-dict shape `render_reports(trends=...)` accepts.

Shape (every key optional except `series`)::

    {"baseline": {"run_id": "…", "run_ids": ["…"], "label": "median of 5 previous runs"},
     "series": [{"scope": "engine", "target": "risk", "bus": None, "metric": "p99",
                 "label": "Risk latency p99", "unit": "ms", "direction": "lower",
                 "objective": 10.0, "baseline": 0.31, "current": 0.29,
                 "points": [{"run_id": "…", "started_at": "…", "value": 0.3}, …]}]}

`points` are oldest first and end with the current run. When `baseline` is missing the report
uses the median of the earlier points. `collect_trends` builds this from stored runs with the
store's existing queries (one `run_bundle` per run; N is small); `from_store_trends` adapts the
output of `store.trends.report_trends` when that module provides it.
"""

from __future__ import annotations

from typing import Any

import duckdb

from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.store.queries import history, run_bundle


def collect_trends(con: duckdb.DuckDBPyConnection, run_id: str, *,
                   limit: int = 20) -> dict[str, Any]:
    runs = history(con, before_run=run_id, limit=limit)
    per_run = [(r["run_id"], str(r["started_at"]), build_results(run_bundle(con, r["run_id"])))
               for r in runs]
    return series_from_results(per_run)


def series_from_results(per_run: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Series over runs (oldest first) from each run's results.json."""
    series: dict[str, dict[str, Any]] = {}

    def point(key: str, meta: dict[str, Any], run_id: str, started: str,
              value: float | None) -> None:
        s = series.setdefault(key, {**meta, "points": []})
        s["points"].append({"run_id": run_id, "started_at": started, "value": value})

    for run_id, started, res in per_run:
        for e in res.get("engines", []):
            for agg in ("p50", "p99"):
                v = e["latency_ms"].get(agg) if e.get("valid") else None
                point(f"engine:{e['name']}:{agg}", {
                    "scope": "engine", "target": e["name"], "metric": agg, "unit": "ms",
                    "label": f"{e.get('title') or e['name']} latency {agg}",
                    "direction": "lower"}, run_id, started, v)
        for b in res.get("buses", []):
            v = b["delivery_ms"].get("p99") if b.get("valid") else None
            point(f"bus:{b['name']}:delivery_p99", {
                "scope": "bus", "target": b["name"], "metric": "delivery p99", "unit": "ms",
                "label": f"{b.get('title') or b['name']} delivery p99", "direction": "lower"},
                run_id, started, v)
            point(f"bus:{b['name']}:throughput", {
                "scope": "bus", "target": b["name"], "metric": "throughput",
                "unit": "msgs/s", "label": f"{b.get('title') or b['name']} throughput",
                "direction": "higher"}, run_id, started, b.get("throughput_msgs_per_s"))
            for st in b.get("streams", []):
                point(f"lag:{b['name']}:{st['engine']}", {
                    "scope": "stream", "target": st["engine"], "bus": b["name"],
                    "metric": "lag", "unit": "entries",
                    "label": f"{st['stream']} lag", "direction": "lower"},
                    run_id, started, st.get("lag"))
        for p in res.get("pairs", []):
            v = p["roundtrip_ms"].get("p99") if p.get("valid") else None
            point(f"pair:{p['from']}->{p['to']}", {
                "scope": "pair", "target": f"{p['from']}->{p['to']}", "metric": "roundtrip p99",
                "unit": "ms", "label": f"{p['from']} → {p['to']} round trip p99",
                "direction": "lower"}, run_id, started, v)
        avail = res.get("system", {}).get("availability")
        point("system:availability", {
            "scope": "system", "target": "system", "metric": "availability", "unit": "ratio",
            "label": "System availability", "direction": "higher"}, run_id, started, avail)
    prior = [r for r, _, _ in per_run[:-1]]
    return {"baseline": {"run_id": prior[-1] if prior else None, "run_ids": prior,
                         "label": f"median of {len(prior)} previous runs" if prior else None},
            "series": list(series.values())}
