"""Result types shared by every probe: raw samples, summaries, per-target results.

These are the contract between the instrument (probes) and everything downstream (warehouse,
SLO evaluation, reports). Samples are stored columnar (`SampleBatch`) because a run can hold
hundreds of thousands of them and the warehouse loads them through Arrow.

Times are integers in nanoseconds from `time.perf_counter_ns()` relative to the run's
`clock_origin_ns` (monotonic; wall time is `RunResult.started_at`). Latencies are milliseconds.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

SampleKind = Literal[
    "engine_http",      # one GET health_path
    "bus_ping",         # one PING round trip
    "bus_delivery",     # one XADD → XREADGROUP on another connection
    "pair_roundtrip",   # one probe-protocol round trip probe → A → B → probe
]

EngineStatus = Literal["operational", "degraded", "unhealthy", "unreachable"]
BusStatus = Literal["operational", "degraded", "unreachable"]
PairStatus = Literal["operational", "degraded", "failed"]


def _ints() -> array[int]:
    return array("q")


@dataclass
class SampleBatch:
    """Raw samples of one kind for one target, as parallel columns.

    ``latency_ms`` is measured from the *intended* send time (coordinated omission corrected);
    ``service_ms`` from the actual send time (uncorrected, kept for comparison).
    ``ok`` False means a failed sample; ``error`` says why ("timeout", "refused", "http 500",
    "status unhealthy", ...). ``status`` is the HTTP code (engines) or 0.

    The numeric columns are typed arrays (``array('q')`` for times, ``'b'`` for ok, ``'i'``
    for status), not lists: the warehouse hands their memory to Arrow without touching each
    value (1M samples: ~0.05 s per column saved), and they cross the probe process's pipe as
    bytes. Lists given to the constructor are converted.
    """

    target: str
    kind: SampleKind
    intended_ns: array[int] = field(default_factory=_ints)
    sent_ns: array[int] = field(default_factory=_ints)
    done_ns: array[int] = field(default_factory=_ints)
    ok: array[int] = field(default_factory=lambda: array("b"))
    status: array[int] = field(default_factory=lambda: array("i"))
    error: list[str | None] = field(default_factory=list)
    # When the probe's timer fired for each sample, if it differs from ``sent_ns``: a request
    # that waits for a free connection (the target is slow) is sent later than it was
    # dispatched, and that wait belongs to the target's latency, not to the probe's lateness.
    # Empty = the probe sends when it dispatches (lateness = sent − intended).
    dispatch_ns: array[int] = field(default_factory=_ints)

    def __post_init__(self) -> None:
        for name, code in _COLUMN_CODES.items():
            value = getattr(self, name)
            if not (isinstance(value, array) and value.typecode == code):
                setattr(self, name, array(code, value))
        if not isinstance(self.error, list):
            self.error = list(self.error)

    def add(self, intended_ns: int, sent_ns: int, done_ns: int, ok: bool, status: int = 0,
            error: str | None = None) -> None:
        self.intended_ns.append(intended_ns)
        self.sent_ns.append(sent_ns)
        self.done_ns.append(done_ns)
        self.ok.append(ok)
        self.status.append(status)
        self.error.append(error)

    def __len__(self) -> int:
        return len(self.ok)

    def latency_ms(self) -> list[float]:
        return [(d - i) / 1e6 for i, d in zip(self.intended_ns, self.done_ns, strict=True)]

    def service_ms(self) -> list[float]:
        return [(d - s) / 1e6 for s, d in zip(self.sent_ns, self.done_ns, strict=True)]


_COLUMN_CODES = {"intended_ns": "q", "sent_ns": "q", "done_ns": "q", "ok": "b", "status": "i",
                 "dispatch_ns": "q"}


@dataclass(frozen=True)
class Summary:
    """Distribution of one SampleBatch. Latency statistics use successful samples only.

    Validity: a summary is ``valid`` only when it has enough samples, the probe kept its
    schedule (lateness p99 small next to the latencies measured) and achieved a rate near the
    intended one. Invalid summaries are "no data" for SLOs, never a pass.
    """

    count: int
    ok: int
    success_ratio: float
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None
    min: float | None
    service_p50: float | None       # uncorrected (from actual send time)
    service_p99: float | None
    intended_rate_per_s: float | None
    achieved_rate_per_s: float | None
    lateness_p99_ms: float | None   # how late the probe sent vs its schedule
    valid: bool
    invalid_reason: str | None = None

    def latency_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99,
                "p999": self.p999, "max": self.max}


@dataclass(frozen=True)
class EngineResult:
    name: str
    title: str
    url: str
    status: EngineStatus
    status_reason: str
    summary: Summary
    samples: SampleBatch
    capacity_rps: float | None = None
    body_statuses: dict[str, int] = field(default_factory=dict)  # {"healthy": 97, ...}


@dataclass(frozen=True)
class StreamStat:
    """Passive health of one engine stream on a bus (XINFO STREAM / XINFO GROUPS)."""

    stream: str
    group: str
    engine: str
    exists: bool
    length: int | None = None
    lag: int | None = None
    pending: int | None = None
    consumers: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class BusResult:
    name: str
    title: str
    url: str                        # password masked
    status: BusStatus
    status_reason: str
    ping: Summary
    delivery: Summary
    throughput_msgs_per_s: float | None   # measured capacity: delivered msgs/s in the burst
    capacity_messages: int               # messages in that burst
    info: dict[str, float]               # INFO figures: ops_per_sec, clients, memory, cpu...
    streams: list[StreamStat]
    samples: list[SampleBatch]           # ping and delivery batches
    error: str | None = None


@dataclass(frozen=True)
class PairResult:
    from_: str
    to: str
    bus: str
    status: PairStatus
    status_reason: str
    summary: Summary
    samples: SampleBatch


@dataclass(frozen=True)
class RunResult:
    """Everything one probe run measured."""

    run_id: str
    platform: str
    started_at: str          # ISO 8601 UTC
    finished_at: str
    buses: list[BusResult]
    engines: list[EngineResult]
    pairs: list[PairResult]
    settings: dict[str, Any]  # the ProbeSettings actually used (for methodology)
