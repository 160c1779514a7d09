"""OpenSLO alert policies → dualbus's `budget.alerts`.

dualbus does not take arbitrary burn-rate conditions: it applies the SRE workbook's four
multi-window rules scaled to the budget period (slospec/budget.py). An SLO whose policies'
``burnrate`` conditions are among those rules gets burn-rate alerts (``both``); one with no
policies (``alertPolicies:`` empty or left out) alerts per run only (``run``); a condition
that is not one of the rules is a problem naming its threshold, never silently changed.
"""

from __future__ import annotations

from typing import Any

from dualbus_pipeline.slospec.openslo import burn_policies, duration_seconds
from dualbus_pipeline.slospec.openslo_objects import Context, Obj, Where
from dualbus_pipeline.yamlsrc import Loc


def alert_mode(ctx: Context, o: Obj, period_s: float) -> str:
    """`both` when the SLO's alert policies are dualbus's burn-rate rules, else `run`."""
    policies = o.get("spec", "alertPolicies")
    if policies is None:  # `alertPolicies:` left empty
        return "run"
    if not isinstance(policies, list):
        ctx.fail((o, ("spec", "alertPolicies")), "must be a list of policies")
        return "run"
    found: set[str] = set()
    for i, item in enumerate(policies):
        policy = _policy(ctx, o, item, ("spec", "alertPolicies", i))
        if policy is None:
            continue
        pobj, ploc = policy
        for j, c in enumerate(pobj.get(*ploc, "conditions") or []):
            cond = _condition(ctx, c, pobj, (*ploc, "conditions", j))
            rule = None if cond is None else _burn_rule(ctx, *cond, period_s)
            if rule is not None:
                found.add(rule)
    rules = [f"{f:g}× over {w}" for _, f, w, _, _ in burn_policies(period_s)]
    if found and len(found) < len(rules):
        ctx.notes.append(f"{o.at('spec', 'alertPolicies')}: the policies name "
                          f"{', '.join(r for r in rules if r in found)}; dualbus applies "
                          f"all four burn-rate rules ({', '.join(rules)})")
    return "both" if found else "run"

def _policy(ctx: Context, o: Obj, item: Any, loc: Loc) -> Where | None:
    ref = item if isinstance(item, str) else \
        item.get("alertPolicyRef") if isinstance(item, dict) else None
    if ref is not None:
        found = ctx.find("AlertPolicy", ref)
        if found is None:
            ctx.fail((o, loc), f"no AlertPolicy named {ref!r} in the files given")
            return None
        return found, ("spec",)
    if isinstance(item, dict) and item.get("kind") == "AlertPolicy":
        return o, (*loc, "spec")
    ctx.fail((o, loc), "must be an AlertPolicy name, {alertPolicyRef: name} or an "
              "inline kind: AlertPolicy")
    return None

def _condition(ctx: Context, c: Any, pobj: Obj, loc: Loc) -> Where | None:
    ref = c.get("conditionRef") if isinstance(c, dict) else None
    if ref is not None:
        found = ctx.find("AlertCondition", ref)
        if found is None:
            ctx.fail((pobj, (*loc, "conditionRef")), f"no AlertCondition named {ref!r} "
                      "in the files given")
            return None
        return found, ("spec", "condition")
    if isinstance(c, dict) and isinstance(c.get("spec"), dict):
        return pobj, (*loc, "spec", "condition")
    ctx.fail((pobj, loc), "must be a conditionRef or an inline kind: AlertCondition")
    return None

def _burn_rule(ctx: Context, cobj: Obj, loc: Loc, period_s: float) -> str | None:
    """The dualbus rule ("14.4× over 1h") the condition is, or None (a problem)."""
    cond = cobj.get(*loc)
    if not isinstance(cond, dict):
        ctx.fail((cobj, loc), "needs kind: burnrate, op, threshold, lookbackWindow")
        return None
    if cond.get("kind", "burnrate") != "burnrate":
        ctx.fail((cobj, (*loc, "kind")), "dualbus alerts on burn rates only (kind: "
                  f"burnrate) (got {cond.get('kind')!r})")
        return None
    if cond.get("op", "gt") not in ("gt", "gte"):
        ctx.fail((cobj, (*loc, "op")), "dualbus alerts when the burn rate is above the "
                  f"threshold (gt or gte) (got {cond.get('op')!r})")
        return None
    rules = burn_policies(period_s)
    threshold, lookback = cond.get("threshold"), cond.get("lookbackWindow")
    for _, factor, long_w, _, _ in rules:
        if isinstance(threshold, int | float) and abs(float(threshold) - factor) < 1e-9 \
                and duration_seconds(lookback) == duration_seconds(long_w):
            return f"{factor:g}× over {long_w}"
    allowed = ", ".join(f"{f:g}× over {w}" for _, f, w, _, _ in rules)
    ctx.fail((cobj, (*loc, "threshold")), f"{threshold}× over {lookback} is not one of "
              f"dualbus's burn-rate rules for this budget period ({allowed}; each also "
              "checks a short window): use one of them or drop the condition")
    return None
