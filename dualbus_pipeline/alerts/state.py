"""The alert state machine: one alert per (slo, target), advanced once per run.

    (no row) ──breach──▶ pending ──breach × for_runs──▶ firing ──pass──▶ resolved
        │                   │ pass (quiet: never fired)    │ ▲              │
        └──breach, for_runs=1──────────────────────────────┘ └─ remind ─┘   └─breach─▶ …

* firing on the first breach (or after `for_runs` consecutive breaches: pending before that,
  which damps flapping targets);
* while firing, a reminder at most every `remind_every`;
* resolved when the SLO passes again (a notification only if it had fired);
* a result that could not be judged ("insufficient baseline", grade NULL) changes nothing.

`advance` is pure; `dualbus_pipeline.alerts.dispatch` persists its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from dualbus_pipeline.store.alerts import AlertRow

Transition = Literal["pending", "fired", "reminded", "resolved", "cleared"]
NotifyKind = Literal["firing", "reminder", "resolved"]


@dataclass(frozen=True)
class Verdict:
    """One slo_results row of the run being dispatched."""

    slo: str
    target: str
    severity: str
    passed: bool
    value: float | None
    objective_text: str
    grade: str | None
    scope: str = ""
    indicator: str = ""
    reason: str | None = None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Verdict:
        return cls(slo=r["slo"], target=r["target"], severity=r["severity"],
                   passed=bool(r["passed"]), value=r["value"],
                   objective_text=r["objective_text"], grade=r["grade"],
                   scope=r.get("scope") or "", indicator=r.get("indicator") or "",
                   reason=r.get("reason"))

    @property
    def judged(self) -> bool:
        """False for results that are neither a breach nor a pass."""
        return not (self.grade is None and (self.reason or "").startswith(
            "insufficient baseline"))


@dataclass(frozen=True)
class Policy:
    for_runs: int = 1
    remind_every_s: float = 4 * 3600


@dataclass(frozen=True)
class Step:
    alert: AlertRow | None          # the row to store (None: nothing to store)
    transition: Transition | None   # recorded in alert_events
    notify: NotifyKind | None       # the notification this step sends


def advance(prev: AlertRow | None, v: Verdict, *, run_id: str, now: datetime,
            policy: Policy) -> Step:
    """The next state of one alert given this run's verdict."""
    if not v.judged:
        return Step(None, None, None)
    if v.passed:
        if prev is None or prev.state == "resolved":
            return Step(None, None, None)
        was_firing = prev.state == "firing"
        row = replace(_with_facts(prev, v, run_id), state="resolved", consecutive_breaches=0,
                      resolved_at=now)
        if was_firing:
            return Step(replace(row, last_notified_at=now), "resolved", "resolved")
        return Step(row, "cleared", None)

    # A breach.
    if prev is None or prev.state == "resolved":
        base = AlertRow(slo=v.slo, target=v.target, state="pending", severity=v.severity,
                        consecutive_breaches=1, first_breach_run=run_id)
        row = _with_facts(base, v, run_id)
        if policy.for_runs <= 1:
            return Step(_fire(row, now), "fired", "firing")
        return Step(row, "pending", None)
    count = prev.consecutive_breaches + 1
    row = replace(_with_facts(prev, v, run_id), consecutive_breaches=count)
    if prev.state == "pending":
        if count >= policy.for_runs:
            return Step(_fire(row, now), "fired", "firing")
        return Step(row, None, None)
    # Still firing.
    last = prev.last_notified_at or prev.fired_at
    if last is None or (now - last).total_seconds() >= policy.remind_every_s:
        return Step(replace(row, last_notified_at=now), "reminded", "reminder")
    return Step(row, None, None)


def _fire(row: AlertRow, now: datetime) -> AlertRow:
    return replace(row, state="firing", fired_at=now, resolved_at=None, last_notified_at=now)


def _with_facts(row: AlertRow, v: Verdict, run_id: str) -> AlertRow:
    return replace(row, severity=v.severity, value=v.value, objective_text=v.objective_text,
                   grade=v.grade, last_run=run_id)
