"""The dead-man switch: an alert when the pipeline stops producing fresh results.

Fires when no run has completed successfully within 2x the schedule interval (the gap
between the two most recent scheduled times, from `schedule:` and `timezone:`); reminds
every `remind_every` while that lasts; resolves when a run completes again. The clock starts
at the last completed run, or at the first recorded run when none ever completed; with no
run recorded at all there is nothing to be stale yet. The alert is an ordinary row of the
`alerts` table (slo ``dualbus.deadman``, target = the platform) and its notifications go
through the outbox like any other. Every check also delivers whatever the outbox holds, so
a sink that comes back gets its backlog even when no run happens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dualbus_pipeline.alerts.cron import interval_s
from dualbus_pipeline.alerts.dispatch import policy_of
from dualbus_pipeline.alerts.notify import DEADMAN_SLO, deadman_notification
from dualbus_pipeline.alerts.outbox import deliver_pending, enqueue
from dualbus_pipeline.config import Topology
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store
from dualbus_pipeline.store.alerts import AlertRow


@dataclass(frozen=True)
class DeadmanStatus:
    state: str                 # ok | firing | resolved | no_runs
    transition: str | None     # fired | reminded | resolved | None
    last_success: datetime | None
    age_s: float | None
    allowed_s: float
    delivered: int = 0
    pending: int = 0

    def describe(self) -> str:
        age = "no run recorded yet" if self.age_s is None else (
            f"last successful run {self.age_s:.0f}s ago" if self.last_success else
            f"no run completed in {self.age_s:.0f}s")
        what = f"dead-man {self.state}" + (f" ({self.transition})" if self.transition else "")
        return (f"{what}: {age}, allowed {self.allowed_s:.0f}s; outbox: "
                f"{self.delivered} delivered, {self.pending} pending")


def check_deadman(wh: Warehouse, topology: Topology, now: datetime | None = None
                  ) -> DeadmanStatus:
    now = now or datetime.now(UTC)
    allowed = 2 * interval_s(topology.schedule, topology.timezone, now)
    policy = policy_of(topology)
    platform = topology.platform
    transition: str | None = None
    with wh.transaction() as con:
        last_ok = store.last_completed_at(con)
        since = last_ok or store.first_run_started_at(con)
        age = None if since is None else (now - since).total_seconds()
        stale = age is not None and age > allowed
        prev = store.load_alert(con, DEADMAN_SLO, platform)
        firing = prev is not None and prev.state == "firing"
        row: AlertRow | None = None
        if stale and not firing:
            transition = "fired"
            row = AlertRow(slo=DEADMAN_SLO, target=platform, state="firing", severity="error",
                           consecutive_breaches=1, fired_at=now, last_notified_at=now,
                           value=age, objective_text=f"< {allowed:.0f}s since a completed run")
        elif stale and prev is not None:
            last = prev.last_notified_at or prev.fired_at or now
            row = replace(prev, value=age, consecutive_breaches=prev.consecutive_breaches + 1)
            if (now - last).total_seconds() >= policy.remind_every_s:
                transition = "reminded"
                row = replace(row, last_notified_at=now)
        elif not stale and firing and prev is not None:
            transition = "resolved"
            row = replace(prev, state="resolved", resolved_at=now, last_notified_at=now,
                          value=age, consecutive_breaches=0)
        if row is not None:
            store.save_alert(con, row)
        if transition is not None:
            store.add_event(con, at=now, run_id=None, slo=DEADMAN_SLO, target=platform,
                            transition=transition,
                            detail=f"age {age}s, allowed {allowed:.0f}s")
            n = deadman_notification(transition == "resolved", platform, last_success=last_ok,
                                     allowed_s=allowed, schedule=topology.schedule,
                                     reminder=transition == "reminded")
            enqueue(con, topology.alerts, n, now=now)
    delivery = deliver_pending(wh, topology, now=now)
    if since is None:
        state = "no_runs"
    else:
        state = "firing" if stale else ("resolved" if transition == "resolved" else "ok")
    return DeadmanStatus(state=state, transition=transition, last_success=last_ok, age_s=age,
                         allowed_s=allowed, delivered=delivery.delivered,
                         pending=delivery.pending)
