"""The pipeline's own alert and heartbeat: what a run that failed or completed tells the world.

The pipeline-failure alert is stateful like a breach alert: one row in `alerts` (slo
``dualbus.pipeline``, target = the platform).

* A failed run fires it (one notification); further failed runs remind at most every
  `alerting.remind_every`; a run already counted (the daemon's sensor and the CLI both saw
  it) changes nothing.
* The next completed run resolves it (one notification).
* `dualbus run` (cron, CI) and the daemon's run-failure sensor call the same functions, so a
  failure alerts whichever way the run was started.

A completed run also calls `alerting.heartbeat_url` when one is set: a dead-man switch that
lives outside dualbus (healthchecks.io, Uptime Kuma push monitors, Cronitor), so silence is
noticed even when the host, the daemon or this code is what broke. The heartbeat is best
effort: one request with a short timeout, its outcome returned, never raised.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from dualbus_pipeline.alerts.dispatch import DispatchSummary, policy_of
from dualbus_pipeline.alerts.notify import PIPELINE_SLO, pipeline_failure_notification, route
from dualbus_pipeline.alerts.outbox import deliver_pending, enqueue, send_with_retries
from dualbus_pipeline.config import Topology
from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store
from dualbus_pipeline.store.alerts import AlertRow

HEARTBEAT_TIMEOUT_S = 5.0


def notify_pipeline_failure(wh: Warehouse, topology: Topology, run_id: str, error: str, *,
                            now: datetime | None = None) -> DispatchSummary:
    """Advance the pipeline-failure alert for a failed run and deliver. If the warehouse
    cannot be opened (the failure may be the warehouse), send directly, so the news still
    gets out."""
    now = now or datetime.now(UTC)
    error = (error.strip().splitlines() or ["unknown error"])[0][:1000]
    platform = topology.platform
    try:
        with wh.transaction() as con:
            prev = store.load_alert(con, PIPELINE_SLO, platform)
            if prev is not None and prev.last_run == run_id:
                return DispatchSummary()  # this failure was already counted
            transition = _failure_transition(prev, now, policy_of(topology).remind_every_s)
            firing = prev is not None and prev.state == "firing"
            row = AlertRow(
                slo=PIPELINE_SLO, target=platform, state="firing", severity="error",
                consecutive_breaches=prev.consecutive_breaches + 1 if prev and firing else 1,
                first_breach_run=prev.first_breach_run if prev and firing else run_id,
                last_run=run_id, objective_text="runs complete",
                fired_at=prev.fired_at if prev and firing else now,
                last_notified_at=now if transition or not prev else prev.last_notified_at)
            store.save_alert(con, row)
            store.add_event(con, at=now, run_id=run_id, slo=PIPELINE_SLO, target=platform,
                            transition=transition or "failed", detail=error)
            queued = 0
            if transition:
                n = pipeline_failure_notification(platform, run_id, error,
                                                  transition=transition)
                queued = enqueue(con, topology.alerts, n, now=now, run_id=run_id)
        delivery = deliver_pending(wh, topology, now=now)
        return DispatchSummary(fired=int(transition == "fired" and queued > 0),
                               reminded=int(transition == "reminded" and queued > 0),
                               delivered=delivery.delivered, pending=delivery.pending)
    except WarehouseError:
        n = pipeline_failure_notification(platform, run_id, error)
        sinks = route(topology.alerts, n)
        delivered = sum(send_with_retries(s.url, n)[0].ok for _, s in sinks)
        # Nothing is pending: without a warehouse there is no outbox to keep it in.
        return DispatchSummary(fired=1, delivered=delivered, pending=0)


def _failure_transition(prev: AlertRow | None, now: datetime,
                        remind_every_s: float) -> str | None:
    if prev is None or prev.state != "firing":
        return "fired"
    last = prev.last_notified_at or prev.fired_at
    if last is None or (now - last).total_seconds() >= remind_every_s:
        return "reminded"
    return None


@dataclass(frozen=True)
class Completion:
    """What a completed run told the world: the failure alert it resolved (if one was
    firing) and the heartbeat's outcome (None: no heartbeat configured)."""

    resolved_failure: bool
    heartbeat: str | None


def run_completed(wh: Warehouse, topology: Topology, run_id: str, *,
                  now: datetime | None = None) -> Completion:
    """Resolve a firing pipeline-failure alert, deliver, and ping the heartbeat."""
    now = now or datetime.now(UTC)
    platform = topology.platform
    resolved = False
    with wh.transaction() as con:
        prev = store.load_alert(con, PIPELINE_SLO, platform)
        if prev is not None and prev.state == "firing":
            resolved = True
            last_error = store.last_event_detail(con, PIPELINE_SLO, platform) or "unknown"
            store.save_alert(con, replace(prev, state="resolved", resolved_at=now,
                                          last_notified_at=now, consecutive_breaches=0,
                                          last_run=run_id))
            store.add_event(con, at=now, run_id=run_id, slo=PIPELINE_SLO, target=platform,
                            transition="resolved", detail="a run completed again")
            enqueue(con, topology.alerts,
                    pipeline_failure_notification(platform, run_id, last_error,
                                                  transition="resolved"),
                    now=now, run_id=run_id)
    if resolved:
        deliver_pending(wh, topology, now=now)
    return Completion(resolved_failure=resolved, heartbeat=ping_heartbeat(topology, run_id))


def ping_heartbeat(topology: Topology, run_id: str) -> str | None:
    """Call `alerting.heartbeat_url` once; "ok <status>" or "failed: <reason>" (the URL's
    path, which may hold the check's secret id, is never in the message)."""
    a = topology.alerting
    if not a.heartbeat_url:
        return None
    data = None
    if a.heartbeat_method == "POST":
        data = f"dualbus run {run_id} completed on {topology.platform}\n".encode()
    req = urllib.request.Request(a.heartbeat_url, data=data, method=a.heartbeat_method,
                                 headers={"User-Agent": "dualbus-heartbeat"})
    where = urlsplit(a.heartbeat_url).hostname or "?"
    try:
        with urllib.request.urlopen(req, timeout=HEARTBEAT_TIMEOUT_S) as resp:
            return f"ok {resp.status} from {where}"
    except Exception as exc:  # best effort: a heartbeat never fails a completed run
        reason = getattr(exc, "code", None) or getattr(exc, "reason", None) or exc
        return f"failed: {where}: {reason}"
