"""The outbox: a notification is stored before it is sent, and kept until delivered or expired.

`enqueue` runs inside the caller's transaction (the one that changes the alert state), so a
state change can never happen without its notification, nor a notification without its
change. `deliver_pending` then sends with no warehouse connection held:

* rows are sent oldest first per sink (a RESOLVED never overtakes its FIRING);
* each row gets a couple of quick retries; a sink that still fails is *down* for the rest
  of this dispatch and its rows wait with exponential backoff (30 s doubling, capped at 30
  min) for a later dispatch (the next run, the dead-man sensor tick, or a pipeline failure);
* rows older than `alerting.outbox_expiry` are marked expired, never silently dropped;
* delivery problems are recorded (`attempts`, `last_error`, secrets scrubbed), never raised:
  a sink that is down does not fail the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from dualbus_pipeline.alerts.notify import (
    Notification,
    SendResult,
    grouped_notification,
    route,
    safe_sink_url,
    send,
    sink_accepts,
)
from dualbus_pipeline.config import AlertSink, Topology, parse_duration_s
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store

QUICK_RETRY_DELAYS_S = (0.2, 0.5)
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 1800.0
# How long a dispatcher holds rows it is sending (another dispatcher skips them meanwhile).
LEASE_S = 120.0

Sender = Callable[[str, Notification], SendResult]


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    pending: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # masked sink -> last error


def enqueue(con: duckdb.DuckDBPyConnection, sinks: Sequence[AlertSink], n: Notification, *,
            now: datetime, run_id: str | None = None) -> int:
    """Store `n` once per sink that accepts it; returns how many rows were queued."""
    count = 0
    for index, sink in route(sinks, n):
        store.enqueue(con, at=now, run_id=run_id or n.run_id, slo=n.slo, target=n.target,
                      kind=n.kind, sink=safe_sink_url(sink.url), sink_index=index,
                      title=n.title, body=n.body, notify_type=n.notify_type)
        count += 1
    return count


def enqueue_run(con: duckdb.DuckDBPyConnection, topology: Topology,
                notes: Sequence[Notification], *, now: datetime, run_id: str,
                report_path: str | None) -> int:
    """Queue one run's alert notifications: with `alerting.group_by: run` (default) one
    message per sink (a sink that accepted one gets it as it is, one that accepted several a
    grouped message), with `alert` one per notification and sink. Rows queued."""
    if topology.alerting.group_by == "alert":
        return sum(enqueue(con, topology.alerts, n, now=now, run_id=run_id) for n in notes)
    count = 0
    for index, sink in enumerate(topology.alerts):
        mine = [n for n in notes if sink_accepts(sink, n)]
        if not mine:
            continue
        n = mine[0] if len(mine) == 1 else grouped_notification(
            mine, platform=topology.platform, run_id=run_id, report_path=report_path)
        store.enqueue(con, at=now, run_id=run_id, slo=n.slo, target=n.target, kind=n.kind,
                      sink=safe_sink_url(sink.url), sink_index=index, title=n.title,
                      body=n.body, notify_type=n.notify_type)
        count += 1
    return count


def backoff_s(attempts: int) -> float:
    """Delay before the next dispatch tries a row that has failed `attempts` times."""
    rounds = max(1, -(-attempts // (1 + len(QUICK_RETRY_DELAYS_S))))
    return float(min(BACKOFF_BASE_S * 2 ** (rounds - 1), BACKOFF_CAP_S))


def send_with_retries(url: str, n: Notification, sender: Sender = send) -> tuple[SendResult, int]:
    result = sender(url, n)
    tries = 1
    for delay in QUICK_RETRY_DELAYS_S:
        if result.ok:
            break
        time.sleep(delay)
        result = sender(url, n)
        tries += 1
    return result, tries


def _find_sink(sinks: Sequence[AlertSink], row: store.OutboxRow) -> AlertSink | None:
    # Rows name their sink by masked URL (the raw one is never stored); prefer the same index.
    if 0 <= row.sink_index < len(sinks) and safe_sink_url(sinks[row.sink_index].url) == row.sink:
        return sinks[row.sink_index]
    for s in sinks:
        if safe_sink_url(s.url) == row.sink:
            return s
    return None


def deliver_pending(wh: Warehouse, topology: Topology, *, now: datetime | None = None,
                    sender: Sender = send, force: bool = False) -> DeliveryReport:
    """Send every due outbox row (`force`: every undelivered row, backing off or not, as
    `dualbus alerts flush` does once a sink is back). Never raises for a delivery problem."""
    now = now or datetime.now(UTC)
    report = DeliveryReport()
    expiry = timedelta(seconds=parse_duration_s(topology.alerting.outbox_expiry))
    with wh.transaction() as con:
        report.expired = store.expire_outbox(con, created_before=now - expiry, now=now)
        rows = store.undelivered(con)
        due: list[store.OutboxRow] = []
        blocked: set[str] = set()
        for r in rows:
            if r.sink in blocked:
                continue
            if not force and r.next_attempt_at is not None and r.next_attempt_at > now:
                blocked.add(r.sink)  # oldest row of this sink is backing off: keep order
                continue
            due.append(r)
        store.hold(con, [r.id for r in due], now + timedelta(seconds=LEASE_S))

    outcomes: list[tuple[store.OutboxRow, str, SendResult | None, int]] = []
    down: dict[str, datetime] = {}
    for r in due:
        sink = _find_sink(topology.alerts, r)
        if sink is None:
            outcomes.append((r, "gone", None, 0))
            continue
        if r.sink in down:
            outcomes.append((r, "deferred", None, 0))
            continue
        result, tries = send_with_retries(sink.url, _as_notification(r), sender)
        if result.ok:
            outcomes.append((r, "delivered", result, tries))
        else:
            down[r.sink] = now + timedelta(seconds=backoff_s(r.attempts + tries))
            report.errors[r.sink] = result.error or "delivery failed"
            outcomes.append((r, "failed", result, tries))

    with wh.transaction() as con:
        for r, what, res, tries in outcomes:
            if what == "delivered":
                store.mark_delivered(con, r.id, attempts=tries, at=now)
                report.delivered += 1
            elif what == "gone":
                store.mark_expired(con, r.id, at=now,
                                   error="sink no longer configured in dualbus.yaml")
                report.expired += 1
            else:
                store.mark_failed(con, r.id, attempts=tries, next_attempt_at=down[r.sink],
                                  error=res.error if res else None)
                report.failed += what == "failed"
        report.pending = store.count_undelivered(con)
    return report


def _as_notification(r: store.OutboxRow) -> Notification:
    return Notification(kind=r.kind, severity="", title=r.title,  # type: ignore[arg-type]
                        body=r.body, notify_type=r.notify_type,  # type: ignore[arg-type]
                        slo=r.slo, target=r.target, run_id=r.run_id)
