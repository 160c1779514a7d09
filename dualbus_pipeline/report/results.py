"""Build `results.json` (product.md §7) from a run's rows in the warehouse.

Field names here are a contract other tools depend on: add fields, never rename them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

LATENCY_KEYS = ("mean", "p50", "p90", "p99", "p999", "max")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _latency(summary: dict[str, Any] | None) -> dict[str, float | None]:
    if summary is None:
        return dict.fromkeys(LATENCY_KEYS)
    return {k: _round(summary.get(k)) for k in LATENCY_KEYS}


def _round(v: Any, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def build_results(bundle: dict[str, Any]) -> dict[str, Any]:
    run = bundle["run"] or {}
    summaries = {(s["scope"], s["target"], s["metric"]): s for s in bundle["summaries"]}
    info: dict[str, dict[str, float]] = {}
    for row in bundle["bus_info"]:
        info.setdefault(row["bus"], {})[row["metric"]] = row["value"]
    streams: dict[str, list[dict[str, Any]]] = {}
    for s in bundle["streams"]:
        streams.setdefault(s["bus"], []).append({
            "engine": s["engine"], "stream": s["stream"], "group": s["grp"],
            "present": s["present"], "length": s["length"], "lag": s["lag"],
            "pending": s["pending"], "consumers": s["consumers"], "error": s["error"]})

    engines, buses, pairs = [], [], []
    for t in bundle["targets"]:
        detail = json.loads(t["detail"] or "{}")
        if t["scope"] == "engine":
            s = summaries.get(("engine", t["target"], "latency"))
            engines.append({
                "name": t["target"], "title": t["title"], "status": t["status"],
                "status_reason": t["status_reason"],
                "requests": s["count"] if s else 0,
                "success_ratio": _round(s["success_ratio"]) if s else None,
                "latency_ms": _latency(s),
                "service_ms": {"p50": _round(s["service_p50"]) if s else None,
                               "p99": _round(s["service_p99"]) if s else None},
                "valid": bool(s["valid"]) if s else False,
                "invalid_reason": s["invalid_reason"] if s else "no samples",
                "capacity_rps": _round(t["throughput"], 1),
                "url": detail.get("url"),
            })
        elif t["scope"] == "bus":
            ping = summaries.get(("bus", t["target"], "ping"))
            delivery = summaries.get(("bus", t["target"], "delivery"))
            count = sum(x["count"] for x in (ping, delivery) if x)
            ok = sum(x["ok"] for x in (ping, delivery) if x)
            buses.append({
                "name": t["target"], "title": t["title"], "status": t["status"],
                "status_reason": t["status_reason"],
                "ping_ms": _latency(ping), "delivery_ms": _latency(delivery),
                "throughput_msgs_per_s": _round(t["throughput"], 1),
                "capacity_messages": t["capacity_messages"],
                "success_ratio": _round(ok / count) if count else None,
                "samples": count,
                "valid": bool(ping and ping["valid"] and delivery and delivery["valid"]),
                "invalid_reason": "; ".join(
                    f"{name}: {x['invalid_reason'] if x else 'no samples'}"
                    for name, x in (("ping", ping), ("delivery", delivery))
                    if not (x and x["valid"])) or None,
                "info": info.get(t["target"], {}),
                "streams": streams.get(t["target"], []),
                "url": detail.get("url"),
            })
        elif t["scope"] == "pair":
            s = summaries.get(("pair", t["target"], "roundtrip"))
            pairs.append({
                "from": detail.get("from"), "to": detail.get("to"), "bus": detail.get("bus"),
                "status": t["status"], "status_reason": t["status_reason"],
                "roundtrip_ms": _latency(s),
                "success_ratio": _round(s["success_ratio"]) if s else None,
                "samples": s["count"] if s else 0,
                "valid": bool(s["valid"]) if s else False,
                "invalid_reason": s["invalid_reason"] if s else "no samples",
            })

    operational = sum(1 for e in engines if e["status"] == "operational")
    throughputs = [b["throughput_msgs_per_s"] for b in buses
                   if b["throughput_msgs_per_s"] is not None]
    slos = [{
        "name": r["slo"], "scope": r["scope"], "target": r["target"],
        "indicator": r["indicator"], "aggregate": r["aggregate"], "value": _round(r["value"]),
        "objective": _round(r["objective"]), "op": r["objective_op"],
        "objective_text": r["objective_text"], "baseline": _round(r["baseline"]),
        "passed": bool(r["passed"]), "outcome": r.get("outcome"),
        "attainment": _round(r["attainment"]),
        "grade": r["grade"], "severity": r["severity"], "key": bool(r["is_key"]),
        "reason": r["reason"], "error_budget_remaining": _round(r["error_budget_remaining"]),
        "burn_rate": _round(r["burn_rate"]),
    } for r in bundle["slo_results"]]
    settings = json.loads(run.get("settings") or "{}")
    return {
        "schema": "dualbus/results/v1",
        "run_id": run.get("run_id"),
        "started_at": _iso(run.get("started_at")),
        "finished_at": _iso(run.get("finished_at")),
        "platform": run.get("platform"),
        "status": run.get("status"),
        "engines": engines,
        "buses": buses,
        "pairs": pairs,
        "system": {
            "engines_total": len(engines),
            "engines_operational": operational,
            "availability": _round(operational / len(engines)) if engines else None,
            "combined_bus_throughput_msgs_per_s": _round(sum(throughputs), 1)
            if throughputs else None,
        },
        "slos": slos,
        "overall": {
            "grade": run.get("overall_grade"),
            "score": _round(run.get("overall_score")),
            "passed": run.get("overall_passed"),
            "result": run.get("overall_result"),
            "breaches": run.get("breaches"),
        },
        "methodology": {"probe_settings": settings, "sample_counts": bundle["sample_counts"]},
    }
