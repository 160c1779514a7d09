"""Recommendations: actions the report derives from its findings, one explicit rule each
(the `rule` field of every recommendation names it), sorted into `HORIZONS`.

**One cause is one line.** Eleven engines above the same objective are one finding ("11
engines above the 10 ms p99 objective: …"), not eleven: a reader acts on causes. The
exception is maintenance (an engine, bus or pair that is unreachable, unhealthy, degraded or
failed): each needs its own action, so each keeps its own line — and its SLO breaches are
covered by that line, not repeated.
"""

from __future__ import annotations

from collections.abc import Callable
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
from dualbus_pipeline.slospec.gate import outcome_of

Add = Callable[[str, str, str, str], None]
# Past this many, a grouped line names the worst ones and counts the rest.
NAMED = 12
_SCOPE_WORDS = {"engine": ("engine", "engines"), "bus": ("bus", "buses"),
                "pair": ("path", "paths"), "system": ("system", "system")}


def listing(items: list[str]) -> str:
    """'a, b, c' — at most NAMED items, then 'and N more'."""
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


def count_of(n: int, scope: str) -> str:
    one, many = _SCOPE_WORDS.get(scope, ("target", "targets"))
    return f"{n} {one if n == 1 else many}"


def recommendations(results: dict[str, Any], opt: dict[str, Any],
                    trends: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Actions derived from findings, one rule each (the `rule` field names it)."""
    recs: list[dict[str, Any]] = []

    def add(horizon: str, rule: str, action: str, why: str) -> None:
        recs.append({"horizon": horizon, "rule": rule, "action": action, "why": why})

    _maintenance_rules(results, add)
    _breach_rules(results, add)
    _optimization_rule(results, opt, add)
    _consumer_rules(results, add)
    _lag_rules(results, trends, add)
    _regression_rules(results, trends, add)
    _invalid_rules(results, add)
    _capacity_rules(results, add)
    order = {h: i for i, h in enumerate(HORIZONS)}
    recs.sort(key=lambda r: order.get(r["horizon"], 9))
    return recs


def _maintenance_rules(results: dict[str, Any], add: Add) -> None:
    """One line per target that is not operational: each needs its own action."""
    for e in results.get("engines", []):
        title, status = e.get("title") or e["name"], e.get("status")
        reason = e.get("status_reason") or "no reason recorded"
        if status == "unreachable":
            add("Immediate", "unreachable → restart", f"Restart engine {title}", reason)
        elif status in ("unhealthy", "degraded"):
            add("Immediate", f"{status} → investigate", f"Investigate engine {title}", reason)
        elif status == "starting":
            add("This week", "starting → check it finishes",
                f"Check that engine {title} finishes starting", reason)
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


def _down(results: dict[str, Any]) -> dict[str, set[str]]:
    """Targets under maintenance, per scope (their breaches are that line's business)."""
    out: dict[str, set[str]] = {"engine": set(), "bus": set(), "pair": set()}
    for scope, key in (("engine", "engines"), ("bus", "buses"), ("pair", "pairs")):
        for t in results.get(key, []):
            if t.get("status") != "operational":
                out[scope].add(f"{t.get('from')}->{t.get('to')}" if scope == "pair"
                               else str(t.get("name")))
    return out


def _breach_rules(results: dict[str, Any], add: Add) -> None:
    """One line per cause: the breaches of one indicator on the same targets (a run's miss and
    its 7-day window's are one finding), naming the targets worst first."""
    down = _down(results)
    by_slo: dict[str, list[dict[str, Any]]] = {}
    for s in breaches(results):
        if s.get("value") is None or is_optimization_slo(s) \
                or s["target"] in down.get(str(s.get("scope")), set()):
            continue  # no data: the invalid-data rule; down targets: their own line
        by_slo.setdefault(s["name"], []).append(s)
    causes: dict[tuple[str, tuple[str, ...]], list[list[dict[str, Any]]]] = {}
    for rows in by_slo.values():
        key = (str(rows[0].get("indicator")), tuple(sorted(r["target"] for r in rows)))
        causes.setdefault(key, []).append(
            sorted(rows, key=lambda r: r.get("attainment") or 0.0))
    for groups in causes.values():
        groups.sort(key=lambda g: SEVERITY_ORDER.get(str(g[0].get("severity")), 2))
        rows, first = groups[0], groups[0][0]
        horizon = "Immediate" if SEVERITY_ORDER.get(str(first.get("severity")), 2) == 0 \
            else "This week"
        shown = listing([f"{r['target']} ({fmt_value(r.get('value'), r.get('indicator'))})"
                         for r in rows])
        what = (f"the {first['target']}" if first.get("scope") == "system"
                else count_of(len(rows), str(first.get("scope"))))
        why = f"{first.get('aggregate')} vs objective {first.get('objective_text')}: {shown}"
        if "availability" in str(first.get("indicator")) and down["engine"]:
            titles = [e.get("title") or e["name"] for e in results.get("engines", [])
                      if e["name"] in down["engine"]]
            why += f"; not operational: {listing(titles)}"
        add(horizon, f"{first.get('severity')} SLO breached → fix",
            f"Bring {what} back within {', '.join(g[0]['name'] for g in groups)}", why)


def _optimization_rule(results: dict[str, Any], opt: dict[str, Any], add: Add) -> None:
    values = opt.get("values") or {}
    titles = {e["name"]: e.get("title") or e["name"] for e in results.get("engines", [])}
    failing = sorted(opt["failing"], key=lambda n: -(values.get(n) or 0.0))
    if not failing:
        return
    target = f"{float(opt['objective']):g} ms" if opt.get("objective") is not None \
        else str(opt["text"])
    add("This week", "above optimization target → optimize",
        f"Optimize {count_of(len(failing), 'engine')} above the {target} optimization "
        f"target {opt['path']}",
        f"{opt.get('aggregate') or 'p50'} {opt['path']}: "
        + listing([f"{titles.get(n, n)} ({fmt_ms(values.get(n))})" for n in failing])
        + f" vs {opt['text']} ms")


def _consumer_rules(results: dict[str, Any], add: Add) -> None:
    """Engines healthy on HTTP whose streams nobody reads: /health alone cannot see them."""
    silent = [e for e in results.get("engines", []) if e.get("status") == "operational"
              and (e.get("consumer") or {}).get("consumed") is False]
    if silent:
        add("Immediate", "not consuming → restart the consumer",
            f"Restart or fix the stream consumer of {len(silent)} engine(s) that answer "
            "healthy but read nothing from their bus",
            listing([f"{e.get('title') or e['name']}: {e['consumer']['reason']}"
                     for e in silent]))


def _lag_rules(results: dict[str, Any], trends: dict[str, Any] | None, add: Add) -> None:
    # the trend tables' lag series: per engine (engine.consumer_lag, where an SLO uses it) and
    # per bus (bus.consumer_lag, always trended: the largest lag of the bus's groups)
    lag_series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in trend_rows(trends):
        s = row["series"]
        if is_lag_series(s) and "pending" not in str(s.get("indicator", "")):
            lag_series[(str(s.get("scope")), str(s.get("target")))] = row["points"]
    growing, present = [], []
    for b in results.get("buses", []):
        for st in b.get("streams", []):
            lag, pending = st.get("lag") or 0, st.get("pending") or 0
            if not lag and not pending:
                continue
            pts = lag_series.get(("engine", st["engine"])) or lag_series.get(
                ("bus", b["name"]))
            where = f"stream {st['stream']} (group {st['group']}) on {b.get('title') or b['name']}"
            if pts and rising(pts):
                vals = ", ".join(fmt_num(p["value"]) for p in pts[-3:])
                growing.append(f"{where}: lag rose over runs: {vals}")
            else:
                note = "not rising" if pts else "no history yet to tell whether it is rising"
                present.append(f"{where}: lag {lag}, pending {pending} ({note})")
    if growing:
        add("Immediate", "rising lag → scale consumers",
            f"Scale or fix the consumers of {len(growing)} stream(s) whose lag is rising",
            listing(growing))
    if present:
        add("This week", "lag present → watch consumers",
            f"Watch the consumers of {len(present)} stream(s) with lag", listing(present))


def _regression_rules(results: dict[str, Any], trends: dict[str, Any] | None,
                      add: Add) -> None:
    base_run = (trends or {}).get("baseline", {}) or {}
    run_label = base_run.get("run_id") or "the baseline"
    moved = []
    for row in trend_rows(trends):
        s = row["series"]
        if row["verdict"] == "regressed" and not is_lag_series(s):  # lag: its own rule
            moved.append(f"{s.get('label') or s.get('target')} "
                         f"{fmt_unit(row['baseline'], s.get('unit'))} → "
                         f"{fmt_unit(row['current'], s.get('unit'))}")
    if moved:
        add("This week", "regression → compare with baseline",
            f"Compare {len(moved)} regressed series with baseline run {run_label}",
            listing(moved))
    by_slo: dict[str, list[str]] = {}
    for c in baseline_comparisons(results):
        s = c["slo"]
        if c["verdict"] == "regressed" and outcome_of(s) == "breach":
            by_slo.setdefault(s["name"], []).append(
                f"{s['target']} {fmt_value(c['baseline'], s.get('indicator'))} → "
                f"{fmt_value(c['current'], s.get('indicator'))}")
    for name, items in by_slo.items():
        add("This week", "regression → compare with baseline",
            f"Compare {len(items)} target(s) of {name} with baseline run {run_label}",
            listing(items))


def _invalid_rules(results: dict[str, Any], add: Add) -> None:
    """Targets without valid data, as one line per cause: inconclusive (the probe host could
    not measure honestly) apart from the rest (too few samples, ...)."""
    blind: list[str] = []
    invalid: list[str] = []
    for scope, key in (("engine", "engines"), ("bus", "buses"), ("pair", "pairs")):
        for t in results.get(key, []):
            if t.get("valid") or t.get("status") in ("unreachable", "failed"):
                continue
            name = f"{scope} {target_title(scope, t)}"
            reason = t.get("invalid_reason") or "summary marked invalid"
            (blind if t.get("inconclusive") else invalid).append(f"{name} ({reason})")
    if blind:
        add("This week", "inconclusive → re-run on a quieter probe host",
            f"Re-run the probe for {len(blind)} inconclusive target(s) when the probe host is "
            "quieter, or lower probe rates and engines in flight", listing(blind))
    if invalid:
        add("This week", "invalid data → re-run / check probe settings",
            f"Re-run the probe for {len(invalid)} target(s) without valid data or adjust the "
            "probe settings", listing(invalid))


def _capacity_rules(results: dict[str, Any], add: Add) -> None:
    by_slo: dict[str, list[dict[str, Any]]] = {}
    for s in results.get("slos", []):
        att = s.get("attainment")
        if outcome_of(s) == "pass" and "throughput" in str(s.get("indicator")) \
                and att is not None and att < CAPACITY_HEADROOM:
            by_slo.setdefault(s["name"], []).append(s)
    for name, rows in by_slo.items():
        items = [f"{r['target']} ({fmt_value(r.get('value'), r.get('indicator'))}, only "
                 f"{r['attainment']:.2f}× the objective)" for r in rows]
        add("Capacity planning", "little headroom → plan capacity",
            f"Plan capacity for {len(rows)} target(s) of {name}",
            f"objective {rows[0].get('objective_text')}: {listing(items)}")
