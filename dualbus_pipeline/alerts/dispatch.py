"""The public entry points: dispatch a run's alerts, test sinks (pipeline.py: the pipeline's own).

`dispatch_alerts` is what the `alert_dispatch` asset calls after SLO evaluation wrote
`slo_results` for the run. It advances every alert in one transaction (state, events and
outbox rows commit together), then delivers whatever is due. Re-dispatching the same run is
a no-op for alerts already advanced by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from dualbus_pipeline.alerts.notify import (
    AlertFacts,
    Notification,
    alert_notification,
    safe_sink_url,
    send,
    test_notification,
)
from dualbus_pipeline.alerts.outbox import deliver_pending, enqueue_run
from dualbus_pipeline.alerts.state import (
    BURN_SUFFIX,
    INCONCLUSIVE_SUFFIX,
    NODATA_SUFFIX,
    Policy,
    Step,
    Verdict,
    advance,
    advance_inconclusive,
    advance_nodata,
    burn_verdict,
    retire,
)
from dualbus_pipeline.config import Topology, parse_duration_s
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store
from dualbus_pipeline.store import silences as silence_store
from dualbus_pipeline.store.silences import Silence, covering


@dataclass
class DispatchSummary:
    fired: int = 0
    reminded: int = 0
    resolved: int = 0
    delivered: int = 0
    pending: int = 0
    inconclusive: int = 0   # inconclusive alerts fired (resolves count in `resolved`)
    silenced: int = 0       # notifications a silence held back


# which DispatchSummary counter a notification adds to
_COUNTED_AS = {"firing": "fired", "reminder": "reminded", "resolved": "resolved",
               "inconclusive": "inconclusive", "inconclusive_resolved": "resolved",
               "nodata": "fired", "nodata_reminder": "reminded", "nodata_resolved": "resolved"}


def policy_of(topology: Topology) -> Policy:
    a = topology.alerting
    return Policy(for_runs=a.for_runs, remind_every_s=parse_duration_s(a.remind_every),
                  inconclusive_runs=a.inconclusive_runs, keep_firing_for=a.keep_firing_for)


@dataclass
class _Batch:
    """What one dispatch writes, in its one transaction."""

    con: Any
    topology: Topology
    run_id: str
    report_path: str | None
    now: datetime
    summary: DispatchSummary
    silences: list[Silence] = field(default_factory=list)
    notes: list[Notification] = field(default_factory=list)  # queued at the end, grouped
    changed: list[store.AlertRow] = field(default_factory=list)
    events: list[store.AlertEvent] = field(default_factory=list)

    def apply(self, v: Verdict, step: Step) -> None:
        """Record one alert's step: its row, its event, its notification (held back while a
        silence covers the SLO × target: a firing one is then told once the silence ends,
        alerts/state.py)."""
        silence = covering(self.silences, v.slo.split(":")[0], v.target)
        if silence is not None and step.notify is not None and step.alert is not None:
            if step.notify == "firing":
                step = replace(step, alert=replace(step.alert, last_notified_at=None))
            # a reminder held back is no event; a state change (fired, resolved) still is
            step = replace(step, notify=None,
                           transition=None if step.transition == "reminded" else step.transition)
            self.summary.silenced += 1
        if step.alert is not None:
            self.changed.append(step.alert)
        if step.transition is not None and step.alert is not None:
            self.events.append(store.AlertEvent(
                self.now, self.run_id, step.alert.slo, v.target, step.transition,
                f"value {v.value!r}, objective {v.objective_text}, grade {v.grade or '-'}"
                + (f"; silenced by #{silence.id}: {silence.reason}" if silence else "")))
        if step.notify is None or step.alert is None:
            return
        facts = AlertFacts(slo=v.slo, target=v.target,
                           severity=v.severity, value=v.value,
                           objective_text=v.objective_text, grade=v.grade, scope=v.scope,
                           indicator=v.indicator, reason=v.reason,
                           fired_at=step.alert.fired_at,
                           in_a_row=step.alert.consecutive_breaches)
        self.notes.append(alert_notification(step.notify, facts, run_id=self.run_id,
                                             report_path=self.report_path,
                                             platform=self.topology.platform))
        field_name = _COUNTED_AS[step.notify]
        setattr(self.summary, field_name, getattr(self.summary, field_name) + 1)


def dispatch_alerts(wh: Warehouse, run_id: str, topology: Topology, *,
                    report_path: str | None, now: datetime | None = None,
                    alert_modes: Mapping[str, str] | None = None) -> DispatchSummary:
    """Advance every (slo, target) alert with this run's verdicts, queue and deliver: the
    per-run breach alert, the burn-rate alert and the inconclusive alert (alerts/state.py).
    `alert_modes`: per SLO its `budget.alerts` (both, burn or run; default both)."""
    now = now or datetime.now(UTC)
    policy = policy_of(topology)
    summary = DispatchSummary()
    modes = alert_modes or {}
    with wh.transaction() as con:
        current = store.load_alerts(con)
        batch = _Batch(con, topology, run_id, report_path, now, summary,
                       silences=silence_store.active(con, now))

        def step(key: str, v: Verdict, advance_fn: Any) -> None:
            prev = current.get((key, v.target))
            if prev is not None and prev.last_run == run_id:
                return  # this run already advanced this alert (asset re-materialized)
            batch.apply(v, advance_fn(prev, v, run_id=run_id, now=now, policy=policy))

        live: set[tuple[str, str]] = set()  # the alerts this run's verdicts can still move
        for row in store.run_verdicts(con, run_id):
            v = Verdict.from_row(row)
            mode = modes.get(v.slo, "both")
            if mode != "burn":
                step(v.slo, v, advance)
                step(v.slo + NODATA_SUFFIX, v, advance_nodata)
            step(v.slo + INCONCLUSIVE_SUFFIX, v, advance_inconclusive)
            burn = burn_verdict(row, current.get((v.slo + BURN_SUFFIX, v.target)))
            if mode != "run":
                if burn is not None:
                    step(burn.slo, burn, advance)
                live.add((v.slo + BURN_SUFFIX, v.target))  # not judged this run: kept as is
            if mode != "burn":
                live |= {(v.slo, v.target), (v.slo + NODATA_SUFFIX, v.target)}
            live.add((v.slo + INCONCLUSIVE_SUFFIX, v.target))
        for (key, target), prev in current.items():
            if (prev.state != "resolved" and prev.last_run != run_id
                    and not key.startswith("dualbus.") and (key, target) not in live):
                batch.apply(*retire(prev, key, run_id=run_id, now=now))
        enqueue_run(con, topology, batch.notes, now=now, run_id=run_id,
                    report_path=report_path)
        # One statement each, whatever the number of targets (1,000 engines: thousands of rows).
        store.save_alerts(con, batch.changed)
        store.add_events(con, batch.events)
    delivery = deliver_pending(wh, topology, now=now)
    summary.delivered = delivery.delivered
    summary.pending = delivery.pending
    return summary


@dataclass(frozen=True)
class SinkTest:
    sink: str  # masked URL
    delivered: bool
    error: str | None


def send_test(topology: Topology) -> list[SinkTest]:
    """Send a test notification to every sink right now (no outbox); one result per sink."""
    n = test_notification(topology.platform)
    out = []
    for s in topology.alerts:
        result = send(s.url, n)
        out.append(SinkTest(sink=safe_sink_url(s.url), delivered=result.ok, error=result.error))
    return out
