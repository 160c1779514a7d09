"""Findings: what the report concludes from results.json, by explicit rules.

Owns the SLO outcomes as the report shows them (breaches, not-judged results, per-category
grades, error budgets), the maintenance list and the trend-vs-baseline comparison
(improvement factors, regressions). Engine tiers, the optimization target and readiness are
in engine_findings.py; the recommendation rules built on all of them in recommendations.py.
Everything here is computed from plain dicts (results.json, trend series, run history); the
templates only lay the outcome out.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from dualbus_pipeline.report.engine_findings import (
    ABOVE_TARGET,
    DEFAULT_OPTIMIZATION_TARGET_MS,
    DEFAULT_TIERS,
    STANDARD_TIER,
    is_optimization_slo,
    is_tier_slo,
    latency_tiers,
    optimization_target,
    readiness,
)
from dualbus_pipeline.slospec.gate import outcome_of
from dualbus_pipeline.slospec.model import GRADE_ORDER
from dualbus_pipeline.store.trends import REGRESSION_PCT

__all__ = ["ABOVE_TARGET", "DEFAULT_OPTIMIZATION_TARGET_MS", "DEFAULT_TIERS", "STANDARD_TIER",
           "is_optimization_slo", "is_tier_slo", "latency_tiers", "optimization_target",
           "readiness"]

# A metric counts as regressed/improved when it moved by more than this factor vs baseline.
# A move counts as better or worse past this factor; the trend tables flag a regression at
# the same bound (baseline.regression_pct, store/trends.py), and report_trends passes the
# configured one as `tolerance`.
TREND_TOLERANCE = 1 + REGRESSION_PCT / 100
# A passed higher-is-better capacity SLO with less headroom than this is a planning item.
CAPACITY_HEADROOM = 1.5

SEVERITY_ORDER = {"error": 0, "warning": 1}
HORIZONS = ("Immediate", "This week", "Capacity planning")
BREACHED = ("breach", "no_data")
NOT_JUDGED = ("inconclusive", "pending_baseline")

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


def category_of(slo: dict[str, Any]) -> str:
    ind = str(slo.get("indicator", ""))
    if ind.startswith("pair."):
        return "cross_engine"
    if "lag" in ind or "pending" in ind or ind.startswith("stream."):
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
            elif (t.get("consumer") or {}).get("consumed") is False:
                c = t["consumer"]  # healthy on HTTP, yet reads nothing from its bus
                out.append({"scope": scope, "name": target_name(scope, t),
                            "title": target_title(scope, t),
                            "status": f"not consuming ({c['status']})",
                            "reason": f"answers healthy but {c['reason']}",
                            "action": "restart or fix its stream consumer"})
    return out


def _action_for_status(scope: str, status: str) -> str:
    if scope == "pair":
        return "check the probe protocol on both engines and the bus between them"
    return {"unreachable": "restart",
            "starting": "wait for it to finish starting; investigate if it stays starting",
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


# --------------------------------------------------------------------------- SLOs


def breaches(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Breaches and no data; pending baseline and inconclusive are neither (docs/slos.md)."""
    rows = [s for s in results.get("slos", []) if outcome_of(s) in BREACHED
            and not is_tier_slo(s)]
    return sorted(rows, key=lambda s: (SEVERITY_ORDER.get(str(s.get("severity")), 2),
                                       not s.get("key"), s.get("name"), s.get("target")))


def not_judged(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Results that are not a verdict, grouped so that one cause is one line:

    * ``inconclusive``: per target and reason (every SLO reading that summary shares it),
      ``{"scope", "target", "reason", "slos"}``;
    * ``pending_baseline``: per SLO and reason, ``{"slo", "reason", "targets"}``.
    """
    blind: dict[tuple[str, str, str], list[str]] = {}
    pending: dict[tuple[str, str], list[str]] = {}
    for s in results.get("slos", []):
        outcome, reason = outcome_of(s), str(s.get("reason") or "")
        if outcome == "inconclusive":
            blind.setdefault((str(s.get("scope")), s["target"], reason), []).append(s["name"])
        elif outcome == "pending_baseline":
            pending.setdefault((s["name"], reason), []).append(s["target"])
    return {"inconclusive": [{"scope": k[0], "target": k[1], "reason": k[2], "slos": v}
                             for k, v in blind.items()],
            "pending_baseline": [{"slo": k[0], "reason": k[1], "targets": v}
                                 for k, v in pending.items()]}


def categories(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One grade per category: the worst graded SLO in it, with that SLO as justification.
    Results that are not a verdict are counted apart, never as missed."""
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for s in results.get("slos", []):
        if not is_tier_slo(s):
            by_cat.setdefault(category_of(s), []).append(s)
    out = []
    for key, label in CATEGORIES:
        rows = by_cat.get(key)
        if not rows:
            continue
        outcomes = [outcome_of(r) for r in rows]
        graded = [r for r in rows if r.get("grade") is not None]
        worst = min(graded, key=lambda r: (-grade_rank(r.get("grade")),
                                           r.get("attainment") or 0.0)) if graded else None
        out.append({"key": key, "name": label, "grade": worst["grade"] if worst else None,
                    "worst": worst, "passed": outcomes.count("pass"),
                    "total": sum(o not in NOT_JUDGED for o in outcomes),
                    "inconclusive": outcomes.count("inconclusive"),
                    "pending": outcomes.count("pending_baseline"),
                    "ungraded": [r for r, o in zip(rows, outcomes, strict=True)
                                 if r.get("grade") is None and o not in NOT_JUDGED]})
    return out


def error_budgets(results: dict[str, Any]) -> dict[str, Any]:
    """SLO × target budgets worth a row: burning (a burn-rate alert state), spent in part, or
    spent by this run; the untouched ones (100 % left, nothing burned) only counted."""
    rows = [s for s in results.get("slos", []) if s.get("error_budget_remaining") is not None]
    shown = [s for s in rows if s.get("burn_state") in ("page", "ticket")
             or s["error_budget_remaining"] < 1.0 or (s.get("burn_rate") or 0) > 0]
    order = {"page": 0, "ticket": 1}
    shown.sort(key=lambda s: (order.get(s.get("burn_state") or "", 2),
                              s["error_budget_remaining"]))
    return {"rows": shown, "untouched": len(rows) - len(shown), "total": len(rows)}


def baseline_comparisons(results: dict[str, Any]) -> list[dict[str, Any]]:
    """SLOs evaluated against a baseline: current vs baseline and the improvement factor."""
    out = []
    for s in results.get("slos", []):
        base, value = s.get("baseline"), s.get("value")
        if base is None:
            continue
        out.append({"slo": s, **_compare(base, value, lower_is_better(s.get("op")))})
    return out


def _compare(base: float | None, value: float | None, lower_better: bool,
             tolerance: float = TREND_TOLERANCE) -> dict[str, Any]:
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
    elif factor >= tolerance:
        verdict = "improved"
    elif factor <= 1 / tolerance:
        verdict = "regressed"
    else:
        verdict = "steady"
    return {"baseline": base, "current": value, "factor": factor, "verdict": verdict}


# --------------------------------------------------------------------------- trends


def tolerance(trends: dict[str, Any] | None) -> float:
    return float((trends or {}).get("tolerance") or TREND_TOLERANCE)


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
        cmp = _compare(base, current, lower_better, tolerance(trends))
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
