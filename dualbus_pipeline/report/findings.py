"""Findings: what the report concludes from results.json, by explicit rules.

Owns the latency tiers, the readiness groups, the per-category grades and the trend-vs-baseline
comparison (improvement factors, regressions); the recommendation rules built on them are in
recommendations.py. Everything here is
computed from plain dicts (results.json, trend series, run history); the templates only lay
the outcome out. Defaults that apply when the SLO files do not say otherwise live in one
place, `DEFAULT_TIERS` / `DEFAULT_OPTIMIZATION_TARGET_MS` below, and the report says when it
used them.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from typing import Any

# Used only when no SLO named like a tier (`*tier*` on engine.latency_ms) exists. Seed values:
# ultra-low < 0.3 ms, high performance < 0.4 ms, everything slower is "standard".
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (("Ultra-low latency", 0.3),
                                                ("High performance", 0.4))
STANDARD_TIER = "Standard"
# Used only when no SLO named like `*optimi*` on engine.latency_ms exists (the seed's < 0.5 ms).
DEFAULT_OPTIMIZATION_TARGET_MS = 0.5
# A metric counts as regressed/improved when it moved by more than this factor vs baseline.
TREND_TOLERANCE = 1.10
# A passed higher-is-better capacity SLO with less headroom than this is a planning item.
CAPACITY_HEADROOM = 1.5

GRADE_ORDER = ("A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E", "F")
SEVERITY_ORDER = {"error": 0, "critical": 0, "warning": 1}
HORIZONS = ("Immediate", "This week", "Capacity planning")

CATEGORIES = (
    ("latency", "Latency"),
    ("cross_engine", "Cross-engine communication"),
    ("throughput", "Throughput capacity"),
    ("reliability", "Reliability and availability"),
    ("delivery", "Message delivery"),
    ("consumers", "Consumer health"),
    ("other", "Other"),
)


def grade_rank(grade: str | None) -> int:
    if grade is None:
        return len(GRADE_ORDER) + 1
    return GRADE_ORDER.index(grade) if grade in GRADE_ORDER else len(GRADE_ORDER)


def lower_is_better(op: str | None) -> bool:
    return op in ("<", "<=")


def is_tier_slo(slo: dict[str, Any]) -> bool:
    return "tier" in str(slo.get("name", "")).lower() and str(
        slo.get("indicator", "")).startswith("engine.latency")


def is_optimization_slo(slo: dict[str, Any]) -> bool:
    return "optimi" in str(slo.get("name", "")).lower() and str(
        slo.get("indicator", "")).startswith("engine.latency")


def category_of(slo: dict[str, Any]) -> str:
    ind = str(slo.get("indicator", ""))
    if ind.startswith("pair."):
        return "cross_engine"
    if "lag" in ind or "pending" in ind:
        return "consumers"
    if "throughput" in ind:
        return "throughput"
    if "availability" in ind or ind.endswith(".status"):
        return "reliability"
    if "success" in ind:
        return "delivery"
    if ind.endswith("_ms"):
        return "latency"
    return "other"


def _tier_label(name: str) -> str:
    words = [w for w in name.replace("-", "_").split("_")
             if w and w.lower() not in ("engine", "engines", "latency", "tier", "tiers")]
    return " ".join(words).capitalize() if words else name


# --------------------------------------------------------------------------- engines


def latency_tiers(results: dict[str, Any]) -> dict[str, Any]:
    """Group operational engines with valid data into tiers: from tier SLOs, else defaults."""
    engines = [e for e in results.get("engines", [])
               if e.get("status") == "operational" and e.get("valid")]
    tier_slos = [s for s in results.get("slos", []) if is_tier_slo(s)]
    groups: list[dict[str, Any]] = []
    assigned: dict[str, str] = {}
    if tier_slos:
        source = "slo"
        by_name: dict[str, list[dict[str, Any]]] = {}
        for s in tier_slos:
            by_name.setdefault(s["name"], []).append(s)
        specs = []
        for name, rows in by_name.items():
            objective = next((r["objective"] for r in rows if r.get("objective") is not None),
                             None)
            first = rows[0]
            specs.append((objective if objective is not None else float("inf"), name, first,
                          {r["target"]: r for r in rows}))
        specs.sort(key=lambda x: x[0])
        for _, name, first, by_target in specs:
            members = []
            for e in engines:
                row = by_target.get(e["name"])
                if e["name"] not in assigned and row is not None and row.get("passed"):
                    assigned[e["name"]] = name
                    members.append(e)
            groups.append({"name": _tier_label(name), "slo": name,
                           "rule": f"{first.get('aggregate')} {first.get('objective_text')} ms",
                           "engines": _by_p50(members)})
    else:
        source = "default"
        for label, limit in DEFAULT_TIERS:
            members = [e for e in engines if e["name"] not in assigned
                       and e["latency_ms"].get("p50") is not None
                       and e["latency_ms"]["p50"] < limit]
            for e in members:
                assigned[e["name"]] = label
            groups.append({"name": label, "slo": None, "rule": f"p50 < {limit:g} ms",
                           "engines": _by_p50(members)})
    rest = [e for e in engines if e["name"] not in assigned]
    last = groups[-1]["rule"] if groups else "no tier defined"
    groups.append({"name": STANDARD_TIER, "slo": None, "rule": f"slower than {last}",
                   "engines": _by_p50(rest)})
    return {"source": source, "groups": groups}


def _by_p50(engines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(engines, key=lambda e: (e["latency_ms"].get("p50") is None,
                                          e["latency_ms"].get("p50") or 0.0, e["name"]))


def optimization_target(results: dict[str, Any]) -> dict[str, Any]:
    """The per-engine optimization objective: its SLO rows when present, else the default."""
    rows = [s for s in results.get("slos", []) if is_optimization_slo(s)]
    if rows:
        first = rows[0]
        failing = {r["target"] for r in rows if not r.get("passed") and r.get("value") is not None}
        return {"source": "slo", "slo": first["name"], "objective": first.get("objective"),
                "aggregate": first.get("aggregate"), "text": first.get("objective_text"),
                "failing": failing}
    failing = {e["name"] for e in results.get("engines", [])
               if e.get("valid") and e.get("status") == "operational"
               and (e["latency_ms"].get("p50") or 0.0) >= DEFAULT_OPTIMIZATION_TARGET_MS}
    return {"source": "default", "slo": None, "objective": DEFAULT_OPTIMIZATION_TARGET_MS,
            "aggregate": "p50", "text": f"< {DEFAULT_OPTIMIZATION_TARGET_MS:g}",
            "failing": failing}


def maintenance(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Engines, buses and pairs that are not operational, with the recorded reason."""
    out = []
    for scope, key in (("engine", "engines"), ("bus", "buses"), ("pair", "pairs")):
        for t in results.get(key, []):
            if t.get("status") != "operational":
                out.append({"scope": scope, "name": target_name(scope, t),
                            "title": target_title(scope, t), "status": t.get("status"),
                            "reason": t.get("status_reason") or "no reason recorded",
                            "action": _action_for_status(scope, str(t.get("status")))})
    return out


