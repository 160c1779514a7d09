"""`dualbus slo import FILE…`: OpenSLO v1 documents → dualbus SLOs.

Reads ``kind: SLO`` objects (inline ``indicator`` or ``indicatorRef`` to a ``kind: SLI``),
``AlertPolicy`` and ``AlertCondition`` objects, from multi-document files and top-level
lists, across every file given (a reference may point into another file). An SLO maps when
its metric source is a dualbus probe (``metricSource.type: dualbus`` with ``spec.indicator``);
every field that cannot be mapped is one problem line ``FILE:LINE: SLO name: field: why``,
and any problem fails the whole import (SpecError, exit 2): nothing half-imported.
Approximations that keep the promise (a calendar window read as a rolling one) are notes.
The mapping is in slospec/openslo.py and docs/openslo.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dualbus_pipeline.errors import SpecError
from dualbus_pipeline.indicators import CATALOGUE, PERCENTILES
from dualbus_pipeline.slospec.budget import event_form, sli_target
from dualbus_pipeline.slospec.model import VERSION, Slo, cross_problems
from dualbus_pipeline.slospec.openslo import (
    ANNOTATION,
    OPS_FROM_OPENSLO,
    SOURCE_TYPE,
    duration_seconds,
)
from dualbus_pipeline.slospec.openslo_alerts import alert_mode
from dualbus_pipeline.slospec.openslo_objects import UNUSED, Context, Obj, Where, read_objects
from dualbus_pipeline.yamlsrc import Loc, dotted

_ANNOTATIONS = ("name", "severity", "weight", "key", "blocking", "kind", "grades", "warning",
                "budget", "budget-alerts")


@dataclass
class Imported:
    slos: list[Slo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def import_openslo(paths: Sequence[Path]) -> Imported:
    """Every SLO of the files, mapped; raise SpecError with every problem found."""
    ctx = Context()
    objects = read_objects(paths, ctx.problems)
    ctx.add(objects)
    out = Imported(notes=ctx.notes)
    for kind in sorted({o.kind for o in objects if o.kind in UNUSED}):
        out.notes.append(f"{kind} objects are not used: {UNUSED[kind]}")
    first: dict[str, str] = {}
    for o in objects:
        if o.kind != "SLO":
            continue
        for slo, where in _SloMapper(o, ctx).run():
            if slo.name in first:
                ctx.problems.append(f"{where}: dualbus SLO name {slo.name!r} is taken (by "
                                    f"{first[slo.name]}); names must be unique")
                continue
            first[slo.name] = where
            out.slos.append(slo)
    if not out.slos and not ctx.problems:
        ctx.problems.append(f"{', '.join(str(p) for p in paths)}: no kind: SLO object found")
    if ctx.problems:
        raise SpecError(ctx.problems)
    return out


def dualbus_yaml(slos: Sequence[Slo], *, sources: Sequence[str]) -> str:
    """A dualbus SLO file (``version: dualbus/v1``) holding ``slos``."""
    head = ("# Imported from OpenSLO v1 by `dualbus slo import` (" + ", ".join(sources) +
            ").\n# Check it with `dualbus validate --slo DIR`; docs/openslo.md has the "
            "mapping.\n")
    items = [s.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
             for s in slos]
    for item, s in zip(items, slos, strict=True):
        item["objective"] = s.objective.model_dump(mode="json", exclude_none=True)
    return head + yaml.safe_dump({"version": VERSION, "slos": items}, sort_keys=False,
                                 allow_unicode=True, width=100)


class _SloMapper:
    """One OpenSLO SLO → one dualbus SLO per objective."""

    def __init__(self, obj: Obj, ctx: Context) -> None:
        self.o, self.ctx = obj, ctx
        self.fail = ctx.fail
        self.field_at: dict[str, Where] = {}

    def run(self) -> list[tuple[Slo, str]]:
        o = self.o
        if not isinstance(o.get("spec"), dict):
            self.fail((o, ("spec",)), "must be a mapping (indicator, timeWindow, "
                      "budgetingMethod, objectives)")
            return []
        before = len(self.ctx.problems)
        metric = self._metric()
        period = self._period()
        method = o.get("spec", "budgetingMethod")
        if method not in ("Occurrences", "Timeslices"):
            self.fail((o, ("spec", "budgetingMethod")), "dualbus counts requests "
                      "(Occurrences) or runs (Timeslices, one run per slice)"
                      f" (got {method!r})")
        annotations = self._annotations()
        objectives = o.get("spec", "objectives")
        if not isinstance(objectives, list) or not objectives:
            self.fail((o, ("spec", "objectives")), "needs at least one objective")
            return []
        if metric is None or period is None or len(self.ctx.problems) > before:
            return []
        alerts = alert_mode(self.ctx, o, float(duration_seconds(period) or 0))
        out = []
        for j, objective in enumerate(objectives):
            made = self._one(j, objective, metric, period, str(method), annotations, alerts,
                             len(objectives))
            if made is not None:
                out.append((made, o.at("spec", "objectives", j)))
        return out

    # -- the indicator -------------------------------------------------------------------

    def _metric(self) -> tuple[str, dict[str, Any]] | None:
        """(threshold|ratio, the dualbus metric source's spec)."""
        o = self.o
        base: Loc
        if isinstance(o.get("spec", "indicator"), dict):
            sli, base = o, ("spec", "indicator", "spec")
        elif o.get("spec", "indicatorRef") is not None:
            ref = o.get("spec", "indicatorRef")
            found = self.ctx.find("SLI", ref)
            if found is None:
                self.fail((o, ("spec", "indicatorRef")), f"no SLI named {ref!r} in the files "
                          "given (pass its file too)")
                return None
            sli, base = found, ("spec",)
        else:
            self.fail((o, ("spec",)), "needs an indicator (inline) or an indicatorRef")
            return None
        spec = sli.get(*base)
        if isinstance(spec, dict) and isinstance(spec.get("thresholdMetric"), dict):
            loc = (*base, "thresholdMetric", "metricSource")
            source = self._source(sli, loc)
            return None if source is None else ("threshold", source)
        if isinstance(spec, dict) and isinstance(spec.get("ratioMetric"), dict):
            return self._ratio(sli, (*base, "ratioMetric"))
        self.fail((sli, base), "needs a thresholdMetric or a ratioMetric")
        return None

    def _ratio(self, sli: Obj, loc: Loc) -> tuple[str, dict[str, Any]] | None:
        rm = sli.get(*loc)
        if "raw" in rm:
            self.fail((sli, (*loc, "raw")), "a precomputed ratio is not a dualbus probe: "
                      "give good (or bad) and total")
            return None
        part = "good" if "good" in rm else "bad" if "bad" in rm else None
        if part is None or "total" not in rm:
            self.fail((sli, loc), "needs good (or bad) and total")
            return None
        num = self._source(sli, (*loc, part, "metricSource"))
        den = self._source(sli, (*loc, "total", "metricSource"))
        if num is None or den is None:
            return None
        strip = ("events",)
        if {k: v for k, v in num.items() if k not in strip} != \
                {k: v for k, v in den.items() if k not in strip}:
            self.fail((sli, (*loc, "total", "metricSource", "spec")), f"must measure the same "
                      f"dualbus indicator as {part} (got {den!r} against {num!r})")
            return None
        if CATALOGUE[num["indicator"]].kind not in ("ratio", "availability"):
            self.fail((sli, (*loc, part, "metricSource", "spec", "indicator")),
                      f"{num['indicator']} is not a ratio: a ratioMetric needs a success "
                      "ratio or availability indicator")
            return None
        return "ratio", num

    def _source(self, sli: Obj, loc: Loc) -> dict[str, Any] | None:
        ms = sli.get(*loc)
        if not isinstance(ms, dict):
            self.fail((sli, loc), "must be a mapping (type, spec)")
            return None
        kind = ms.get("type")
        if str(kind).lower() != SOURCE_TYPE:
            self.fail((sli, (*loc, "type")), f"{kind!r} is not a dualbus probe: dualbus "
                      "measures with its own probes (type: dualbus, spec.indicator: an "
                      "indicator of docs/slos.md)")
            return None
        spec = ms.get("spec")
        indicator = spec.get("indicator") if isinstance(spec, dict) else None
        if indicator not in CATALOGUE:
            self.fail((sli, (*loc, "spec", "indicator")), "must name a dualbus indicator ("
                      + ", ".join(CATALOGUE) + f") (got {indicator!r})")
            return None
        assert isinstance(spec, dict)
        for key in ("indicator", "aggregate", "targets", "window"):
            self.field_at.setdefault(key, (sli, (*loc, "spec", key if key in spec else
                                                    "indicator")))
        return dict(spec)

    # -- window, annotations, alerts ------------------------------------------------------

    def _period(self) -> str | None:
        o = self.o
        windows = o.get("spec", "timeWindow")
        if not isinstance(windows, list) or len(windows) != 1 or \
                not isinstance(windows[0], dict):
            self.fail((o, ("spec", "timeWindow")), "needs exactly one window (rolling or "
                      "calendar)")
            return None
        loc = ("spec", "timeWindow", 0, "duration")
        duration = windows[0].get("duration")
        seconds = duration_seconds(duration)
        if seconds is None or seconds == 0:
            self.fail((o, loc), "must be a duration shorthand like 30d, 4w, 1M (M months, "
                      f"m minutes) (got {duration!r})")
            return None
        if seconds % 3600:
            self.fail((o, loc), "dualbus budget periods are whole hours or days "
                      f"(got {duration!r}: m is minutes, M months)")
            return None
        if str(duration).strip()[-1] in "dh":  # dualbus writes periods the same way
            period = str(duration).strip()
        else:
            period = f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"
        self.field_at["budget"] = (o, loc)
        if windows[0].get("calendar") is not None or windows[0].get("isRolling") is False:
            self.ctx.notes.append(f"{o.at(*loc)}: the calendar-aligned {duration} window is "
                              f"read as a rolling {period} budget (dualbus budgets roll; "
                              "`dualbus report --compliance` shows calendar months)")
        return period

    def _annotations(self) -> dict[str, str]:
        raw = self.o.get("metadata", "annotations")
        out: dict[str, str] = {}
        if not isinstance(raw, dict):
            return out
        for key, value in raw.items():
            if not str(key).startswith(ANNOTATION):
                continue
            name = str(key)[len(ANNOTATION):]
            where: Where = (self.o, ("metadata", "annotations", str(key)))
            if name not in _ANNOTATIONS:
                self.fail(where, "not a dualbus annotation (dualbus/: "
                          + ", ".join(_ANNOTATIONS) + ")")
                continue
            self.field_at[name] = where
            out[name] = str(value)
        return out

    # -- one objective ---------------------------------------------------------------------

    def _one(self, j: int, objective: Any, metric: tuple[str, dict[str, Any]],
             period: str, method: str, ann: dict[str, str], alerts: str,
             count: int) -> Slo | None:
        o, oloc = self.o, ("spec", "objectives", j)
        if not isinstance(objective, dict):
            self.fail((o, oloc), "must be a mapping (op, value, target)")
            return None
        kind, source = metric
        target = self._target(objective, oloc)
        op = objective.get("op", "gte" if kind == "ratio" else None)
        if op not in OPS_FROM_OPENSLO:
            self.fail((o, (*oloc, "op")), f"must be one of lt, lte, gt, gte (got {op!r})")
            return None
        value = objective.get("value", target if kind == "ratio" else None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail((o, (*oloc, "value")), f"must be a number (got {value!r})")
            return None
        if target is None:
            return None
        aggregate = self._aggregate(source, kind, method, objective, oloc, target)
        if aggregate is None:
            return None
        self.field_at["objective"] = (o, (*oloc, "value"))
        d: dict[str, Any] = {"name": self._name(j, objective, ann, count),
                             "scope": CATALOGUE[source["indicator"]].scope,
                             "indicator": source["indicator"], "aggregate": aggregate,
                             "objective": self._objective(op, float(value), source, oloc)}
        if o.get("spec", "description"):
            d["description"] = str(o.get("spec", "description"))
        targets = source.get("targets")
        if targets is not None:
            d["targets"] = [t.strip() for t in targets.split(",")] \
                if isinstance(targets, str) else targets
        if source.get("window") is not None:
            d["window"] = str(source["window"])
        if not self._apply_annotations(d, ann):
            return None
        relative = "relative_to" in d["objective"]
        if ann.get("budget") == "none" or relative:
            if alerts != "run":
                self.fail((o, ("spec", "alertPolicies")), "burn-rate alerts need an error "
                          "budget, and this SLO has none (relative objective or "
                          "dualbus/budget: none)")
                return None
        else:
            budget = self._budget(d, target, period, ann.get("budget-alerts", alerts))
            if budget is False:
                return None
            if budget:
                d["budget"] = budget
        slo = self._validated(d)
        if slo is not None and method == "Timeslices" and event_form(slo) in ("requests",
                                                                              "targets"):
            self.ctx.notes.append(f"{o.at('spec', 'budgetingMethod')}: {slo.name} is budgeted "
                              "per request (Occurrences): dualbus counts the events of "
                              f"{slo.indicator} {slo.aggregate} {slo.objective.text()}")
        return slo

    def _target(self, objective: dict[str, Any], oloc: Loc) -> float | None:
        target = objective.get("target")
        if target is None and isinstance(objective.get("targetPercent"), int | float):
            target = float(objective["targetPercent"]) / 100
        if isinstance(target, bool) or not isinstance(target, int | float) or \
                not 0 <= float(target) < 1:
            self.fail((self.o, (*oloc, "target")), "must be a fraction in [0, 1) (or "
                      f"targetPercent in [0, 100)) (got {target!r})")
            return None
        return float(target)

    def _aggregate(self, source: dict[str, Any], kind: str, method: str,
                   objective: dict[str, Any], oloc: Loc, target: float) -> str | None:
        if source.get("aggregate") is not None:
            return str(source["aggregate"])
        ind = CATALOGUE[source["indicator"]]
        if kind == "ratio":
            return "ratio"
        if ind.kind != "samples":
            return "value" if "value" in ind.aggregates else ind.aggregates[0]
        fraction = target if method == "Occurrences" else objective.get("timeSliceTarget", 1)
        if fraction == 1:
            return "max"
        for name, p in PERCENTILES.items():
            if isinstance(fraction, int | float) and abs(p - float(fraction)) < 1e-9:
                return name
        field_name = "target" if method == "Occurrences" else "timeSliceTarget"
        self.fail((self.o, (*oloc, field_name)), f"{source['indicator']} is measured at "
                  "p50, p90, p95, p99 and p999 (" + ", ".join(f"{p:g}" for p in
                                                           PERCENTILES.values()) +
                  f"); {fraction!r} is none of them: give metricSource.spec.aggregate")
        return None

    def _objective(self, op: str, value: float, source: dict[str, Any],
                   oloc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {"op": OPS_FROM_OPENSLO[op], "value": value}
        if source.get("relative_to") is not None:
            percent = source.get("offset", "percent") == "percent"
            out["value"] = f"{'+' if value >= 0 else '-'}{abs(value):g}{'%' * percent}"
            out["relative_to"] = source["relative_to"]
            if source.get("min_delta") is not None:
                out["min_delta"] = source["min_delta"]
        return out

    def _name(self, j: int, objective: dict[str, Any], ann: dict[str, str],
              count: int) -> str:
        self.field_at["name"] = (self.o, ("metadata", "name"))
        if count == 1 and "name" in ann:
            return ann["name"]
        base = self.o.name.lower().replace("-", "_").replace(".", "_")
        if count == 1:
            return base
        label = str(objective.get("displayName") or "").lower()
        slug = "".join(c if c.isalnum() else "_" for c in label).strip("_")
        self.field_at["name"] = (self.o, ("spec", "objectives", j, "displayName"))
        return f"{base}_{slug or j + 1}"

    def _apply_annotations(self, d: dict[str, Any], ann: dict[str, str]) -> bool:
        for name in ("severity", "kind"):
            if name in ann:
                d[name] = ann[name]
        try:
            if "weight" in ann:
                d["weight"] = float(ann["weight"])
            for name in ("grades", "warning"):
                if name in ann:
                    d[name] = json.loads(ann[name])
        except ValueError as exc:
            bad = next(n for n in ("weight", "grades", "warning") if n in ann)
            self.fail(self.field_at[bad], f"not readable ({exc})")
            return False
        for flag in ("key", "blocking"):
            if flag in ann:
                if ann[flag].lower() not in ("true", "false"):
                    self.fail(self.field_at[flag], f"must be true or false (got "
                              f"{ann[flag]!r})")
                    return False
                d[flag] = ann[flag].lower() == "true"
        if ann.get("budget", "none") != "none":
            self.fail(self.field_at["budget"], "the only value is none")
            return False
        return True

    def _budget(self, d: dict[str, Any], target: float, period: str,
                alerts: str) -> dict[str, Any] | bool:
        """The budget block: only what differs from the defaults ({} = none needed)."""
        draft = self._validated(d)
        if draft is None:
            return False
        default = sli_target(draft)
        out: dict[str, Any] = {}
        if default is None or abs(default - target) > 1e-12:
            out["target"] = target
        if period != "30d":
            out["period"] = period
        if alerts != "both":
            out["alerts"] = alerts
        return out

    def _validated(self, d: dict[str, Any]) -> Slo | None:
        try:
            slo = Slo.model_validate(d)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
                self.fail(self.field_at.get(str(loc[0]) if loc else "name",
                                            (self.o, ("spec",))),
                          f"dualbus {dotted(loc)}: {err['msg'].removeprefix('Value error, ')}")
            return None
        bad = cross_problems(slo)
        for loc, message, _ in bad:
            self.fail(self.field_at.get(str(loc[0]), (self.o, ("spec",))),
                      f"dualbus {dotted(loc)}: {message}")
        return None if bad else slo
