"""The public entry points: dispatch a run's alerts, report a pipeline failure, test sinks.

`dispatch_alerts` is what the `alert_dispatch` asset calls after SLO evaluation wrote
`slo_results` for the run. It advances every alert in one transaction (state, events and
outbox rows commit together), then delivers whatever is due. Re-dispatching the same run is
a no-op for alerts already advanced by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dualbus_pipeline.alerts.notify import (
    PIPELINE_SLO,
    AlertFacts,
    alert_notification,
    pipeline_failure_notification,
    route,
    safe_sink_url,
    send,
    test_notification,
)
from dualbus_pipeline.alerts.outbox import deliver_pending, enqueue, send_with_retries
from dualbus_pipeline.alerts.state import Policy, Verdict, advance
from dualbus_pipeline.config import Topology, parse_duration_s
from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store


@dataclass
class DispatchSummary:
    fired: int = 0
    reminded: int = 0
    resolved: int = 0
    delivered: int = 0
    pending: int = 0


def policy_of(topology: Topology) -> Policy:
    a = topology.alerting
    return Policy(for_runs=a.for_runs, remind_every_s=parse_duration_s(a.remind_every))


def dispatch_alerts(wh: Warehouse, run_id: str, topology: Topology, *,
                    report_path: str | None, now: datetime | None = None) -> DispatchSummary:
    """Advance every (slo, target) alert with this run's verdicts, queue and deliver."""
    now = now or datetime.now(UTC)
    policy = policy_of(topology)
    summary = DispatchSummary()
    with wh.transaction() as con:
        current = store.load_alerts(con)
        changed: list[store.AlertRow] = []
        events: list[store.AlertEvent] = []
        for row in store.run_verdicts(con, run_id):
            v = Verdict.from_row(row)
            prev = current.get((v.slo, v.target))
            if prev is not None and prev.last_run == run_id:
                continue  # this run already advanced this alert (asset re-materialized)
            step = advance(prev, v, run_id=run_id, now=now, policy=policy)
            if step.alert is not None:
                changed.append(step.alert)
            if step.transition is not None:
                events.append(store.AlertEvent(
                    now, run_id, v.slo, v.target, step.transition,
                    f"value {v.value!r}, objective {v.objective_text}, grade {v.grade or '-'}"))
            if step.notify is not None and step.alert is not None:
                facts = AlertFacts(slo=v.slo, target=v.target, severity=v.severity,
                                   value=v.value, objective_text=v.objective_text,
                                   grade=v.grade, scope=v.scope, indicator=v.indicator,
                                   reason=v.reason, fired_at=step.alert.fired_at)
                n = alert_notification(step.notify, facts, run_id=run_id,
                                       report_path=report_path, platform=topology.platform)
                enqueue(con, topology.alerts, n, now=now, run_id=run_id)
                if step.notify == "firing":
                    summary.fired += 1
                elif step.notify == "reminder":
                    summary.reminded += 1
                else:
                    summary.resolved += 1
        # One statement each, whatever the number of targets (1,000 engines: thousands of rows).
        store.save_alerts(con, changed)
        store.add_events(con, events)
    delivery = deliver_pending(wh, topology, now=now)
    summary.delivered = delivery.delivered
    summary.pending = delivery.pending
    return summary


def notify_pipeline_failure(wh: Warehouse, topology: Topology, run_id: str,
                            error: str) -> DispatchSummary:
    """Tell every sink the pipeline itself failed. Uses the outbox; if the warehouse cannot
    be opened (the failure may be the warehouse), sends directly so the news still gets out."""
    n = pipeline_failure_notification(topology.platform, run_id, error.strip()[:1000])
    now = datetime.now(UTC)
    try:
        with wh.transaction() as con:
            store.add_event(con, at=now, run_id=run_id, slo=PIPELINE_SLO,
                            target=topology.platform, transition="failed", detail=n.body)
            queued = enqueue(con, topology.alerts, n, now=now, run_id=run_id)
        delivery = deliver_pending(wh, topology, now=now)
        return DispatchSummary(fired=queued, delivered=delivery.delivered,
                               pending=delivery.pending)
    except WarehouseError:
        sinks = route(topology.alerts, n)
        delivered = sum(send_with_retries(s.url, n)[0].ok for _, s in sinks)
        # Nothing is pending: without a warehouse there is no outbox to keep it in.
        return DispatchSummary(fired=len(sinks), delivered=delivered, pending=0)


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