def _action_for_status(scope: str, status: str) -> str:
    if scope == "pair":
        return "check the probe protocol on both engines and the bus between them"
    return {"unreachable": "restart",
            "unhealthy": "investigate the service (it answers but reports unhealthy)",
            "degraded": "investigate errors and slow responses"}.get(status, "investigate")


def target_name(scope: str, t: dict[str, Any]) -> str:
    if scope == "pair":
        return f"{t.get('from')}->{t.get('to')}"
    return str(t.get("name"))


def target_title(scope: str, t: dict[str, Any]) -> str:
    if scope == "pair":
        return f"{t.get('from')} → {t.get('to')}"
    return str(t.get("title") or t.get("name"))


def readiness(results: dict[str, Any], opt: dict[str, Any]) -> list[dict[str, Any]]:
    """Production ready / optimization candidates / maintenance required / not assessed."""
    failed_by_engine: dict[str, list[str]] = {}
    for s in results.get("slos", []):
        if s.get("scope") == "engine" and not s.get("passed") and not is_tier_slo(s) \
                and not is_optimization_slo(s) and s.get("value") is not None:
            failed_by_engine.setdefault(s["target"], []).append(s["name"])
    ready, optimize, broken, unknown = [], [], [], []
    for e in results.get("engines", []):
        if e.get("status") != "operational":
            broken.append({"engine": e, "why": f"{e.get('status')}: "
                           f"{e.get('status_reason') or 'no reason recorded'}"})
        elif not e.get("valid"):
            unknown.append({"engine": e, "why": f"no valid data ({e.get('invalid_reason')})"})
        elif e["name"] in opt["failing"] or e["name"] in failed_by_engine:
            why = []
            if e["name"] in opt["failing"]:
                why.append(f"{opt['aggregate']} above the optimization target "
                           f"{opt['text']} ms")
            why += [f"breaches {n}" for n in failed_by_engine.get(e["name"], [])]
            optimize.append({"engine": e, "why": "; ".join(why)})
        else:
            ready.append({"engine": e, "why": "operational, every engine SLO met"})
    total = len(results.get("engines", []))
    return [
        {"key": "ready", "name": "Production ready", "members": ready, "total": total},
        {"key": "optimize", "name": "Optimization candidates", "members": optimize,
         "total": total},
        {"key": "maintenance", "name": "Maintenance required", "members": broken, "total": total},
        {"key": "unknown", "name": "Not assessed (no valid data)", "members": unknown,
         "total": total},
    ]


