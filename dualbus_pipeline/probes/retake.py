"""Re-takes: samples the probe host itself delayed are measured again, within a budget.

A paced probe sleeps until each send is due. When it wakes later than ``probe.late_bound_ms``
the host was busy (another process had the core, the VM was descheduled): the answer may be
read late for the same reason, and that time is not the target's. Such a sample is kept (with
``replaced`` set, so the warehouse shows what happened) and one more send is appended to the
schedule. At most ``ceil(count × probe.retake_fraction)`` re-takes per target: a host that
keeps delaying the probe beyond that is persistently overloaded, the late sample is counted,
and the summary is inconclusive (stats.py).

A send the *target* held back (a blocking XADD that had not returned, a request waiting for a
connection) is never late: it is charged from its intended time (model.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Retakes:
    """The re-take decisions of one target's schedule."""

    bound_ns: int
    budget: int
    used: int = 0

    @classmethod
    def for_schedule(cls, count: int, late_bound_ms: float, fraction: float) -> Retakes:
        return cls(bound_ns=int(late_bound_ms * 1e6), budget=math.ceil(count * fraction))

    def replace(self, lateness_ns: int) -> bool:
        """Whether a sample whose send was ``lateness_ns`` late is re-taken (one more send is
        then due); False when it was on time or the budget is spent."""
        if lateness_ns <= self.bound_ns or self.used >= self.budget:
            return False
        self.used += 1
        return True
