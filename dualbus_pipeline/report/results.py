"""Build `results.json` (product.md §7) from a run's rows in the warehouse.

Field names here are a contract other tools depend on: add fields, never rename them.

Every latency figure is a nearest-rank percentile over the counted samples (probes/stats.py),
the same number the SLO of that figure judged (store/slo_queries.py uses `quantile_disc`).
`slos[].passed` is null for results that are not a verdict (`outcome` pending_baseline or
inconclusive); `overall.inconclusive` / `overall.pending` count them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dualbus_pipeline.slospec.gate import outcome_of

LATENCY_KEYS = ("mean", "p50", "p90", "p99", "p999", "max")
Row = dict[str, Any]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _latency(summary: Row | None) -> dict[str, float | None]:
    if summary is None:
        return dict.fromkeys(LATENCY_KEYS)
    return {k: _round(summary.get(k)) for k in LATENCY_KEYS}


def _round(v: Any, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def _guard(s: Row | None) -> Row:
    """What the measuring-without-disturbing machinery did to one summary (probes/)."""
    if s is None:
        return {"inconclusive": False, "replaced": 0, "solo_p50": None, "note": None}
    return {"inconclusive": bool(s.get("inconclusive")), "replaced": int(s.get("replaced") or 0),
            "solo_p50": _round(s.get("solo_p50")), "note": s.get("note")}


def _engine(t: Row, detail: Row, s: Row | None, hot: Row | None) -> Row:
    return {
        "name": t["target"], "title": t["title"], "status": t["status"],
        "status_reason": t["status_reason"], "vantage": t.get("vantage"),
        "requests": s["count"] if s else 0,
        "success_ratio": _round(s["success_ratio"]) if s else None,
        "latency_ms": _latency(s),
        "hot_latency_ms": _latency(hot if hot and hot["valid"] else None),
        "hot_requests": hot["count"] if hot else 0,
        "hot_valid": bool(hot and hot["valid"]),
        "service_ms": {"p50": _round(s["service_p50"]) if s else None,
                       "p99": _round(s["service_p99"]) if s else None},
        "valid": bool(s["valid"]) if s else False,
        "invalid_reason": s["invalid_reason"] if s else "no samples",
        **_guard(s),
        "capacity_rps": _round(t["throughput"], 1),
        "url": detail.get("url"),
    }


def _bus(t: Row, detail: Row, ping: Row | None, delivery: Row | None, info: Row,
         streams: list[Row]) -> Row:
    count = sum(x["count"] for x in (ping, delivery) if x)
    ok = sum(x["ok"] for x in (ping, delivery) if x)
    guard = _guard(delivery)
    return {
        "name": t["target"], "title": t["title"], "status": t["status"],
        "status_reason": t["status_reason"], "vantage": t.get("vantage"),
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
        # the guard's figures are the delivery series' (PING is not paced); re-takes of both
        **guard, "inconclusive": guard["inconclusive"] or _guard(ping)["inconclusive"],
        "replaced": guard["replaced"] + _guard(ping)["replaced"],
        "info": info, "streams": streams, "url": detail.get("url"),
    }


def _pair(t: Row, detail: Row, s: Row | None, hot: Row | None) -> Row:
    return {
        "from": detail.get("from"), "to": detail.get("to"), "bus": detail.get("bus"),
        "status": t["status"], "status_reason": t["status_reason"],
        "vantage": t.get("vantage"),
        "roundtrip_ms": _latency(s),
        "hot_roundtrip_ms": _latency(hot if hot and hot["valid"] else None),
        "hot_samples": hot["count"] if hot else 0,
        "success_ratio": _round(s["success_ratio"]) if s else None,
        "samples": s["count"] if s else 0,
        "valid": bool(s["valid"]) if s else False,
        "invalid_reason": s["invalid_reason"] if s else "no samples",
        **_guard(s),
    }


def _slo(r: Row) -> Row:
    outcome = outcome_of(r)
    judged = outcome in ("pass", "breach", "no_data")
    return {
        "name": r["slo"], "scope": r["scope"], "target": r["target"],
        "indicator": r["indicator"], "aggregate": r["aggregate"], "value": _round(r["value"]),
        "objective": _round(r["objective"]), "op": r["objective_op"],
        "objective_text": r["objective_text"], "baseline": _round(r["baseline"]),
        "passed": bool(r["passed"]) if judged else None, "outcome": outcome,
        "attainment": _round(r["attainment"]),
        "grade": r["grade"] if judged else None, "severity": r["severity"],
        "key": bool(r["is_key"]), "reason": r["reason"],
        "error_budget_remaining": _round(r["error_budget_remaining"]),
        "burn_rate": _round(r["burn_rate"]),
        "good": r.get("good"), "total": r.get("total"), "sli_target": r.get("sli_target"),
        "burn_state": r.get("burn_state"), "burn_text": r.get("burn_text"),
        "burn_windows": json.loads(r["burn_windows"]) if r.get("burn_windows") else None,
        "kind": r.get("slo_kind") or "objective",
    }


def _targets(bundle: dict[str, Any]) -> tuple[list[Row], list[Row], list[Row]]:
    summaries = {(s["scope"], s["target"], s["metric"]): s for s in bundle["summaries"]}
    info: dict[str, Row] = {}
    for row in bundle["bus_info"]:
        info.setdefault(row["bus"], {})[row["metric"]] = row["value"]
    streams: dict[str, list[Row]] = {}
    for s in bundle["streams"]:
        streams.setdefault(s["bus"], []).append({
            "engine": s["engine"], "stream": s["stream"], "group": s["grp"],
            "present": s["present"], "length": s["length"], "lag": s["lag"],
            "pending": s["pending"], "consumers": s["consumers"], "error": s["error"],
            "lag_ms": s.get("lag_ms"), "pending_age_ms": s.get("pending_age_ms"),
            "idle_ms": s.get("idle_ms"), "status": s.get("status"),
            "status_reason": s.get("status_reason")})
    by_engine: dict[str, list[Row]] = {}
    for bus, rows in streams.items():
        for row in rows:
            by_engine.setdefault(row["engine"], []).append({**row, "bus": bus})
    engines, buses, pairs = [], [], []
    for t in bundle["targets"]:
        detail = json.loads(t["detail"] or "{}")
        name = t["target"]
        if t["scope"] == "engine":
            engines.append({**_engine(t, detail, summaries.get(("engine", name, "latency")),
                                      summaries.get(("engine", name, "hot"))),
                            "consumer": consumer_health(by_engine.get(name, []))})
        elif t["scope"] == "bus":
            buses.append(_bus(t, detail, summaries.get(("bus", name, "ping")),
                              summaries.get(("bus", name, "delivery")), info.get(name, {}),
                              streams.get(name, [])))
        elif t["scope"] == "pair":
            pairs.append(_pair(t, detail, summaries.get(("pair", name, "roundtrip")),
                               summaries.get(("pair", name, "hot"))))
    return engines, buses, pairs


# worst first: what an engine's consumer health says is its least healthy stream's status
CONSUMER_ORDER = ("MISSING", "STOP", "STALL", "WARN", "OK")
NOT_CONSUMING = ("MISSING", "STOP", "STALL")


def consumer_health(rows: list[Row]) -> Row | None:
    """An engine's stream-consumer health: the worst of its streams, with why (None: no
    stream read, e.g. the bus was unreachable)."""
    judged = [r for r in rows if r.get("status") in CONSUMER_ORDER]
    if not judged:
        return None
    worst = min(judged, key=lambda r: CONSUMER_ORDER.index(r["status"]))
    bad = [r for r in judged if r["status"] != "OK"]
    return {"status": worst["status"], "consumed": worst["status"] not in NOT_CONSUMING,
            "reason": "; ".join(f"{r['stream']} on {r['bus']}: {r['status']}: "
                                f"{r['status_reason']}" for r in bad) or None,
            "streams": len(judged)}


def by_vantage(engines: list[Row], buses: list[Row], pairs: list[Row]) -> list[Row]:
    """The run's figures split by the vantage they were measured from (sharded probing)."""
    out: dict[str, Row] = {}
    for scope, rows in (("engines", engines), ("buses", buses), ("pairs", pairs)):
        for r in rows:
            v = out.setdefault(r.get("vantage") or "unknown", {
                "vantage": r.get("vantage") or "unknown", "engines": 0,
                "engines_operational": 0, "buses": 0, "pairs": 0, "no_data": 0})
            v[scope] += 1
            if scope == "engines" and r["status"] == "operational":
                v["engines_operational"] += 1
            if str(r.get("status_reason") or "").startswith("shard failed"):
                v["no_data"] += 1
    for v in out.values():
        v["availability"] = _round(v["engines_operational"] / v["engines"]) \
            if v["engines"] else None
    return sorted(out.values(), key=lambda v: str(v["vantage"]))