# --------------------------------------------------------------------------- SLOs


def breaches(results: dict[str, Any]) -> list[dict[str, Any]]:
    # "insufficient baseline" is neither a pass nor a breach (docs/slos.md): not listed here
    rows = [s for s in results.get("slos", []) if not s.get("passed") and not is_tier_slo(s)
            and s.get("outcome") != "insufficient_baseline"]
    return sorted(rows, key=lambda s: (SEVERITY_ORDER.get(str(s.get("severity")), 2),
                                       not s.get("key"), s.get("name"), s.get("target")))


def categories(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One grade per category: the worst graded SLO in it, with that SLO as justification."""
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for s in results.get("slos", []):
        if not is_tier_slo(s):
            by_cat.setdefault(category_of(s), []).append(s)
    out = []
    for key, label in CATEGORIES:
        rows = by_cat.get(key)
        if not rows:
            continue
        graded = [r for r in rows if r.get("grade") is not None]
        passed = sum(1 for r in rows if r.get("passed"))
        worst = min(graded, key=lambda r: (-grade_rank(r.get("grade")),
                                           r.get("attainment") or 0.0)) if graded else None
        ungraded = [r for r in rows if r.get("grade") is None]
        out.append({"key": key, "name": label, "grade": worst["grade"] if worst else None,
                    "worst": worst, "passed": passed, "total": len(rows),
                    "ungraded": ungraded})
    return out


def error_budgets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in results.get("slos", []) if s.get("error_budget_remaining") is not None
            or s.get("burn_rate") is not None]


def baseline_comparisons(results: dict[str, Any]) -> list[dict[str, Any]]:
    """SLOs evaluated against a baseline: current vs baseline and the improvement factor."""
    out = []
    for s in results.get("slos", []):
        base, value = s.get("baseline"), s.get("value")
        if base is None:
            continue
        out.append({"slo": s, **_compare(base, value, lower_is_better(s.get("op")))})
    return out


def _compare(base: float | None, value: float | None, lower_better: bool) -> dict[str, Any]:
    """factor > 1 means better than baseline, whichever direction the metric runs."""
    if base is None or value is None:
        return {"baseline": base, "current": value, "factor": None, "verdict": "no data"}
    if lower_better:
        factor = base / value if value > 0 else None
    else:
        factor = value / base if base > 0 else None
    if factor is None:
        verdict = "steady" if base == value else ("improved" if (value < base) == lower_better
                                                  else "regressed")
    elif factor >= TREND_TOLERANCE:
        verdict = "improved"
    elif factor <= 1 / TREND_TOLERANCE:
        verdict = "regressed"
    else:
        verdict = "steady"
    return {"baseline": base, "current": value, "factor": factor, "verdict": verdict}


# --------------------------------------------------------------------------- trends


def trend_rows(trends: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per series: baseline (given, else median of the earlier points), current, factor."""
    if not trends:
        return []
    out = []
    for s in trends.get("series", []):
        points = [p for p in s.get("points", []) if p.get("value") is not None]
        current = s.get("current")
        if current is None and points:
            current = points[-1]["value"]
        base = s.get("baseline")
        if base is None and len(points) >= 2:
            base = statistics.median(p["value"] for p in points[:-1])
        lower_better = s.get("direction", "lower") == "lower"
        cmp = _compare(base, current, lower_better)
        if s.get("regression") is not None and cmp["verdict"] != "no data":
            # the trend tables' own flag wins, so the report agrees with alerts and the UI
            if s["regression"]:
                cmp["verdict"] = "regressed"
            elif cmp["verdict"] == "regressed":
                cmp["verdict"] = "steady"
        out.append({"series": s, "points": points, **cmp})
    rank = {"regressed": 0, "improved": 1, "steady": 2, "no data": 3}
    return sorted(out, key=lambda r: rank.get(r["verdict"], 4))


def is_lag_series(s: dict[str, Any]) -> bool:
    return "lag" in str(s.get("metric", "")) or "lag" in str(s.get("indicator", ""))


def rising(points: list[dict[str, Any]], last: int = 3) -> bool:
    """Strictly increasing over the last `last` points (at least two), ending above zero."""
    vals = [p["value"] for p in points[-last:]]
    return len(vals) >= 2 and vals[-1] > 0 and all(
        b > a for a, b in itertools.pairwise(vals))
