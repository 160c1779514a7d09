"""Evaluating SLOs for one run: indicator values → objectives → grades → `slo_results`.

`evaluate_run` runs inside the caller's transaction (the one that stored the run's samples)
and reads/writes only through dualbus_pipeline.store. Per SLO and target it decides one
outcome:

* ``pass`` / ``breach``  the value met / missed the objective (graded);
* ``no_data``  no valid summary, no successful samples, or too few for the aggregate — a
  breach with value NULL and reason "no data: ...", never a silent pass;
* ``pending_baseline``  a relative objective without enough baseline runs yet: passed and
  grade NULL, reason "pending baseline: k of n runs";
* ``inconclusive``  a latency indicator whose summary the probe marked inconclusive (its host
  stayed overloaded, or the concurrency slowed the target and the re-measure budget was spent):
  passed and grade NULL, reason the summary's "inconclusive: ...". Success ratios of such a
  summary stay usable (store/slo_queries.py ``_RATIO_USABLE``): whether requests succeeded
  does not depend on the probe's timing.

The last two are not verdicts on the target: neither pass nor breach, never scored or gated.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from typing import Any

from dualbus_pipeline.errors import PipelineError
from dualbus_pipeline.indicators import MIN_SAMPLES, Indicator
from dualbus_pipeline.slospec import grading
from dualbus_pipeline.slospec.budget import with_budgets
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import baselines, silences, slo_queries
from dualbus_pipeline.store.silences import Silence
from dualbus_pipeline.store.slo_queries import Connection, Measured, RunRow


@dataclass(frozen=True)
class SloResult:
    """One row of `slo_results`."""

    run_id: str
    slo: str
    scope: str
    target: str
    indicator: str
    aggregate: str
    value: float | None
    objective_op: str
    objective: float | None
    objective_text: str
    baseline: float | None
    passed: bool | None
    attainment: float | None
    grade: str | None
    severity: str
    weight: float
    is_key: bool
    reason: str
    error_budget_remaining: float | None
    burn_rate: float | None
    outcome: grading.Outcome
    unit: str
    direction: str
    window_text: str | None
    window_runs: int | None
    samples: int | None
    description: str
    # good-event form and error budget (slospec/budget.py); None where the SLO has no budget
    good: int | None = None
    total: int | None = None
    sli_target: float | None = None
    burn_state: str | None = None
    burn_text: str | None = None
    slo_kind: str | None = None
    burn_windows: str | None = None  # JSON {window: burn rate}, e.g. {"1h": 20.0}

    def as_row(self) -> dict[str, Any]:
        # Shallow on purpose: every field is a scalar, and dataclasses.asdict's deep copy
        # cost 0.75 s for the ~20,000 results of a 1,000-engine run.
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def breached(self) -> bool:
        return self.outcome in ("breach", "no_data")

    @property
    def judged(self) -> bool:
        """False for pending baseline and inconclusive: neither pass nor breach."""
        return self.outcome in grading.JUDGED


@dataclass(frozen=True)
class Evaluation:
    run_id: str
    results: list[SloResult]
    overall: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        return [r.as_row() for r in self.results]

    def breaches(self) -> list[SloResult]:
        return [r for r in self.results if r.breached]


def evaluate_run(con: Connection, run_id: str, slos: Sequence[Slo], *,
                 baseline_runs: int, pass_score: float = grading.PASS_SCORE,
                 warning_score: float = grading.WARNING_SCORE) -> Evaluation:
    """Evaluate every SLO for `run_id`, replace its slo_results rows, return the verdicts."""
    run = slo_queries.run_row(con, run_id)
    if run is None:
        raise PipelineError(f"cannot evaluate SLOs: run {run_id!r} is not in the warehouse")
    results: list[SloResult] = []
    silenced = silences.active(con, run.started_at)  # once per run, for every SLO's budget
    for slo in slos:
        results += _evaluate_slo(con, run, slo, baseline_runs, silenced)
    slo_queries.write_results(con, run_id, [r.as_row() for r in results])
    overall = grading.overall(
        [grading.Scored(r.slo, r.outcome, r.passed, r.severity, r.weight, r.is_key)
         for r in results], pass_score=pass_score, warning_score=warning_score)
    return Evaluation(run_id=run_id, results=results, overall=overall)


def select_targets(available: Sequence[str],
                   patterns: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(targets to evaluate, patterns that matched nothing) for an SLO's `targets` filter."""
    if patterns is None:
        return list(available), []
    chosen = [t for t in available if any(fnmatchcase(t, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatchcase(t, p) for t in available)]
    return chosen, unmatched


def _evaluate_slo(con: Connection, run: RunRow, slo: Slo, baseline_runs: int,
                  silenced: Sequence[Silence] = ()) -> list[SloResult]:
    ind = slo.spec
    targets, unmatched = select_targets(
        slo_queries.run_targets(con, run.run_id, slo.scope, ind.table), slo.targets)
    windowed = slo.window is not None
    run_ids = (slo_queries.window_run_ids(con, run, runs=slo.window_runs(),
                                          seconds=slo.window_seconds())
               if windowed else [run.run_id])
    measured = {m.target: m for m in
                slo_queries.measure(con, ind, slo.aggregate, run_ids, targets)}
    base = (_baselines(con, ind, slo.aggregate, run, targets, baseline_runs)
            if slo.objective.relative else {})
    out = []
    memo: dict[tuple[str, ...], Any] = {}  # per-run state lookups, once per SLO not per target
    for target in targets:
        m = measured.get(target)
        problem = _problem(con, run, slo, ind, target, m, len(run_ids), memo)
        out.append(_result(run, slo, ind, target, m, problem, base.get(target),
                           len(run_ids) if windowed else None))
    for pattern in unmatched:
        out.append(_result(run, slo, ind, pattern, None,
                           ("no_data", f"no data: no {slo.scope} matching {pattern!r} was "
                            "measured in this run"), None, None))
    if ind.table == "stream_stats" and slo.scope == "engine":
        out = _with_stream_states(con, run.run_id, out)
    return with_budgets(con, run, slo, out, silenced)


def _with_stream_states(con: Connection, run_id: str,
                        results: list[SloResult]) -> list[SloResult]:
    """A stream SLO's miss names the streams that are not healthy and why (probes/streams)."""
    states = slo_queries.stream_states(con, run_id)
    out = []
    for r in results:
        bad = [f"{stream} ({group}) {status}: {why}" for stream, group, status, why
               in states.get(r.target, []) if status not in ("OK", None)]
        out.append(replace(r, reason=f"{r.reason} Streams: {'; '.join(bad)}.")
                   if r.outcome in ("breach", "no_data") and bad else r)
    return out


def _usable(m: Measured | None, aggregate: str, ind: Indicator) -> bool:
    if m is None or m.value is None:
        return False
    return not (ind.kind == "samples" and m.good < MIN_SAMPLES[aggregate])


# Why a target has no verdict value: ("no_data", "no data: ...") or ("inconclusive", reason).
Problem = tuple[grading.Outcome, str]


def _problem(con: Connection, run: RunRow, slo: Slo, ind: Indicator,
             target: str, m: Measured | None, runs: int,
             memo: dict[tuple[str, ...], Any] | None = None) -> Problem | None:
    if _usable(m, slo.aggregate, ind):
        return None
    if m is not None and m.value is not None:
        return ("no_data", f"no data: {slo.aggregate} needs at least "
                f"{MIN_SAMPLES[slo.aggregate]} successful samples, got {m.good}")
    what = f"{slo.scope} {target!r}"
    if slo.window is not None:
        return ("no_data", f"no data: no valid {ind.name} data for {what} in the "
                f"{slo.window} window ({runs} runs)")
    if ind.kind in ("samples", "ratio"):
        return _summary_problem(con, run, ind, target, what, memo)
    return ("no_data", _no_data_reason(con, run, ind, target, what, memo))


def _summary_problem(con: Connection, run: RunRow, ind: Indicator, target: str, what: str,
                     memo: dict[tuple[str, ...], Any] | None) -> Problem:
    """Why a samples/ratio indicator has no value, from the run's summary of the target."""
    assert ind.metric is not None
    key = ("summary", ind.scope, ind.metric)
    states = memo.get(key) if memo is not None else None
    if states is None:
        states = slo_queries.summary_states(con, run.run_id, ind.scope, ind.metric)
        if memo is not None:
            memo[key] = states
    st = states.get(target)
    if st is None:
        return ("no_data", f"no data: no {ind.metric} measurements for {what} in this run")
    if not st["valid"]:
        reason = st["invalid_reason"] or "the measurement was marked invalid"
        # Too few samples is a fact about the target's data, whatever else went wrong.
        if st["inconclusive"] and not reason.startswith("too few samples"):
            return ("inconclusive", reason)
        return ("no_data", f"no data: {reason}")
    return ("no_data", f"no data: no successful samples ({st['count']} of {st['count']} "
            "failed)")


def _no_data_reason(con: Connection, run: RunRow, ind: Indicator, target: str, what: str,
                    memo: dict[tuple[str, ...], Any] | None) -> str:
    """Why a status, availability, value or sum indicator has no value in this run."""
    if ind.kind == "availability" and ind.scope == "system":
        return "no data: no engines were measured in this run"
    if ind.kind == "sum":
        return "no data: not every bus has a throughput measurement in this run"
    tkey = ("targets", ind.scope)
    tstates = memo.get(tkey) if memo is not None else None
    if tstates is None:
        tstates = slo_queries.target_states(con, run.run_id, ind.scope)
        if memo is not None:
            memo[tkey] = tstates
    state = tstates.get(target)
    status = f" (status {state[0]}: {state[1]})" if state and state[1] else (
        f" (status {state[0]})" if state else "")
    if ind.table == "stream_stats":
        return (f"no data: no consumer-group {ind.column} reported for {what}{status}")
    return f"no data: {what} has no {ind.name} measurement in this run{status}"


def _baselines(con: Connection, ind: Indicator, aggregate: str, run: RunRow,
               targets: Sequence[str], n: int) -> dict[str, tuple[float | None, str]]:
    """Per target: (baseline value or None, how it was found / why there is none)."""
    pinned = baselines.pinned_run(con)
    if pinned is not None:
        got = {m.target: m for m in slo_queries.measure(con, ind, aggregate, [pinned], targets)}
        out: dict[str, tuple[float | None, str]] = {}
        for t in targets:
            m = got.get(t)
            out[t] = ((m.value, f"pinned run {pinned}")
                      if m is not None and _usable(m, aggregate, ind) and m.value is not None
                      else (None, f"pending baseline: pinned run {pinned!r} has no data "
                            f"for {ind.scope} {t!r}"))
        return out
    prior = slo_queries.prior_good_runs(con, run, limit=n * 3 + 10)
    order = {r: i for i, r in enumerate(prior)}
    values: dict[str, list[tuple[int, float]]] = {t: [] for t in targets}
    for m in slo_queries.measure(con, ind, aggregate, prior, targets, per_run=True):
        if m.run_id is not None and m.value is not None and _usable(m, aggregate, ind):
            values[m.target].append((order[m.run_id], m.value))
    out = {}
    for t in targets:
        recent = [v for _, v in sorted(values[t])[:n]]
        out[t] = ((statistics.median(recent), f"median of {n} runs") if len(recent) >= n
                  else (None, f"pending baseline: {len(recent)} of {n} runs"))
    return out


def _result(run: RunRow, slo: Slo, ind: Indicator, target: str, m: Measured | None,
            problem: Problem | None, base: tuple[float | None, str] | None,
            window_runs: int | None) -> SloResult:
    obj = slo.objective
    common: dict[str, Any] = {
        "run_id": run.run_id, "slo": slo.name, "scope": slo.scope, "target": target,
        "indicator": slo.indicator, "aggregate": slo.aggregate, "objective_op": obj.op,
        "objective_text": obj.text(), "severity": slo.severity, "weight": slo.weight,
        "is_key": slo.key, "unit": ind.unit, "direction": ind.direction,
        "window_text": slo.window, "window_runs": window_runs,
        "description": slo.description, "slo_kind": slo.kind,
        "samples": None if m is None else (m.good if ind.kind in ("samples", "value", "sum")
                                           else m.total),
    }
    value = None if problem is not None or m is None else m.value
    baseline = base[0] if base else None
    if obj.relative and base is not None and baseline is None:
        return _unjudged(common, "pending_baseline", base[1], value=value)
    threshold = obj.threshold(baseline) if (baseline is not None or not obj.relative) else None
    if problem is not None and problem[0] == "inconclusive":
        return _unjudged(common, "inconclusive", problem[1], objective=threshold,
                         baseline=baseline)
    if value is None or problem is not None:
        return SloResult(**common, value=None, objective=threshold, baseline=baseline,
                         passed=False, attainment=None, grade=None,
                         reason=problem[1] if problem else "no data",
                         error_budget_remaining=None, burn_rate=None, outcome="no_data")
    assert threshold is not None
    return _graded(common, slo, ind, value, threshold, baseline)


def _unjudged(common: dict[str, Any], outcome: grading.Outcome, reason: str, *,
              value: float | None = None, objective: float | None = None,
              baseline: float | None = None) -> SloResult:
    """A result that is neither pass nor breach: passed and grade NULL, not scored."""
    return SloResult(**common, value=value, objective=objective, baseline=baseline,
                     passed=None, attainment=None, grade=None, reason=reason,
                     error_budget_remaining=None, burn_rate=None, outcome=outcome)


def _graded(common: dict[str, Any], slo: Slo, ind: Indicator, value: float, threshold: float,
            baseline: float | None) -> SloResult:
    obj = slo.objective
    passed = obj.met(value, threshold)
    ratio = grading.ratio_like(ind.kind, ind.direction, obj.op, threshold)
    att = (grading.ratio_attainment(value, threshold) if ratio
           else grading.attainment(value, threshold, ind.direction))
    raw_grade = grading.grade_for(att, slo.grades)
    grade = grading.grade_result(att, passed, slo.grades)
    reason = grading.justify(aggregate=slo.aggregate, value=value, objective_op=obj.op,
                             objective=threshold, unit=ind.unit, passed=passed, att=att,
                             grade=grade, raw_grade=raw_grade, baseline=baseline,
                             objective_text=obj.text(), ratio=ratio)
    if not passed and slo.warning is not None:
        line = slo.warning.threshold(baseline)
        if slo.warning.met(value, line):  # Keptn-style: missed the objective, within warning
            common = {**common, "severity": "warning"}
            reason += (f" Within the warning line {slo.warning.text()} "
                       f"({line:g} {ind.unit}): a warning, not an error.")
    return SloResult(**common, value=value, objective=threshold, baseline=baseline,
                     passed=passed, attainment=att, grade=grade, reason=reason,
                     error_budget_remaining=None, burn_rate=None,
                     outcome="pass" if passed else "breach")
