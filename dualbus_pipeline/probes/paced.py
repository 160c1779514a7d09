"""Paced sends from a blocking thread, and the thread that listens for their answers: the
parts the bus delivery probe (bus.py) and the pair probe (pair.py) share.

`paced_sends` calls ``send(k, due)`` for each sample on an open-loop schedule. What each sample
is charged from (model.py): the thread sleeps until the send is due; when it is already past
due, the time since then splits into time spent inside earlier sends (the bus held the thread:
charged, the sample starts that much earlier) and everything else (the probe's own lateness:
not charged). Samples the host delayed are re-taken once the answers are in (retake.py,
`retaken`).

`Listener` runs a read loop on a connection of its own in a daemon thread until told to stop,
and stops the senders when it fails.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dualbus_pipeline.probes.host import UNKNOWN, cpu_pressure
from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.resp import RespConnection, connect_error_text
from dualbus_pipeline.probes.retake import (
    HostWatch,
    budget,
    delayed_counted,
    replace_delayed,
)
from dualbus_pipeline.probes.timing import now_ns, sleep_until_ns

LISTEN_POLL_S = 0.005


@dataclass
class Sends:
    """One schedule's sends, as parallel lists (index k is the k-th send)."""

    intended: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)
    psi: list[int] = field(default_factory=list)  # host CPU pressure at each start (host.py)

    def __len__(self) -> int:
        return len(self.intended)

    def last_start(self) -> int:
        return max(self.start, default=now_ns())

    def extend(self, more: Sends) -> None:
        for mine, theirs in ((self.intended, more.intended), (self.start, more.start),
                             (self.sent, more.sent), (self.psi, more.psi)):
            mine.extend(theirs)
        self.error.extend(more.error)

    def stall(self, k: int, psi_done: int) -> int:
        """µs the host's tasks waited for a CPU between send k's start and ``psi_done``."""
        if psi_done == UNKNOWN or self.psi[k] == UNKNOWN:
            return UNKNOWN
        return psi_done - self.psi[k]


def paced_sends(count: int, interval_ns: int, first_due: int, *, watch: HostWatch,
                send: Callable[[int, int], str | None], stopped: Callable[[], str | None],
                first_k: int = 0) -> Sends:
    """Send ``count`` samples on the schedule ``first_due + j × interval_ns``, numbered from
    ``first_k``. ``send(k, due)`` performs send k and returns an error text or None;
    ``stopped()`` returns why sending is pointless (the bus was given up, the listener
    failed), and the remaining sends are then recorded as "not attempted: ...". Late wake-ups
    go to ``watch`` (re-takes are decided once the answers are in: retake.py)."""
    pressure = cpu_pressure()
    out = Sends()
    inside: deque[tuple[int, int]] = deque()  # (sent, returned) of recent sends
    for j in range(count):
        due = first_due + j * interval_ns
        why = stopped()
        if why is not None:
            start = max(due, now_ns())
            err: str | None = f"not attempted: {why}"
            out.psi.append(UNKNOWN)
            out.sent.append(start)
        else:
            now = now_ns()
            if now <= due:
                start = sleep_until_ns(due)
            else:
                while inside and inside[0][1] <= due:
                    inside.popleft()  # ended before this send was due: not its wait
                held = sum(min(r, now) - max(s, due) for s, r in inside)
                start = now - held
            watch.woke(due, start)
            out.psi.append(pressure.stall_us())
            out.sent.append(now_ns())
            err = send(first_k + j, due)
            inside.append((out.sent[-1], now_ns()))
        out.intended.append(due)
        out.start.append(start)
        out.error.append(err)
    return out


class Listener:
    """``read(conn)`` in a loop on a connection of its own, in a daemon thread, until
    ``stop()``. ``error`` holds why it ended early (connect failure, broken connection)."""

    def __init__(self, url: str, timeout_s: float, name: str,
                 read: Callable[[RespConnection], None]) -> None:
        self.error: str | None = None
        self._url, self._timeout_s, self._read = url, timeout_s, read
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        self._ready.wait(self._timeout_s + 1)
        return self

    def _run(self) -> None:
        try:
            conn = RespConnection.open(self._url, self._timeout_s + 0.5)
        except Exception as exc:  # reported as failed samples
            self.error = connect_error_text(exc)
            self._ready.set()
            return
        try:
            self._ready.set()
            while not self._stop.is_set():
                self._read(conn)
        except Exception as exc:  # reported as failed samples
            self.error = connect_error_text(exc)
        finally:
            conn.close()

    def wait(self, until_ns: int, done: Callable[[], bool]) -> None:
        """Wait until ``done()``, the deadline, or the thread's end (it keeps listening)."""
        while not done() and now_ns() < until_ns and self._thread.is_alive():
            self._thread.join(LISTEN_POLL_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout_s + 1)


def retaken(count: int, settings_fraction: float, watch: HostWatch,
            measure: Callable[[int, int], SampleBatch]) -> tuple[SampleBatch, int]:
    """A paced series with its re-takes: ``measure(n, first_k)`` takes n samples numbered from
    ``first_k`` and returns them; host-delayed ones (retake.py) are flagged and taken again,
    pass after pass, while the budget lasts. Returns the batch and how many delayed samples
    stayed counted (the budget ran out: inconclusive)."""
    left = budget(count, settings_fraction)
    batch = measure(count, 0)
    again = replace_delayed(batch, watch, 0, left)
    while again:
        left -= again
        more = measure(again, len(batch))
        again = replace_delayed(more, watch, 0, left)
        batch.extend(more)
    return batch, delayed_counted(batch, watch)
