"""Recommendations: actions the report derives from its findings, one explicit rule each
(the `rule` field of every recommendation names it), sorted into `HORIZONS`."""

from __future__ import annotations

from typing import Any

from dualbus_pipeline.report.findings import (
    CAPACITY_HEADROOM,
    HORIZONS,
    SEVERITY_ORDER,
    baseline_comparisons,
    breaches,
    is_lag_series,
    is_optimization_slo,
    rising,
    target_title,
    trend_rows,
)
from dualbus_pipeline.report.formatting import fmt_ms, fmt_num, fmt_unit, fmt_value


def recommendations(results: dict[str, Any], opt: dict[str, Any],
                    trends: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Actions derived from findings, one rule each (the `rule` field names it)."""
    recs: list[dict[str, Any]] = []

    def add(horizon: str, rule: str, action: str, why: str) -> None:
        recs.append({"horizon": horizon, "rule": rule, "action": action, "why": why})

    for e in results.get("engines", []):
        title, status = e.get("title") or e["name"], e.get("status")
        reason = e.get("status_reason") or "no reason recorded"
        if status == "unreachable":
            add("Immediate", "unreachable → restart", f"Restart engine {title}", reason)
        elif status == "unhealthy":
            add("Immediate", "unhealthy → investigate", f"Investigate engine {title}", reason)
        elif status == "degraded":
            add("Immediate", "degraded → investigate", f"Investigate engine {title}", reason)
    for b in results.get("buses", []):
        title, status = b.get("title") or b["name"], b.get("status")
        if status != "operational":
            verb = "Restart" if status == "unreachable" else "Investigate"
            add("Immediate", f"{status} → {verb.lower()}", f"{verb} bus {title}",
                b.get("status_reason") or "no reason recorded")
    for p in results.get("pairs", []):
        if p.get("status") != "operational":
            add("Immediate", f"pair {p.get('status')} → check probe protocol",
                f"Check cross-engine path {p.get('from')} → {p.get('to')}",
                p.get("status_reason") or "no reason recorded")
    for s in breaches(results):
        if s.get("value") is None or is_optimization_slo(s):
            continue
        horizon = "Immediate" if SEVERITY_ORDER.get(str(s.get("severity")), 2) == 0 \
            else "This week"
        add(horizon, f"{s.get('severity')} SLO breached → fix",
            f"Bring {s['target']} back within {s['name']}",
            f"{s.get('aggregate')} = {fmt_value(s.get('value'), s.get('indicator'))}, "
            "objective "
            f"{s.get('objective_text')}")
    for e in results.get("engines", []):
        if e["name"] in opt["failing"]:
            agg = opt.get("aggregate") or "p50"
            add("This week", "above optimization target → optimize",
                f"Optimize engine {e.get('title') or e['name']}",
                f"{agg} {fmt_ms(e['latency_ms'].get(agg))} vs optimization target "
                f"{opt['text']} ms")
    _lag_rules(results, trends, add)
    _regression_rules(results, trends, add)
    _invalid_rules(results, add)
    for s in results.get("slos", []):
        att = s.get("attainment")
        if s.get("passed") and "throughput" in str(s.get("indicator")) and att is not None \
                and att < CAPACITY_HEADROOM:
            add("Capacity planning", "little headroom → plan capacity",
                f"Plan capacity for {s['target']}",
                f"{fmt_value(s.get('value'), s.get('indicator'))} vs objective "
                f"{s.get('objective_text')}: only "
                f"{att:.2f}× the objective")
    order = {h: i for i, h in enumerate(HORIZONS)}
    recs.sort(key=lambda r: order.get(r["horizon"], 9))
    return recs


def _lag_rules(results: dict[str, Any], trends: dict[str, Any] | None, add: Any) -> None:
    lag_series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in trend_rows(trends):
        s = row["series"]
        if is_lag_series(s):
            lag_series[(str(s.get("bus") or ""), str(s.get("target")))] = row["points"]
    for b in results.get("buses", []):
        for st in b.get("streams", []):
            lag = st.get("lag") or 0
            pending = st.get("pending") or 0
            if not lag and not pending:
                continue
            pts = lag_series.get((b["name"], st["engine"])) or lag_series.get(
                ("", st["engine"])) or lag_series.get(("", st["stream"]))
            where = f"stream {st['stream']} (group {st['group']}) on {b.get('title') or b['name']}"
            if pts and rising(pts):
                vals = ", ".join(fmt_num(p["value"]) for p in pts[-3:])
                add("Immediate", "rising lag → scale consumers",
                    f"Scale or fix the consumers of {where}", f"lag rose over runs: {vals}")
            else:
                note = "not rising" if pts else "no history yet to tell whether it is rising"
                add("This week", "lag present → watch consumers",
                    f"Watch the consumers of {where}",
                    f"lag {lag}, pending {pending} ({note})")


def _regression_rules(results: dict[str, Any], trends: dict[str, Any] | None,
                      add: Any) -> None:
    base_run = (trends or {}).get("baseline", {}) or {}
    run_label = base_run.get("run_id") or "the baseline"
    for row in trend_rows(trends):
        s = row["series"]
        if row["verdict"] == "regressed" and not is_lag_series(s):
            # lag has its own rule (scale consumers); this one is for latency/throughput
            add("This week", "regression → compare with baseline",
                f"Compare {s.get('label') or s.get('target')} with baseline run {run_label}",
                f"{s.get('metric')}: {fmt_unit(row['baseline'], s.get('unit'))} → "
                f"{fmt_unit(row['current'], s.get('unit'))}")
    for c in baseline_comparisons(results):
        if c["verdict"] == "regressed" and not c["slo"].get("passed"):
            s = c["slo"]
            add("This week", "regression → compare with baseline",
                f"Compare {s['target']} ({s['name']}) with baseline run {run_label}",
                f"{fmt_value(c['baseline'], s.get('indicator'))} → "
                f"{fmt_value(c['current'], s.get('indicator'))}")


def _invalid_rules(results: dict[str, Any], add: Any) -> None:
    for scope, key in (("engine", "engines"), ("bus", "buses"), ("pair", "pairs")):
        for t in results.get(key, []):
            if t.get("valid") or t.get("status") in ("unreachable", "failed"):
                continue
            reason = t.get("invalid_reason") or "summary marked invalid"
            add("This week", "invalid data → re-run / check probe settings",
                f"Re-run the probe for {scope} {target_title(scope, t)} or adjust the probe "
                "settings", f"no valid data ({reason})")

