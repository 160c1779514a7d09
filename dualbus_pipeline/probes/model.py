"""Result types shared by every probe: raw samples, summaries, per-target results.

These are the contract between the instrument (probes) and everything downstream (warehouse,
SLO evaluation, reports). Samples are stored columnar (`SampleBatch`) because a run can hold
hundreds of thousands of them and the warehouse loads them through Arrow.

Times are integers in nanoseconds from `time.perf_counter_ns()` (monotonic; wall time is
`RunResult.started_at`). Latencies are milliseconds.

What a sample's latency is charged from (product.md §4.4: time charged to a target is time the
target made us wait): ``start_ns``, the moment the probe was ready to send. That is the time
its timer woke, or for an engine request on a connection readied for it the moment just
before the write (its own lateness, ``start − intended``, is not the target's), except when the
target itself held the send back — a blocking XADD that had not returned, a request waiting for
a free connection to a slow engine — and then it is the intended send time, so the wait counts
(coordinated omission corrected). Samples the probe host delayed by more than
``probe.late_bound_ms`` are re-taken: kept with ``replaced`` set, left out of every figure.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

SampleKind = Literal[
    "engine_http",      # one paced GET health_path
    "engine_hot",       # one back-to-back GET on a warm connection (the hot path, like wrk -c1)
    "bus_ping",         # one PING round trip
    "bus_delivery",     # one XADD → XREADGROUP on another connection
    "pair_roundtrip",   # one probe-protocol round trip probe → A → B → probe
    "pair_hot",         # the same, back to back (the hot path)
]

# A target is "operational" at or above this success ratio, in every probe (else degraded or
# worse, each probe says how).
OPERATIONAL_SUCCESS = 0.99

EngineStatus = Literal["operational", "degraded", "starting", "unhealthy", "unreachable"]
BusStatus = Literal["operational", "degraded", "unreachable"]
PairStatus = Literal["operational", "degraded", "failed"]


def _ints() -> array[int]:
    return array("q")


@dataclass
class SampleBatch:
    """Raw samples of one kind for one target, as parallel columns.

    ``latency_ms`` runs from ``start_ns`` (see the module docstring); ``service_ms`` from the
    actual send time (kept for comparison). ``ok`` False means a failed sample; ``error`` says
    why ("timeout", "refused", "http 500", "status unhealthy", ...). ``status`` is the HTTP
    code (engines) or 0. ``replaced`` 1 marks a sample the probe host delayed, re-taken and
    left out of the figures.

    The numeric columns are typed arrays (``array('q')`` for times, ``'b'`` for flags,
    ``'i'`` for status), not lists: the warehouse hands their memory to Arrow without touching
    each value, and they cross the probe process's pipe as bytes. Lists given to the
    constructor are converted; ``start_ns`` and ``replaced`` may be left empty (start = intended,
    nothing replaced).
    """

    target: str
    kind: SampleKind
    intended_ns: array[int] = field(default_factory=_ints)
    sent_ns: array[int] = field(default_factory=_ints)
    done_ns: array[int] = field(default_factory=_ints)
    ok: array[int] = field(default_factory=lambda: array("b"))
    status: array[int] = field(default_factory=lambda: array("i"))
    error: list[str | None] = field(default_factory=list)
    start_ns: array[int] = field(default_factory=_ints)
    replaced: array[int] = field(default_factory=lambda: array("b"))
    # µs the probe host's runnable tasks waited for a CPU while the sample was in flight
    # (probes/host.py); -1 where not measured
    stall_us: array[int] = field(default_factory=_ints)

    def __post_init__(self) -> None:
        for name, code in _COLUMN_CODES.items():
            value = getattr(self, name)
            if not (isinstance(value, array) and value.typecode == code):
                setattr(self, name, array(code, value))
        if not isinstance(self.error, list):
            self.error = list(self.error)
        n = len(self.ok)
        if len(self.start_ns) != n:
            self.start_ns = array("q", self.intended_ns)
        if len(self.replaced) != n:
            self.replaced = array("b", bytes(n))
        if len(self.stall_us) != n:
            self.stall_us = array("q", [-1]) * n

    def add(self, intended_ns: int, sent_ns: int, done_ns: int, ok: bool, status: int = 0,
            error: str | None = None, *, start_ns: int | None = None,
            replaced: bool = False, stall_us: int = -1) -> None:
        self.intended_ns.append(intended_ns)
        self.start_ns.append(intended_ns if start_ns is None else start_ns)
        self.sent_ns.append(sent_ns)
        self.done_ns.append(done_ns)
        self.ok.append(ok)
        self.status.append(status)
        self.error.append(error)
        self.replaced.append(replaced)
        self.stall_us.append(stall_us)

    def __len__(self) -> int:
        return len(self.ok)

    def extend(self, more: SampleBatch) -> None:
        """Append another batch's samples (a second pass of the same series)."""
        for name in _COLUMN_CODES:
            getattr(self, name).extend(getattr(more, name))
        self.error.extend(more.error)

    def latency_ms(self) -> list[float]:
        """Per sample: done − start (what the target made us wait), in ms."""
        return [(d - s) / 1e6 for s, d in zip(self.start_ns, self.done_ns, strict=True)]

    def service_ms(self) -> list[float]:
        return [(d - s) / 1e6 for s, d in zip(self.sent_ns, self.done_ns, strict=True)]

    def lateness_ms(self) -> list[float]:
        """Per sample: how late the probe itself was ready (start − intended), in ms."""
        return [(s - i) / 1e6 for i, s in zip(self.intended_ns, self.start_ns, strict=True)]


_COLUMN_CODES = {"intended_ns": "q", "sent_ns": "q", "done_ns": "q", "ok": "b", "status": "i",
                 "start_ns": "q", "replaced": "b", "stall_us": "q"}


@dataclass(frozen=True)
class Summary:
    """Distribution of one SampleBatch's counted (not replaced) samples. Latency statistics
    use successful samples only.

    Validity: a summary is ``valid`` when it has enough samples and is not ``inconclusive``.
    Too few samples is "no data" for SLOs; ``inconclusive`` (the probe host stayed overloaded,
    or running targets concurrently slowed this one and it could not be re-measured) is its own
    outcome, neither pass nor breach (stats.py, engine.py).
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
    lateness_p99_ms: float | None   # how late the probe itself was ready vs its schedule
    valid: bool
    invalid_reason: str | None = None
    replaced: int = 0               # samples the probe host delayed, re-taken, left out
    inconclusive: bool = False
    solo_p50: float | None = None   # p50 of the window where the target was probed alone
    note: str | None = None         # e.g. "re-measured alone: ..."


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
    hot: Summary | None = None              # back-to-back series (the hot path)
    hot_samples: SampleBatch | None = None


@dataclass(frozen=True)
class StreamStat:
    """Consumer health of one stream and group on a bus (probes/streams.py)."""

    stream: str
    group: str
    engine: str
    exists: bool
    length: int | None = None
    lag: int | None = None
    pending: int | None = None
    consumers: int | None = None
    error: str | None = None
    # consumer health (probes/streams.py): lag in time, oldest unacknowledged entry's age,
    # since the freshest consumer last read; status OK | WARN | STALL | STOP | MISSING
    lag_ms: float | None = None
    pending_age_ms: float | None = None
    idle_ms: float | None = None
    consumed: float | None = None
    status: str | None = None
    status_reason: str | None = None


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
    hot: Summary | None = None              # back-to-back round trips (the hot path)
    hot_samples: SampleBatch | None = None


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
