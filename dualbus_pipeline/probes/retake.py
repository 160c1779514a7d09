"""Re-takes: samples the probe host itself delayed are measured again, within a budget.

A sample was delayed by the probe host, not by its target, when any of these exceeded
``probe.late_bound_ms`` (1 ms):

* its own lateness: the probe woke after the send was due (start − intended);
* the host's CPU pressure while it was in flight: runnable tasks waited that long for a CPU
  (host.py, Linux PSI);
* a late wake-up of the same probe loop while it was in flight: the loop woke that late for
  another send (`HostWatch`), so the host had frozen or was busy — a VM descheduled for 40 ms
  leaves no CPU pressure, only a loop that wakes 40 ms late.

After a schedule's answers are in, such samples are kept in the warehouse with ``replaced``
set (left out of every figure) and as many new samples are taken in a second pass, at most
``ceil(count × probe.retake_fraction)`` per target over both passes (`budget`). A delayed
sample beyond that is counted, and the summary is inconclusive (stats.py): a host that keeps
delaying the probe is persistently overloaded, and nobody can tell what the target showed.

A send the *target* held back (a blocking XADD that had not returned, a request waiting for a
connection) is never late: it is charged from its due time (model.py).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from dualbus_pipeline.probes.model import SampleBatch


def budget(count: int, fraction: float) -> int:
    return math.ceil(count * fraction)


@dataclass
class HostWatch:
    """The late wake-ups of one probe loop or thread: (due, woke) windows past the bound."""

    bound_ns: int
    windows: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def for_bound(cls, late_bound_ms: float) -> HostWatch:
        return cls(bound_ns=int(late_bound_ms * 1e6))

    def woke(self, due_ns: int, woke_ns: int) -> None:
        if woke_ns - due_ns > self.bound_ns:
            bisect.insort(self.windows, (due_ns, woke_ns))

    def overlapped(self, start_ns: int, done_ns: int) -> bool:
        """Whether a late wake-up window (longer than the bound) overlaps [start, done]."""
        k = bisect.bisect_left(self.windows, (done_ns, done_ns))
        return any(woke > start_ns for _, woke in self.windows[:k])

    def delayed(self, batch: SampleBatch, k: int) -> bool:
        """Whether sample k was delayed by the probe host (module docstring)."""
        start, done = batch.start_ns[k], batch.done_ns[k]
        return (start - batch.intended_ns[k] > self.bound_ns
                or batch.stall_us[k] * 1000 > self.bound_ns
                or self.overlapped(start, done))


def delayed_counted(batch: SampleBatch, watch: HostWatch) -> int:
    """Host-delayed samples that are still counted (the budget ran out): inconclusive."""
    return sum(1 for k in range(len(batch))
               if not batch.replaced[k] and watch.delayed(batch, k))


def replace_delayed(batch: SampleBatch, watch: HostWatch, first: int, allowed: int) -> int:
    """Flag the host-delayed samples from index ``first`` on as ``replaced``, at most
    ``allowed`` of them (in order); return how many were flagged."""
    flagged = 0
    for k in range(first, len(batch)):
        if flagged >= allowed:
            break
        if not batch.replaced[k] and watch.delayed(batch, k):
            batch.replaced[k] = 1
            flagged += 1
    return flagged
