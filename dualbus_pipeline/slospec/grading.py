"""Attainment, grades, the overall score and the words that justify them.

* attainment = objective / value when lower is better, value / objective when higher is better
  (2.0 = twice as good as needed). It is capped at ATTAINMENT_CAP so a zero lag or a zero
  objective stays a finite, storable number.
* a grade is the best band whose floor the attainment reaches (DEFAULT_BANDS unless the SLO
  has `grades:`); below every band is F. A missed objective never grades better than C.
* the overall score is Keptn-style, per SLO: a target that passes scores 1, a missed
  warning-severity target 0.5, a missed error-severity target 0 (no data is a miss); an SLO
  scores the mean of its targets, the evaluation the weight-averaged SLO scores × 100.
  Results that could not be graded (insufficient baseline) are left out.
* result: `fail` if a key SLO missed on any target, else `pass` at score ≥ PASS_SCORE,
  `warning` at ≥ WARNING_SCORE, else `fail`. The overall grade comes from the score, capped
  at C when anything was breached and at D when the result is `fail`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dualbus_pipeline.slospec.model import GRADE_ORDER

ATTAINMENT_CAP = 1000.0
PASS_SCORE = 90.0
WARNING_SCORE = 75.0

# attainment floor per grade (objective met from C+ up; a miss is at most C).
DEFAULT_BANDS: dict[str, float] = {
    "A+": 10.0, "A": 5.0, "A-": 3.0, "B+": 2.0, "B": 1.5, "B-": 1.2, "C+": 1.0,
    "C": 0.9, "D": 0.75,
}
# overall score → grade (the score is 0..100)
SCORE_BANDS: dict[str, float] = {
    "A+": 97.0, "A": 93.0, "A-": 90.0, "B+": 87.0, "B": 83.0, "B-": 80.0, "C+": 77.0,
    "C": 73.0, "D": 60.0,
}
MISSED_CAP = "C"
FAILED_CAP = "D"

Outcome = Literal["pass", "breach", "no_data", "insufficient_baseline"]


def attainment(value: float, objective: float, direction: str) -> float:
    num, den = (objective, value) if direction == "lower" else (value, objective)
    if den == 0:
        return ATTAINMENT_CAP if num > 0 else (1.0 if num == 0 else 0.0)
    return max(0.0, min(ATTAINMENT_CAP, num / den))


def grade_for(att: float, bands: Mapping[str, float] | None = None) -> str:
    for grade, floor in (bands or DEFAULT_BANDS).items():
        if att >= floor:
            return grade
    return "F"


def cap(grade: str, worst_allowed: str) -> str:
    """The worse of `grade` and `worst_allowed` (A+ is best)."""
    return grade if GRADE_ORDER.index(grade) >= GRADE_ORDER.index(worst_allowed) \
        else worst_allowed


def grade_result(att: float, passed: bool, bands: Mapping[str, float] | None = None) -> str:
    g = grade_for(att, bands)
    return g if passed else cap(g, MISSED_CAP)


def fmt(x: float, unit: str = "") -> str:
    if unit == "ratio":
        return f"{x * 100:.2f} %".replace(".00 %", " %")
    text = f"{x:,.3f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:,.0f}"
    return f"{text} {unit}".strip() if unit and not unit.startswith("1=") else text


def justify(*, aggregate: str, value: float, objective_op: str, objective: float, unit: str,
            passed: bool, att: float, grade: str, raw_grade: str,
            baseline: float | None = None, objective_text: str | None = None) -> str:
    """One sentence from the numbers: what was measured, against what, how far, which grade."""
    what = f"{aggregate} {fmt(value, unit)}"
    target = f"{objective_op} {fmt(objective, unit)}"
    if baseline is not None:
        target += f" ({objective_text}; baseline {fmt(baseline, unit)})"
    if passed:
        how = ("exactly at the objective" if att == 1.0 else
               f"{att:,.2f}× the objective" if att < ATTAINMENT_CAP else "far inside it")
        return f"{what} meets {target}: {how} (attainment {att:.2f}) → {grade}."
    capped = ("" if raw_grade == grade else
              f"; its attainment alone would grade {raw_grade}, but a missed objective "
              f"grades {MISSED_CAP} at best")
    return (f"{what} misses {target}: attainment {att:.2f} ({(1 - att) * 100:.0f} % short)"
            f" → {grade}{capped}.")


@dataclass(frozen=True)
class Scored:
    """What the overall score needs from one result row."""

    slo: str
    outcome: Outcome
    passed: bool
    severity: str
    weight: float
    is_key: bool


def overall(rows: Sequence[Scored], *, pass_score: float = PASS_SCORE,
            warning_score: float = WARNING_SCORE) -> dict[str, Any]:
    """Overall grade, score (0..100), passed, result (pass|warning|fail) and breach count."""
    per_slo: dict[str, list[float]] = {}
    weights: dict[str, float] = {}
    breaches = 0
    key_failed: list[str] = []
    error_breaches = 0
    for r in rows:
        if r.outcome == "insufficient_baseline":
            continue
        points = 1.0 if r.passed else (0.5 if r.severity == "warning" else 0.0)
        per_slo.setdefault(r.slo, []).append(points)
        weights[r.slo] = r.weight
        if not r.passed:
            breaches += 1
            error_breaches += r.severity == "error"
            if r.is_key and r.slo not in key_failed:
                key_failed.append(r.slo)
    total_weight = sum(weights[s] for s in per_slo)
    score = (100.0 * sum(weights[s] * sum(p) / len(p) for s, p in per_slo.items())
             / total_weight) if total_weight else 100.0
    score = round(score, 2)
    if key_failed:
        result = "fail"
    elif score >= pass_score:
        result = "pass"
    elif score >= warning_score:
        result = "warning"
    else:
        result = "fail"
    grade = grade_for(score, SCORE_BANDS)
    if breaches:
        grade = cap(grade, MISSED_CAP)
    if result == "fail":
        grade = cap(grade, FAILED_CAP)
    return {"grade": grade, "score": score, "passed": result != "fail", "result": result,
            "breaches": breaches, "error_breaches": error_breaches, "key_failed": key_failed,
            "slos_evaluated": len(per_slo)}
