"""Engine findings: latency tiers, the optimization target and production readiness.

Tiers and the optimization target describe the engine's **hot path** (`engine.hot_latency_ms`:
back-to-back requests on a warm connection, like `wrk -c1`), the figure the seed's tiers
were written for; the paced latency (`engine.latency_ms`) also pays idle wake-ups and is
judged by its own SLOs. SLOs are recognised by their indicator: the optimization SLO is the
engine SLO on `engine.hot_latency_ms` p50 (or any engine latency SLO named `*optimi*`), tier
SLOs are engine latency SLOs named `*tier*`. Without them the defaults below apply to the hot
p50 in results.json (`engines[].hot_latency_ms`), else to the paced p50 for runs stored before
the hot path was measured; the report says which.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dualbus_pipeline.slospec.gate import outcome_of

HOT = "engine.hot_latency_ms"
PACED = "engine.latency_ms"
ENGINE_LATENCY = (HOT, PACED)
# Used only when no tier SLO exists. Seed values: ultra-low < 0.3 ms, high performance
# < 0.4 ms; "standard" up to the optimization target; slower engines are above it.
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (("Ultra-low latency", 0.3),
                                                ("High performance", 0.4))
STANDARD_TIER = "Standard"
ABOVE_TARGET = "Above the optimization target"
# Used only when no optimization SLO exists (the seed's < 0.5 ms).
DEFAULT_OPTIMIZATION_TARGET_MS = 0.5

Row = dict[str, Any]


def is_tier_slo(slo: Row) -> bool:
    """An SLO whose `kind: tier` groups engines by its grade bands (never by its name)."""
    return slo.get("kind") == "tier"


def is_optimization_slo(slo: Row) -> bool:
    """The optimization target: `kind: optimization` in the spec."""
    return slo.get("kind") == "optimization"


_HOT_BASIS = {"key": "hot_latency_ms", "label": "hot-path p50"}
_PACED_BASIS = {"key": "latency_ms", "label": "paced p50"}


def basis(results: Row) -> dict[str, str]:
    """Which p50 tiers engines: the tier SLOs' indicator when there are tier SLOs; else the
    hot path when the run measured it, else paced."""
    tier = next((s for s in results.get("slos", []) if is_tier_slo(s)), None)
    if tier is not None:
        return _HOT_BASIS if tier.get("indicator") == HOT else _PACED_BASIS
    hot = any((e.get("hot_latency_ms") or {}).get("p50") is not None
              for e in results.get("engines", []))
    return _HOT_BASIS if hot else _PACED_BASIS


def tier_p50(e: Row, key: str) -> float | None:
    value = (e.get(key) or {}).get("p50")
    return None if value is None else float(value)


def _tierable(results: Row, key: str) -> list[Row]:
    # the hot series has its own validity; the paced one is the engine's `valid`
    return [e for e in results.get("engines", []) if e.get("status") == "operational"
            and tier_p50(e, key) is not None and (key == "hot_latency_ms" or e.get("valid"))]


def latency_tiers(results: Row) -> dict[str, Any]:
    """Group operational engines into tiers: from tier SLOs, else the defaults on the basis
    p50 (module docstring), with the engines above the optimization target last."""
    b = basis(results)
    engines = _tierable(results, b["key"])
    tier_slos = [s for s in results.get("slos", []) if is_tier_slo(s)]
    if tier_slos:
        groups, tiered = _slo_tiers(tier_slos, engines, b["key"])
        rest = [e for e in engines if e["name"] not in tiered]
        last = groups[-1]["rule"] if groups else "no tier defined"
        groups.append({"name": STANDARD_TIER, "slo": None, "rule": f"slower than {last}",
                       "engines": _by_p50(rest, b["key"])})
        return {"source": "slo", "basis": b, "groups": groups}
    opt = optimization_target(results)
    limits = [*DEFAULT_TIERS, (STANDARD_TIER, float(opt["objective"]))]
    groups = []
    assigned: set[str] = set()
    for label, limit in limits:
        members = [e for e in engines if e["name"] not in assigned
                   and (tier_p50(e, b["key"]) or 0.0) < limit]
        assigned |= {e["name"] for e in members}
        groups.append({"name": label, "slo": None, "rule": f"{b['label']} < {limit:g} ms",
                       "engines": _by_p50(members, b["key"])})
    rest = [e for e in engines if e["name"] not in assigned]
    groups.append({"name": ABOVE_TARGET, "slo": opt["slo"],
                   "rule": f"{b['label']} ≥ {float(opt['objective']):g} ms",
                   "engines": _by_p50(rest, b["key"])})
    return {"source": "default", "basis": b, "groups": groups}


def _slo_tiers(tier_slos: list[Row], engines: list[Row],
               key: str) -> tuple[list[Row], set[str]]:
    """Tiers from tier SLOs: an engine joins the tightest tier SLO it passed."""
    by_name: dict[str, list[Row]] = {}
    for s in tier_slos:
        by_name.setdefault(s["name"], []).append(s)
    specs = []
    for name, rows in by_name.items():
        objective = next((r["objective"] for r in rows if r.get("objective") is not None),
                         None)
        specs.append((objective if objective is not None else float("inf"), name, rows[0],
                      {r["target"]: r for r in rows}))
    specs.sort(key=lambda x: x[0])
    groups: list[Row] = []
    assigned: set[str] = set()
    for _, name, first, by_target in specs:
        members = [e for e in engines if e["name"] not in assigned
                   and outcome_of(by_target.get(e["name"]) or {"passed": False}) == "pass"]
        assigned |= {e["name"] for e in members}
        groups.append({"name": _tier_label(name), "slo": name,
                       "rule": f"{first.get('aggregate')} {first.get('objective_text')} ms",
                       "engines": _by_p50(members, key)})
    return groups, assigned


def _tier_label(name: str) -> str:
    words = [w for w in name.replace("-", "_").split("_")
             if w and w.lower() not in ("engine", "engines", "latency", "tier", "tiers")]
    return " ".join(words).capitalize() if words else name


def _by_p50(engines: Iterable[Row], key: str) -> list[Row]:
    return sorted(engines, key=lambda e: (tier_p50(e, key) is None, tier_p50(e, key) or 0.0,
                                          e["name"]))


def optimization_target(results: Row) -> dict[str, Any]:
    """The per-engine optimization objective: its SLO rows when present, else the default
    on the basis p50. `failing` holds the engines whose value missed it (not no data)."""
    rows = [s for s in results.get("slos", []) if is_optimization_slo(s)]
    hot_rows = [s for s in rows if s.get("indicator") == HOT]
    rows = hot_rows or rows
    if rows:
        first = rows[0]
        values = {r["target"]: r.get("value") for r in rows if outcome_of(r) == "breach"
                  and r.get("value") is not None}
        return {"source": "slo", "slo": first["name"], "objective": first.get("objective")
                if first.get("objective") is not None else DEFAULT_OPTIMIZATION_TARGET_MS,
                "aggregate": first.get("aggregate"), "text": first.get("objective_text"),
                "indicator": first.get("indicator"),
                "path": "on the hot path" if first.get("indicator") == HOT
                else "on paced latency",
                "failing": set(values), "values": values}
    b = basis(results)
    values = {e["name"]: tier_p50(e, b["key"]) for e in _tierable(results, b["key"])
              if (tier_p50(e, b["key"]) or 0.0) >= DEFAULT_OPTIMIZATION_TARGET_MS}
    return {"source": "default", "slo": None, "objective": DEFAULT_OPTIMIZATION_TARGET_MS,
            "aggregate": "p50", "text": f"< {DEFAULT_OPTIMIZATION_TARGET_MS:g}",
            "indicator": HOT if b["key"] == "hot_latency_ms" else PACED,
            "path": "on the hot path" if b["key"] == "hot_latency_ms" else "on paced latency",
            "failing": set(values), "values": values}


def readiness(results: Row, opt: dict[str, Any]) -> list[dict[str, Any]]:
    """Production ready / optimization candidates / maintenance required / not assessed."""
    failed_by_engine: dict[str, list[str]] = {}
    for s in results.get("slos", []):
        if s.get("scope") == "engine" and outcome_of(s) == "breach" and not is_tier_slo(s) \
                and not is_optimization_slo(s):
            failed_by_engine.setdefault(s["target"], []).append(s["name"])
    ready, optimize, broken, unknown = [], [], [], []
    for e in results.get("engines", []):
        if e.get("status") != "operational":
            broken.append({"engine": e, "why": f"{e.get('status')}: "
                           f"{e.get('status_reason') or 'no reason recorded'}"})
        elif not e.get("valid"):
            why = (e.get("invalid_reason") if e.get("inconclusive")
                   else f"no valid data ({e.get('invalid_reason')})")
            unknown.append({"engine": e, "why": why})
        elif e["name"] in opt["failing"] or e["name"] in failed_by_engine:
            why = []
            if e["name"] in opt["failing"]:
                why.append(f"{opt['aggregate']} {opt['path']} above the optimization target "
                           f"{opt['text']} ms")
            why += [f"breaches {n}" for n in failed_by_engine.get(e["name"], [])]
            optimize.append({"engine": e, "why": "; ".join(why)})
        else:
            ready.append({"engine": e, "why": "operational, no engine SLO missed"})
    total = len(results.get("engines", []))
    return [
        {"key": "ready", "name": "Production ready", "members": ready, "total": total},
        {"key": "optimize", "name": "Optimization candidates", "members": optimize,
         "total": total},
        {"key": "maintenance", "name": "Maintenance required", "members": broken, "total": total},
        {"key": "unknown", "name": "Not assessed (no valid data or inconclusive)",
         "members": unknown, "total": total},
    ]
