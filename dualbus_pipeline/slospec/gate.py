"""The CI gate: which SLO results fail `dualbus check` (exit 1) and how they are listed.

`--fail-on` chooses the gate (default ``error``):

* ``error``    any error-severity result that breached its objective or had no data;
* ``warning``  any result of either severity that breached or had no data;
* ``result``   the overall result is ``fail`` or ``no_verdict`` (grading.overall).

Pending baseline and inconclusive results are neither a pass nor a breach: they never fail a
gate, and `check` prints how many there were so nobody mistakes them for a clean pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dualbus_pipeline.slospec.grading import fmt

FAIL_ON = ("error", "warning", "result")
FAILING_RESULTS = ("fail", "no_verdict")
_BREACHED = ("breach", "no_data")


def _get(r: Any, key: str) -> Any:
    return r[key] if isinstance(r, Mapping) else getattr(r, key)


def outcome_of(r: Any) -> str:
    """The result's outcome; rows stored before outcomes existed are read from `passed`,
    and the old name of pending baseline is mapped."""
    outcome = r.get("outcome") if isinstance(r, Mapping) else getattr(r, "outcome", None)
    if outcome == "insufficient_baseline":
        return "pending_baseline"
    if outcome:
        return str(outcome)
    return "pass" if _get(r, "passed") else "breach"


def gate_breaches(results: Iterable[Any], fail_on: str = "error") -> list[Any]:
    """The breaches (incl. no data) that `fail_on` counts: error severity only for ``error``,
    every severity otherwise. Accepts SloResult objects or row dicts."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on: must be one of {', '.join(FAIL_ON)} (got {fail_on!r})")
    severities = ("error",) if fail_on == "error" else ("error", "warning")
    return [r for r in results
            if _get(r, "severity") in severities and outcome_of(r) in _BREACHED]


def gate_failed(results: Iterable[Any], fail_on: str = "error",
                overall_result: str | None = None) -> bool:
    if fail_on == "result":
        return overall_result in FAILING_RESULTS
    return bool(gate_breaches(results, fail_on))


def not_judged_line(results: Iterable[Any]) -> str | None:
    """"3 inconclusive (not judged), 13 pending baseline (not judged)", or None."""
    outcomes = [outcome_of(r) for r in results]
    parts = [f"{n} {label} (not judged)" for n, label in (
        (outcomes.count("inconclusive"), "inconclusive"),
        (outcomes.count("pending_baseline"), "pending baseline")) if n]
    return ", ".join(parts) or None


@dataclass(frozen=True)
class GateReport:
    """What `dualbus check` prints and returns for one run."""

    failed: bool
    headline: str                                    # "check passed: ..." / "check FAILED: ..."
    lines: list[str] = field(default_factory=list)   # one per breach, for the failure
    not_judged: str | None = None


def gate_report(results: list[Any], fail_on: str, overall: Mapping[str, Any]) -> GateReport:
    """The gate's verdict on a run's stored `slo_results` rows and its `runs` row."""
    result = overall.get("overall_result")
    failed = gate_failed(results, fail_on, result)
    breaches = gate_breaches(results, "warning" if fail_on == "result" else fail_on)
    lines = [breach_line(r) for r in breaches]
    skipped = not_judged_line(results)
    if fail_on == "result":
        grade, score = overall.get("overall_grade"), overall.get("overall_score")
        shown = "no verdict (nothing was judged)" if result == "no_verdict" else (
            f"{result} (grade {grade or '-'}, score "
            f"{'-' if score is None else fmt(float(score))})")
        verb = "FAILED" if failed else "passed"
        return GateReport(failed, f"check {verb}: overall result {shown}",
                          lines if failed else [], skipped)
    what = "error-severity breach(es)" if fail_on == "error" else "breach(es)"
    if not failed:
        none = "no error-severity SLO breached" if fail_on == "error" else "no SLO breached"
        return GateReport(False, f"check passed: {none}", [], skipped)
    return GateReport(True, f"check FAILED: {len(lines)} {what}:", lines, skipped)


def breach_line(r: Any) -> str:
    """`slo target: value vs objective (grade) — reason` for terminal output."""
    value = _get(r, "value")
    shown = "no data" if value is None else fmt(float(value), _get(r, "unit") or "")
    grade = _get(r, "grade") or "-"
    return (f"{_get(r, 'severity').upper()} {_get(r, 'slo')} [{_get(r, 'target')}]: "
            f"{_get(r, 'aggregate')} {shown}, objective {_get(r, 'objective_text')} "
            f"(grade {grade}) — {_get(r, 'reason')}")
