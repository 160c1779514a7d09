"""Paced sends from a blocking thread, and the thread that listens for their answers: the
parts the bus delivery probe (bus.py) and the pair probe (pair.py) share.

`paced_sends` calls ``send(k, due)`` for each sample on an open-loop schedule. What each sample
is charged from (model.py): the thread sleeps until the send is due; when it is already past
due, the time since then splits into time spent inside earlier sends (the bus held the thread:
charged, the sample starts that much earlier) and everything else (the probe's own lateness:
not charged). Lateness beyond ``late_bound_ms`` is re-taken (retake.py).

`Listener` runs a read loop on a connection of its own in a daemon thread until told to stop,
and stops the senders when it fails.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dualbus_pipeline.probes.resp import RespConnection, connect_error_text
from dualbus_pipeline.probes.retake import Retakes
from dualbus_pipeline.probes.timing import now_ns, sleep_until_ns

LISTEN_POLL_S = 0.005


@dataclass
class Sends:
    """One schedule's sends, as parallel lists (index k is the k-th send)."""

    intended: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)
    replaced: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.intended)

    def last_start(self) -> int:
        return max(self.start, default=now_ns())


def paced_sends(count: int, interval_ns: int, first_due: int, *, late_bound_ms: float,
                retake_fraction: float, send: Callable[[int, int], str | None],
                stopped: Callable[[], str | None]) -> Sends:
    """Send ``count`` counted samples (plus re-takes) on the schedule ``first_due +
    k × interval_ns``. ``send(k, due)`` performs send k and returns an error text or None;
    ``stopped()`` returns why sending is pointless (the bus was given up, the listener
    failed), and the remaining sends are then recorded as "not attempted: ..."."""
    retakes = Retakes.for_schedule(count, late_bound_ms, retake_fraction)
    out = Sends()
    inside: deque[tuple[int, int]] = deque()  # (sent, returned) of recent sends
    k, total = 0, count
    while k < total:
        due = first_due + k * interval_ns
        why = stopped()
        late = False
        if why is not None:
            start = max(due, now_ns())
            err: str | None = f"not attempted: {why}"
        else:
            now = now_ns()
            if now <= due:
                start = sleep_until_ns(due)
            else:
                while inside and inside[0][1] <= due:
                    inside.popleft()  # ended before this send was due: not its wait
                held = sum(min(r, now) - max(s, due) for s, r in inside)
                start = now - held
            late = retakes.replace(start - due)
            out.sent.append(now_ns())
            err = send(k, due)
            inside.append((out.sent[-1], now_ns()))
        if why is not None:
            out.sent.append(start)
        out.intended.append(due)
        out.start.append(start)
        out.error.append(err)
        out.replaced.append(late)
        if late:
            total += 1
        k += 1
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
        """Wait until ``done()``, the deadline, or the thread's end; then stop it."""
        while not done() and now_ns() < until_ns and self._thread.is_alive():
            self._thread.join(LISTEN_POLL_S)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._timeout_s + 1)
