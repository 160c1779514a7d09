"""One engine series' samples as growing columns (engine_prober.py fills them; a re-take
appends more), turned into a `SampleBatch` once the series is in."""

from __future__ import annotations

import asyncio
from array import array

from dualbus_pipeline.probes.host import UNKNOWN
from dualbus_pipeline.probes.http import HttpConnection
from dualbus_pipeline.probes.model import SampleBatch, SampleKind


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
        self.all_done.clear()
        return len(self.intended) - 1

    def batch(self, target: str, kind: SampleKind) -> SampleBatch:
        return SampleBatch(target=target, kind=kind, intended_ns=array("q", self.intended),
                           start_ns=array("q", self.start), sent_ns=array("q", self.sent),
                           done_ns=array("q", self.done), ok=array("b", self.ok),
                           status=array("i", self.status), error=self.error,
                           stall_us=array("q", self.stall))
