"""Error budgets and multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on
SLOs"), from good and total events counted in SQL over raw samples, never from summaries.

Every SLO is stated as good events over total events (its SLI) with a target fraction:

* latency ``pNN < X`` → a request is good when it succeeded in under X; target NN % (p99 <
  10 ms is "99 % of requests under 10 ms", the OpenSLO/Sloth ``thresholdMetric`` form);
* success ratios and availability ``> T`` → good requests (or operational engines) over all,
  target T;
* anything else (throughput, lag, status, mean/max latency) with an explicit
  ``budget.target`` → one event per run (Timeslices budgeting): good when the run passed.

The error budget is ``1 - target`` of the events over the budget period (default 30 days).
``burn rate = bad fraction / (1 - target)``: 1.0 spends the budget exactly over the period.
A burn-rate alert needs both a long and a short window over their factor (the short one
makes it resolve soon after a fix); the workbook's four rules for a 30-day period:

    page    1 h and 5 min  > 14.4     (2 % of the budget in an hour)
    page    6 h and 30 min > 6        (5 % in six hours)
    ticket  1 d and 2 h    > 3        (10 % in a day)
    ticket  3 d and 6 h    > 1        (10 % in three days)

For another period every window scales by period / 30 d and the factors stay: the same
fraction of the budget spent in the same fraction of the period. Windows count the stored,
non-excluded runs that started within them (this run included). A long window with fewer than
two runs (the schedule is sparser than it) cannot tell a sustained burn from one bad run: that
rule is not evaluated and the detail says so; it never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from dualbus_pipeline.indicators import PERCENTILES
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import silences, slo_queries
from dualbus_pipeline.store.slo_queries import Connection, RunRow

if TYPE_CHECKING:  # evaluate.py imports this module
    from dualbus_pipeline.slospec.evaluate import SloResult

BASE_PERIOD_S = 30 * 86400.0
MIN_LONG_RUNS = 2

EventForm = Literal["requests", "targets", "runs"]
BurnState = Literal["page", "ticket", "ok", "insufficient"]


@dataclass(frozen=True)
class BurnRule:
    severity: Literal["page", "ticket"]
    long_s: float
    short_s: float
    factor: float


RULES_30D = (BurnRule("page", 3600.0, 300.0, 14.4), BurnRule("page", 6 * 3600.0, 1800.0, 6.0),
             BurnRule("ticket", 86400.0, 7200.0, 3.0),
             BurnRule("ticket", 3 * 86400.0, 6 * 3600.0, 1.0))


def rules_for(period_s: float) -> tuple[BurnRule, ...]:
    scale = period_s / BASE_PERIOD_S
    return tuple(BurnRule(r.severity, r.long_s * scale, r.short_s * scale, r.factor)
                 for r in RULES_30D)


def windows_for(period_s: float) -> list[float]:
    """Every window the rules and the budget need, longest first (the period itself too)."""
    out = {period_s}
    for r in rules_for(period_s):
        out |= {r.long_s, r.short_s}
    return sorted(out, reverse=True)


def event_form(slo: Slo) -> EventForm | None:
    """How the SLO counts good and total events; None: it has no budget."""
    ind, obj = slo.spec, slo.objective
    if obj.relative:
        return None  # "within 10 % of the baseline" has no fixed good/bad line per request
    if ind.kind == "samples" and slo.aggregate in PERCENTILES and obj.op in ("<", "<="):
        return "requests"
    if ind.kind == "ratio" and obj.op in (">", ">="):
        return "requests"
    if ind.kind == "availability" and obj.op in (">", ">="):
        return "targets"
    return "runs" if slo.budget is not None and slo.budget.target is not None else None


def sli_target(slo: Slo) -> float | None:
    """The fraction of good events the SLO promises (None: no budget)."""
    form = event_form(slo)
    if form is None:
        return None
    if slo.budget is not None and slo.budget.target is not None:
        return slo.budget.target
    if slo.spec.kind == "samples":
        return PERCENTILES[slo.aggregate]
    return float(slo.objective.value)


def period_s(slo: Slo) -> float:
    return slo.budget.period_seconds() if slo.budget is not None else BASE_PERIOD_S


@dataclass(frozen=True)
class Count:
    """Events of one target over one window: runs holding events, good, total."""

    runs: int
    good: int
    total: int

    def burn(self, target: float) -> float | None:
        if self.total <= 0 or target >= 1.0:
            return None
        return (self.total - self.good) / self.total / (1.0 - target)

    def __add__(self, other: Count) -> Count:
        return Count(self.runs + other.runs, self.good + other.good, self.total + other.total)


@dataclass(frozen=True)
class Burn:
    state: BurnState
    remaining: float | None      # error budget left over the period (negative: overspent)
    text: str                    # one line: what fired, or why nothing could be judged
    rule: BurnRule | None = None
    long_burn: float | None = None


def judge(counts: Mapping[float, Count], target: float, period: float) -> Burn:
    """The burn-rate verdict from per-window counts (windows_for(period) keys)."""
    whole = counts.get(period, Count(0, 0, 0))
    spent = whole.burn(target)
    remaining = None if spent is None else 1.0 - spent
    insufficient: list[str] = []
    for rule in rules_for(period):
        long, short = counts.get(rule.long_s), counts.get(rule.short_s)
        if long is None or short is None or long.runs < MIN_LONG_RUNS or not short.total:
            runs = 0 if long is None else long.runs
            insufficient.append(f"{span(rule.long_s)} holds {runs} run{'s' * (runs != 1)}")
            continue
        lb, sb = long.burn(target), short.burn(target)
        if lb is not None and sb is not None and lb > rule.factor and sb > rule.factor:
            return Burn(rule.severity, remaining,
                        f"burn rate {lb:.1f}× over {span(rule.long_s)} and {sb:.1f}× over "
                        f"{span(rule.short_s)}, both above {rule.factor:g}× "
                        f"({rule.severity})", rule, lb)
    if len(insufficient) == len(RULES_30D):
        return Burn("insufficient", remaining, "burn rate not judged: every long window "
                    f"needs {MIN_LONG_RUNS}+ runs (" + "; ".join(insufficient) + ")")
    text = "burn rate below every alert threshold"
    if insufficient:
        text += " (not judged: " + "; ".join(insufficient) + ")"
    return Burn("ok", remaining, text)


def window_burns(counts: Mapping[float, Count], target: float) -> str:
    """{window: burn rate} as JSON, longest window first; windows without events left out."""
    burns = {span(w): c.burn(target) for w, c in sorted(counts.items(), reverse=True)}
    return json.dumps({w: round(b, 6) for w, b in burns.items() if b is not None})


def span(seconds: float) -> str:
    """6h, 30m, 3d, 1.4h, 70s: the largest unit that says it with at most one decimal."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        v = seconds / size
        if v >= 1 and abs(v * 10 - round(v * 10)) < 1e-6:
            return f"{round(v, 1):g}{unit}"
    return f"{seconds:g}s"


