"""The CI gate: which SLO results fail `dualbus check` (exit 1) and how they are listed.

A result fails the gate when its SLO has error severity and the target breached its objective
or had no data. Warning-severity misses are reported but never gate; results without a
sufficient baseline are neither a pass nor a breach and never gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dualbus_pipeline.slospec.grading import fmt


def _get(r: Any, key: str) -> Any:
    return r[key] if isinstance(r, Mapping) else getattr(r, key)


def gate_breaches(results: Iterable[Any]) -> list[Any]:
    """Error-severity breaches (incl. no data). Accepts SloResult objects or row dicts."""
    return [r for r in results
            if _get(r, "severity") == "error" and _outcome(r) in ("breach", "no_data")]


def gate_failed(results: Iterable[Any]) -> bool:
    return bool(gate_breaches(results))


def _outcome(r: Any) -> str:
    outcome = _get(r, "outcome")
    if outcome:
        return str(outcome)
    return "pass" if _get(r, "passed") else "breach"


def breach_line(r: Any) -> str:
    """`slo target: value vs objective (grade) — reason` for terminal output."""
    value = _get(r, "value")
    shown = "no data" if value is None else fmt(float(value), _get(r, "unit") or "")
    grade = _get(r, "grade") or "-"
    return (f"{_get(r, 'severity').upper()} {_get(r, 'slo')} [{_get(r, 'target')}]: "
            f"{_get(r, 'aggregate')} {shown}, objective {_get(r, 'objective_text')} "
            f"(grade {grade}) — {_get(r, 'reason')}")
