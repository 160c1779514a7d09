"""The alert state machines: per (slo, target) one breach alert and one inconclusive alert,
each advanced once per run.

Breach alerts:

    (no row) ──breach──▶ pending ──breach × for_runs──▶ firing ──pass──▶ resolved
        │                   │ pass (quiet: never fired)    │ ▲              │
        └──breach, for_runs=1──────────────────────────────┘ └─ remind ─┘   └─breach─▶ …

* firing on the first breach (or after `for_runs` consecutive breaches: pending before that,
  which damps flapping targets);
* while firing, a reminder at most every `remind_every`;
* resolved when the SLO passes again (a notification only if it had fired); with
  `keep_firing_for` N > 1, a firing alert resolves only after N passing runs in a row, so a
  verdict that flips between runs does not resolve and re-fire (a breach in between resets
  the count, silently: the alert never stopped firing);
* a result that is not a verdict (pending baseline, inconclusive) changes nothing.

Inconclusive alerts (`advance_inconclusive`), a kind of their own: the platform may be fine,
but dualbus could not tell. One inconclusive run is the probe host having a bad minute and says
nothing; `inconclusive_runs` in a row (default 3) means the SLO is blind, and that is worth
one warning. The alert resolves at the next conclusive verdict (pass, breach or no data);
pending baseline changes nothing. Its row lives beside the breach alert's under
``<slo>:inconclusive`` (SLO names are ``[a-z0-9_]+``, so the key cannot collide); no
reminders: it is about the measurement, and the breach alerts carry the platform's news.

`advance` and `advance_inconclusive` are pure; `dualbus_pipeline.alerts.dispatch` persists
their outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from dualbus_pipeline.store.alerts import AlertRow

Transition = Literal["pending", "fired", "reminded", "resolved", "cleared"]
NotifyKind = Literal["firing", "reminder", "resolved", "inconclusive",
                     "inconclusive_resolved", "nodata", "nodata_reminder", "nodata_resolved"]
INCONCLUSIVE_SUFFIX = ":inconclusive"
BURN_SUFFIX = ":burn"
NODATA_SUFFIX = ":nodata"
_JUDGED = ("pass", "breach", "no_data")


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
    outcome: str | None = None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Verdict:
        return cls(slo=r["slo"], target=r["target"], severity=r["severity"],
                   passed=bool(r["passed"]), value=r["value"],
                   objective_text=r["objective_text"], grade=r["grade"],
                   scope=r.get("scope") or "", indicator=r.get("indicator") or "",
                   reason=r.get("reason"), outcome=r.get("outcome"))

    @property
    def kind(self) -> str:
        """pass | breach | no_data | pending_baseline | inconclusive. Rows written before
        outcomes were stored say it only through passed, grade and reason."""
        if self.outcome == "insufficient_baseline":
            return "pending_baseline"
        if self.outcome:
            return self.outcome
        reason = self.reason or ""
        if self.grade is None and reason.startswith(("insufficient baseline",
                                                     "pending baseline")):
            return "pending_baseline"
        if self.passed:
            return "pass"
        return "no_data" if self.value is None else "breach"

    @property
    def judged(self) -> bool:
        """False for results that are neither a breach nor a pass."""
        return self.kind in _JUDGED


@dataclass(frozen=True)
class Policy:
    for_runs: int = 1
    remind_every_s: float = 4 * 3600
    inconclusive_runs: int = 3
    keep_firing_for: int = 1


@dataclass(frozen=True)
class Step:
    alert: AlertRow | None          # the row to store (None: nothing to store)
    transition: Transition | None   # recorded in alert_events
    notify: NotifyKind | None       # the notification this step sends


def advance(prev: AlertRow | None, v: Verdict, *, run_id: str, now: datetime,
            policy: Policy) -> Step:
    """The next state of one breach alert given this run's verdict. No data moves the no-data
    alert (`advance_nodata`), not this one: the breach alert keeps its state."""
    if v.kind not in ("pass", "breach"):
        return Step(None, None, None)
    if v.kind == "pass":
        if prev is None or prev.state == "resolved":
            return Step(None, None, None)
        was_firing = prev.state == "firing"
        passes = prev.consecutive_passes + 1
        if was_firing and passes < policy.keep_firing_for:
            return Step(replace(_with_facts(prev, v, run_id), consecutive_passes=passes),
                        None, None)
        row = replace(_with_facts(prev, v, run_id), state="resolved", consecutive_breaches=0,
                      consecutive_passes=0, resolved_at=now)
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
    row = replace(_with_facts(prev, v, run_id), consecutive_breaches=count,
                  consecutive_passes=0)
    if prev.state == "pending":
        if count >= policy.for_runs:
            return Step(_fire(row, now), "fired", "firing")
        return Step(row, None, None)
    # Still firing.
    if prev.last_notified_at is None:  # it fired while silenced: tell it now
        return Step(replace(row, last_notified_at=now), "reminded", "firing")
    last = prev.last_notified_at or prev.fired_at
    if last is None or (now - last).total_seconds() >= policy.remind_every_s:
        return Step(replace(row, last_notified_at=now), "reminded", "reminder")
    return Step(row, None, None)


def _fire(row: AlertRow, now: datetime) -> AlertRow:
    return replace(row, state="firing", fired_at=now, resolved_at=None, last_notified_at=now)


def _with_facts(row: AlertRow, v: Verdict, run_id: str) -> AlertRow:
    return replace(row, severity=v.severity, value=v.value, objective_text=v.objective_text,
                   grade=v.grade, last_run=run_id)


def advance_inconclusive(prev: AlertRow | None, v: Verdict, *, run_id: str, now: datetime,
                         policy: Policy) -> Step:
    """The next state of one inconclusive alert (key ``<slo>:inconclusive``; module
    docstring). `consecutive_breaches` counts the inconclusive runs in a row."""
    active = prev is not None and prev.state != "resolved"
    if v.kind == "inconclusive":
        if prev is None or prev.state == "resolved":
            base = AlertRow(slo=v.slo + INCONCLUSIVE_SUFFIX, target=v.target, state="pending",
                            severity="warning", consecutive_breaches=0,
                            first_breach_run=run_id)
        else:
            base = prev
        row = replace(_with_facts(base, v, run_id), severity="warning",
                      consecutive_breaches=base.consecutive_breaches + 1)
        if row.state == "pending" and row.consecutive_breaches >= policy.inconclusive_runs:
            return Step(_fire(row, now), "fired", "inconclusive")
        return Step(row, "pending" if not active else None, None)
    if not active or not v.judged:
        return Step(None, None, None)  # pending baseline says nothing about the measurement
    assert prev is not None
    row = replace(_with_facts(prev, v, run_id), severity="warning", state="resolved",
                  consecutive_breaches=0, resolved_at=now)
    if prev.state == "firing":
        return Step(replace(row, last_notified_at=now), "resolved", "inconclusive_resolved")
    return Step(row, "cleared", None)


def burn_verdict(row: dict[str, Any], prev: AlertRow | None) -> Verdict | None:
    """The burn-rate alert's verdict (key ``<slo>:burn``, slospec/budget.py) from one
    slo_results row: a page or ticket state is a breach, ok is a pass, anything else (not
    judged, no budget) changes nothing. Page is error severity, ticket warning; an alert that
    fired as a page keeps error severity until it resolves, so its resolve reaches the same
    sinks as its firing."""
    state = row.get("burn_state")
    if state not in ("page", "ticket", "ok"):
        return None
    severity = "error" if state == "page" else "warning"
    if prev is not None and prev.state == "firing" and prev.severity == "error":
        severity = "error"
    remaining = row.get("error_budget_remaining")
    left = "" if remaining is None else f"; error budget left {remaining * 100:.0f} %"
    return Verdict(slo=row["slo"] + BURN_SUFFIX, target=row["target"], severity=severity,
                   passed=state == "ok", value=row.get("burn_rate"),
                   objective_text="burn rate under the page and ticket thresholds",
                   grade=None, scope=row.get("scope") or "",
                   indicator=row.get("indicator") or "",
                   reason=(row.get("burn_text") or "") + left,
                   outcome="pass" if state == "ok" else "breach")


RETIRED_REASON = ("no longer evaluated: the SLO or the target is gone from the configuration "
                  "(or the SLO no longer sends this alert)")


def retire(prev: AlertRow, key: str, *, run_id: str, now: datetime) -> tuple[Verdict, Step]:
    """Resolve an active alert whose SLO × target this run no longer evaluates: a removed
    target or a renamed SLO must not stay firing forever. The notification (only if it had
    fired) says why."""
    inconclusive = key.endswith(INCONCLUSIVE_SUFFIX)
    nodata = key.endswith(NODATA_SUFFIX)
    # the notification names the SLO itself, as those alerts' own notifications do
    v = Verdict(slo=key.removesuffix(INCONCLUSIVE_SUFFIX).removesuffix(NODATA_SUFFIX),
                target=prev.target,
                severity=prev.severity, passed=True, value=prev.value,
                objective_text=prev.objective_text or "", grade=prev.grade,
                reason=RETIRED_REASON, outcome="pass")
    row = replace(prev, state="resolved", consecutive_breaches=0, consecutive_passes=0,
                  resolved_at=now, last_run=run_id)
    if prev.state != "firing":
        return v, Step(row, "cleared", None)
    notify: NotifyKind = ("inconclusive_resolved" if inconclusive else
                          "nodata_resolved" if nodata else "resolved")
    return v, Step(replace(row, last_notified_at=now), "resolved", notify)


_NODATA_NOTIFY: dict[str, NotifyKind] = {"firing": "nodata", "reminder": "nodata_reminder",
                                         "resolved": "nodata_resolved"}


def advance_nodata(prev: AlertRow | None, v: Verdict, *, run_id: str, now: datetime,
                   policy: Policy) -> Step:
    """The no-data alert (key ``<slo>:nodata``): fires when a target has no data (down, no
    successful samples, too few for the aggregate; `for_runs` and reminders as for breaches),
    resolves at the next run with data, pass or breach. Pending baseline and inconclusive
    change nothing. Kept apart from the breach alert: "we cannot see it" is other news than
    "it is too slow", and a target that comes back slow fires the breach alert by itself."""
    if v.kind not in ("pass", "breach", "no_data"):
        return Step(None, None, None)
    as_breach = replace(v, slo=v.slo + NODATA_SUFFIX, passed=v.kind != "no_data",
                        outcome="breach" if v.kind == "no_data" else "pass")
    step = advance(prev, as_breach, run_id=run_id, now=now, policy=policy)
    return replace(step, notify=_NODATA_NOTIFY[step.notify] if step.notify else None)