def with_budgets(con: Connection, run: RunRow, slo: Slo, results: list[SloResult],
                 silenced: Sequence[silences.Silence] = ()) -> list[SloResult]:
    """The SLO's results of this run with their events, budget and burn-rate verdict;
    targets a silence active at the run's start (`silenced`) add no events."""
    form, target = event_form(slo), sli_target(slo)
    if form is None or target is None:
        return results
    targets = [r.target for r in results]
    events: dict[str, tuple[int, int]] = {}
    if form == "requests":
        obj = slo.objective
        under = (obj.op, float(obj.value)) if slo.spec.kind == "samples" else None
        events = slo_queries.sample_events(con, slo.spec, run.run_id, targets, under=under)
    elif form == "targets":
        events = {m.target: (m.good, m.total) for m in
                  slo_queries.measure(con, slo.spec, slo.aggregate, [run.run_id], targets)}
    period = period_s(slo)
    windows = windows_for(period)
    past = slo_queries.window_events(con, run, slo.name, windows)
    out = []
    for r in results:
        if r.outcome not in ("pass", "breach", "no_data"):
            out.append(r)  # inconclusive or pending baseline: no event of the target's
            continue
        silence = silences.covering(silenced, slo.name, r.target)
        if silence is not None:  # maintenance: its events stay out of the budget
            out.append(replace(r, sli_target=target, burn_text=(
                f"silenced (#{silence.id}: {silence.reason}): left out of the budget")))
            continue
        good, total = ((int(r.outcome == "pass"), 1) if form == "runs"
                       else events.get(r.target, (0, 0)))
        now = Count(1 if total else 0, good, total)
        counts = {w: Count(*past.get((r.target, w), (0, 0, 0))) + now for w in windows}
        b = judge(counts, target, period)
        out.append(replace(r, good=good, total=total, sli_target=target, burn_state=b.state,
                           burn_text=b.text, error_budget_remaining=b.remaining,
                           burn_rate=now.burn(target),
                           burn_windows=window_burns(counts, target)))
    return out
