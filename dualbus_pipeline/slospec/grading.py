"""Attainment, grades, the overall score and the words that justify them.

* attainment = objective / value when lower is better, value / objective when higher is better
  (2.0 = twice as good as needed). It is capped at ATTAINMENT_CAP so a zero lag or a zero
  objective stays a finite, storable number.
* ratio-like SLOs (success ratios, availability, status: a fraction in [0, 1] that must stay
  above an objective in [0, 1]) are graded on the **bad fraction** instead: attainment =
  allowed bad / actual bad, where allowed bad = 1 - objective. A perfect ratio is ATTAINMENT_CAP
  (A+), 1 % failed against 5 % allowed is 5.0 (A). With nothing allowed (>= 1), no bad at all
  is A+ and any bad is F. value/objective would grade a perfect 100 % against > 95 % C+.
* a grade is the best band whose floor the attainment reaches (DEFAULT_BANDS unless the SLO
  has `grades:`); below every band is F. A missed objective never grades better than C.
* outcomes: ``pass`` / ``breach`` / ``no_data`` are verdicts on the target; ``pending_baseline``
  (a relative objective without its baseline yet) and ``inconclusive`` (the probe host could
  not measure honestly) are not: passed NULL, grade NULL, never scored, never gated.
* the overall score is Keptn-style, per SLO: a target that passes scores 1, a missed
  warning-severity target 0.5, a missed error-severity target 0 (no data is a miss); an SLO
  scores the mean of its targets, the evaluation the weight-averaged SLO scores × 100.
* result: `fail` if a key SLO missed on any target, else `pass` at score ≥ PASS_SCORE,
  `warning` at ≥ WARNING_SCORE, else `fail`; `no_verdict` (grade and score NULL) when no result
  was a verdict — "nothing judged" must never read as A+. The overall grade comes from the
  score, capped at C when anything was breached and at D when the result is `fail`.
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

Outcome = Literal["pass", "breach", "no_data", "pending_baseline", "inconclusive"]
# Verdicts on the target (scored, counted, gated); the other outcomes are not judged.
JUDGED: tuple[Outcome, ...] = ("pass", "breach", "no_data")
NOT_JUDGED: tuple[Outcome, ...] = ("pending_baseline", "inconclusive")
RATIO_KINDS = ("ratio", "availability", "status")
# Bad fractions are rounded before dividing: 1 - 0.99 is 0.010000000000000009 in binary
# floating point, and 0.05 / that would grade 5× "A-" instead of "A".
_BAD_DIGITS = 12


def attainment(value: float, objective: float, direction: str) -> float:
    num, den = (objective, value) if direction == "lower" else (value, objective)
    if den == 0:
        return ATTAINMENT_CAP if num > 0 else (1.0 if num == 0 else 0.0)
    return max(0.0, min(ATTAINMENT_CAP, num / den))


def ratio_like(kind: str, direction: str, op: str, objective: float) -> bool:
    """Whether an SLO is graded on its bad fraction (module docstring)."""
    return (kind in RATIO_KINDS and direction == "higher" and op in (">", ">=")
            and 0.0 <= objective <= 1.0)


def bad_fractions(value: float, objective: float) -> tuple[float, float]:
    """(actual bad fraction, allowed bad fraction) of a ratio-like SLO."""
    return (max(0.0, round(1.0 - value, _BAD_DIGITS)),
            max(0.0, round(1.0 - objective, _BAD_DIGITS)))


def ratio_attainment(value: float, objective: float) -> float:
    """allowed bad / actual bad, capped; with nothing allowed: perfect or nothing."""
    bad, allowed = bad_fractions(value, objective)
    if bad == 0:
        return ATTAINMENT_CAP
    if allowed == 0:
        return 0.0
    return min(ATTAINMENT_CAP, allowed / bad)


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
            baseline: float | None = None, objective_text: str | None = None,
            ratio: bool = False) -> str:
    """One sentence from the numbers: what was measured, against what, how far, which grade.
    ``ratio``: the SLO is graded on its bad fraction, and the sentence says so."""
    what = f"{aggregate} {fmt(value, unit)}"
    target = f"{objective_op} {fmt(objective, unit)}"
    if baseline is not None:
        target += f" ({objective_text}; baseline {fmt(baseline, unit)})"
    capped = ("" if raw_grade == grade else
              f"; its attainment alone would grade {raw_grade}, but a missed objective "
              f"grades {MISSED_CAP} at best")
    if ratio:
        bad, allowed = bad_fractions(value, objective)
        share = (f"{fmt(bad, 'ratio')} bad of {fmt(allowed, 'ratio')} allowed "
                 f"(attainment {att:.2f})")
        verb = "meets" if passed else "misses"
        return f"{what} {verb} {target}: {share} → {grade}{capped}."
    if passed:
        how = ("exactly at the objective" if att == 1.0 else
               f"{att:,.2f}× the objective" if att < ATTAINMENT_CAP else "far inside it")
        return f"{what} meets {target}: {how} (attainment {att:.2f}) → {grade}."
    return (f"{what} misses {target}: attainment {att:.2f} ({(1 - att) * 100:.0f} % short)"
            f" → {grade}{capped}.")


@dataclass(frozen=True)
class Scored:
    """What the overall score needs from one result row."""

    slo: str
    outcome: Outcome
    passed: bool | None
    severity: str
    weight: float
    is_key: bool


def overall(rows: Sequence[Scored], *, pass_score: float = PASS_SCORE,
            warning_score: float = WARNING_SCORE) -> dict[str, Any]:
    """Overall grade, score (0..100), passed, result (pass|warning|fail|no_verdict), breach
    count, and how many results were not judged (inconclusive, pending baseline)."""
    judged = [r for r in rows if r.outcome in JUDGED]
    counts = {"inconclusive": sum(r.outcome == "inconclusive" for r in rows),
              "pending": sum(r.outcome == "pending_baseline" for r in rows)}
    per_slo: dict[str, list[float]] = {}
    weights: dict[str, float] = {}
    key_failed: list[str] = []
    for r in judged:
        missed = r.outcome != "pass"
        per_slo.setdefault(r.slo, []).append(
            0.0 if missed and r.severity != "warning" else 0.5 if missed else 1.0)
        weights[r.slo] = r.weight
        if missed and r.is_key and r.slo not in key_failed:
            key_failed.append(r.slo)
    breaches = sum(r.outcome != "pass" for r in judged)
    error_breaches = sum(r.outcome != "pass" and r.severity == "error" for r in judged)
    common = {"breaches": breaches, "error_breaches": error_breaches, "key_failed": key_failed,
              "slos_evaluated": len(per_slo), **counts}
    total_weight = sum(weights[s] for s in per_slo)
    if not total_weight:
        return {"grade": None, "score": None, "passed": None, "result": "no_verdict",
                **common}
    score = round(100.0 * sum(weights[s] * sum(p) / len(p) for s, p in per_slo.items())
                  / total_weight, 2)
    if key_failed or score < warning_score:
        result = "fail"
    else:
        result = "pass" if score >= pass_score else "warning"
    grade = grade_for(score, SCORE_BANDS)
    if breaches:
        grade = cap(grade, MISSED_CAP)
    if result == "fail":
        grade = cap(grade, FAILED_CAP)
    return {"grade": grade, "score": score, "passed": result != "fail", "result": result,
            **common}