def build_results(bundle: dict[str, Any]) -> dict[str, Any]:
    run = bundle["run"] or {}
    engines, buses, pairs = _targets(bundle)
    operational = sum(1 for e in engines if e["status"] == "operational")
    throughputs = [b["throughput_msgs_per_s"] for b in buses
                   if b["throughput_msgs_per_s"] is not None]
    slos = [_slo(r) for r in bundle["slo_results"]]
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
        "vantages": by_vantage(engines, buses, pairs),
        "slos": slos,
        "overall": {
            "grade": run.get("overall_grade"),
            "score": _round(run.get("overall_score")),
            "passed": run.get("overall_passed"),
            "result": run.get("overall_result"),
            "breaches": run.get("breaches"),
            "inconclusive": sum(s["outcome"] == "inconclusive" for s in slos),
            "pending": sum(s["outcome"] == "pending_baseline" for s in slos),
        },
        "silences": [{"id": x["id"], "starts_at": _iso(x["starts_at"]),
                      "ends_at": _iso(x["ends_at"]), "target": x["target"], "slo": x["slo"],
                      "reason": x["reason"]} for x in bundle.get("silences") or []],
        "methodology": {"probe_settings": settings, "sample_counts": bundle["sample_counts"],
                        "replaced_samples": bundle.get("replaced_samples") or {},
                        "probe_cpu_s": _round(run.get("probe_cpu_s"), 3)},
    }
