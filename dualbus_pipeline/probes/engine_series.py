"""One engine series' samples as growing columns (engine_prober.py fills them; a re-take
appends more), their bodies judged and turned into a `SampleBatch` once the series is in; and
the count of this thread's samples not yet finished (`unfinished`)."""

from __future__ import annotations

import asyncio
import threading
from array import array

from dualbus_pipeline.probes.health import HealthRule
from dualbus_pipeline.probes.host import UNKNOWN
from dualbus_pipeline.probes.http import HttpConnection
from dualbus_pipeline.probes.model import SampleBatch, SampleKind


class _Unfinished(threading.local):
    """Samples of this thread's series not yet finished (answered, failed or timed out)."""

    count = 0


_unfinished = _Unfinished()


def unfinished() -> int:
    """Samples of any series on this thread not yet finished: while there are none, the
    thread's event loop has nothing of the probe's to do (engine_prober.py, `quiet_conn`)."""
    return _unfinished.count


class Series:
    """The samples of one series as growing columns (a re-take appends one more)."""

    def __init__(self) -> None:
        self.intended: list[int] = []
        self.start: list[int] = []
        self.sent: list[int] = []
        self.done: list[int] = []
        self.ok: list[bool] = []
        self.status: list[int] = []
        self.error: list[str | None] = []
        self.body: list[str | None] = []  # the body's "status" field, when it had one
        self.answer: list[bytes | None] = []  # a body not yet judged (`EngineProber.answered`)
        self.psi0: list[int] = []   # host CPU pressure when the sample started
        self.stall: list[int] = []  # ... and its growth until the sample ended (µs)
        self.finished: list[bool] = []
        self.timers: list[asyncio.TimerHandle | None] = []
        self.conn_of: list[HttpConnection | None] = []
        self.left = 0
        self.all_done = asyncio.Event()

    def new(self, intended: int) -> int:
        for ints in (self.intended, self.start):
            ints.append(intended)
        for zeros in (self.sent, self.done, self.status):
            zeros.append(0)
        for flags in (self.ok, self.finished):
            flags.append(False)
        self.error.append(None)
        self.body.append(None)
        self.answer.append(None)
        self.psi0.append(UNKNOWN)
        self.stall.append(UNKNOWN)
        self.timers.append(None)
        self.conn_of.append(None)
        self.left += 1
        _unfinished.count += 1
        self.all_done.clear()
        return len(self.intended) - 1

    def settle(self) -> None:
        """One sample finished."""
        self.left -= 1
        _unfinished.count -= 1
        if self.left == 0:
            self.all_done.set()

    def judge(self, i: int, body: bytes, rule: HealthRule) -> None:
        """Sample i's outcome: what the health check says of its (finished) answer."""
        self.ok[i], self.error[i], self.body[i] = rule.judge(
            self.status[i], body, (self.done[i] - self.start[i]) / 1e6)

    def judge_answers(self, rule: HealthRule) -> None:
        """Judge the answers kept for later (engine_prober.py, `answered`)."""
        for i, body in enumerate(self.answer):
            if body is not None:
                self.judge(i, body, rule)
                self.answer[i] = None

    def batch(self, target: str, kind: SampleKind) -> SampleBatch:
        return SampleBatch(target=target, kind=kind, intended_ns=array("q", self.intended),
                           start_ns=array("q", self.start), sent_ns=array("q", self.sent),
                           done_ns=array("q", self.done), ok=array("b", self.ok),
                           status=array("i", self.status), error=self.error,
                           stall_us=array("q", self.stall))
