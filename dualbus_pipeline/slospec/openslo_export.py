"""`dualbus slo export --format openslo`: dualbus SLOs as OpenSLO v1 documents.

Each SLO becomes one ``kind: SLO`` object (slospec/openslo.py has the mapping); the burn-rate
``AlertPolicy`` objects its alerts reference are written once per budget period, after the
SLOs. `dualbus slo import` reads the result back into the same spec (docs/openslo.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from dualbus_pipeline.indicators import PERCENTILES
from dualbus_pipeline.slospec.budget import event_form, period_s, sli_target
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.slospec.openslo import (
    ANNOTATION,
    API_VERSION,
    OPS_TO_OPENSLO,
    PLACEHOLDER_TARGET,
    SOURCE_TYPE,
    burn_policies,
    dns_name,
    shorthand,
)

_CRON_EVERY_RE = re.compile(r"^\*/(\d+)$")
NOTIFICATION_TARGET = "dualbus-alerting"


def export_openslo(slos: Sequence[Slo], *, source: str, schedule: str | None = None) -> str:
    """Multi-document YAML: every SLO, then the alert policies they reference."""
    slice_window = run_interval(schedule)
    docs: list[dict[str, Any]] = []
    periods: dict[float, None] = {}
    for s in slos:
        doc, period = _slo_doc(s, slice_window)
        docs.append(doc)
        if period is not None:
            periods[period] = None
    for period in periods:
        docs += _policy_docs(period)
    if periods:
        docs.append(_notification_target())
    head = (f"# OpenSLO v1 export of {len(slos)} dualbus SLOs from {source} "
            "(dualbus slo export).\n# `dualbus slo import` reads it back into the same spec; "
            "docs/openslo.md has the mapping.\n")
    body = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, width=100)
    return head + "---\n" + body


def run_interval(schedule: str | None) -> str | None:
    """The time between two runs of a simple cron (``*/15 * * * *`` → 15m; ``0 * * * *`` →
    1h; ``0 */6 * * *`` → 6h; ``30 2 * * *`` → 1d), None when it is not that simple."""
    fields = (schedule or "").split()
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        return None
    minute, hour = fields[0], fields[1]
    every = _CRON_EVERY_RE.match(minute)
    if hour == "*" and every:
        return f"{every.group(1)}m"
    if not minute.isdigit():
        return None
    if hour == "*":
        return "1h"
    every = _CRON_EVERY_RE.match(hour)
    if every:
        return f"{every.group(1)}h"
    return "1d" if hour.isdigit() else None


def _slo_doc(s: Slo, slice_window: str | None) -> tuple[dict[str, Any], float | None]:
    form, target = event_form(s), sli_target(s)
    ratio = form in ("requests", "targets") and s.spec.kind in ("ratio", "availability")
    source = _source_spec(s)
    if ratio:
        sli: dict[str, Any] = {"ratioMetric": {
            "counter": False,
            "good": _metric({**source, "events": "good"}),
            "total": _metric({**source, "events": "total"})}}
    else:
        sli = {"thresholdMetric": _metric(source)}
    objective: dict[str, Any] = {"displayName": s.name, "op": OPS_TO_OPENSLO[s.objective.op],
                                 "value": _objective_value(s),
                                 "target": PLACEHOLDER_TARGET if target is None else target}
    if form not in ("requests", "targets"):  # one event per run: a run is a time slice
        objective["timeSliceTarget"] = PERCENTILES.get(s.aggregate, 1.0)
        if slice_window is not None:
            objective["timeSliceWindow"] = slice_window
    period = period_s(s) if target is not None else None
    spec: dict[str, Any] = {
        "description": s.description,
        "service": f"dualbus-{s.scope}",
        "indicator": {"metadata": {"name": dns_name(s.indicator)}, "spec": sli},
        "timeWindow": [{"duration": s.budget.period if s.budget else "30d",
                        "isRolling": True}],
        "budgetingMethod": "Occurrences" if form in ("requests", "targets") else "Timeslices",
        "objectives": [objective],
    }
    alerts = s.budget.alerts if s.budget is not None else "both"
    if period is not None and alerts != "run":
        spec["alertPolicies"] = [{"alertPolicyRef": name}
                                 for name, *_ in burn_policies(period)]
    if not s.description:
        del spec["description"]
    metadata: dict[str, Any] = {"name": dns_name(s.name), "displayName": s.name}
    notes = _annotations(s, target, alerts)
    if notes:
        metadata["annotations"] = notes
    return ({"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": spec},
            period if "alertPolicies" in spec else None)


def _metric(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metricSource": {"type": SOURCE_TYPE, "spec": spec}}


def _source_spec(s: Slo) -> dict[str, Any]:
    """What the dualbus probe computes: the indicator and how it is aggregated per run."""
    out: dict[str, Any] = {"indicator": s.indicator, "aggregate": s.aggregate}
    if s.targets is not None:
        out["targets"] = ",".join(s.targets)
    if s.window is not None:
        out["window"] = s.window
    if s.objective.relative:
        out["relative_to"] = "baseline"
        out["offset"] = "percent" if s.objective.offset()[1] else "absolute"
        if s.objective.min_delta is not None:
            out["min_delta"] = s.objective.min_delta
    return out


def _objective_value(s: Slo) -> float:
    if s.objective.relative:
        return s.objective.offset()[0]
    return float(s.objective.value)


def _annotations(s: Slo, target: float | None, alerts: str) -> dict[str, str]:
    """dualbus fields OpenSLO has no place for; only those that differ from the defaults."""
    out: dict[str, str] = {}
    if dns_name(s.name).replace("-", "_") != s.name:
        out["name"] = s.name
    if s.severity != "error":
        out["severity"] = s.severity
    if s.weight != 1.0:
        out["weight"] = f"{s.weight:g}"
    for flag in ("key", "blocking"):
        if getattr(s, flag):
            out[flag] = "true"
    if s.kind != "objective":
        out["kind"] = s.kind
    if s.grades is not None:
        out["grades"] = json.dumps(s.grades)
    if s.warning is not None:
        out["warning"] = json.dumps(s.warning.model_dump(exclude_none=True))
    if target is None:
        out["budget"] = "none"
    elif alerts == "burn":
        out["budget-alerts"] = "burn"
    return {ANNOTATION + k: v for k, v in out.items()}


def _policy_docs(period: float) -> list[dict[str, Any]]:
    return [{"apiVersion": API_VERSION, "kind": "AlertPolicy",
             "metadata": {"name": name},
             "spec": {
                 "description": f"dualbus burn-rate {severity}: over {factor:g}× in {lookback} "
                                f"and in {short} (a {lookback} window of a "
                                f"{shorthand(period)} budget)",
                 "alertWhenBreaching": True, "alertWhenResolved": True,
                 "alertWhenNoData": False,
                 "conditions": [{"kind": "AlertCondition",
                                 "metadata": {"name": f"{name}-condition"},
                                 "spec": {"severity": severity, "condition": {
                                     "kind": "burnrate", "op": "gt", "threshold": factor,
                                     "lookbackWindow": lookback, "alertAfter": "0m"}}}],
                 "notificationTargets": [{"targetRef": NOTIFICATION_TARGET}]}}
            for name, factor, lookback, short, severity in burn_policies(period)]


def _notification_target() -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "AlertNotificationTarget",
            "metadata": {"name": NOTIFICATION_TARGET},
            "spec": {"target": "dualbus",
                     "description": "the sinks under alerting: in dualbus.yaml"}}
