"""The indicator catalogue: every number an SLO may name, as data.

An indicator says what it measures (scope, unit, which way is better), which aggregates make
sense for it, and where the warehouse keeps it. The store builds its SQL from these entries
only (an allow-list): nothing a user writes in YAML is ever formatted into SQL. A leaf module
beside the config: the store (which queries it) and the SLO language (which names it) both
read it, and neither imports the other's way round (docs/architecture.md).

Kinds (how the value is computed, see store/slo_queries.py):

* ``samples``  latency distribution over raw, successful, counted samples (nearest-rank
  percentiles, the same definition as the report: probes/stats.py)
* ``ratio``    successful samples / all samples
* ``status``   1.0 when the target's status is ``operational`` in a run, else 0.0
* ``availability``  operational runs / runs (per engine) or operational engines / engines
  (system); over a window the counts are pooled
* ``value``    one measured figure per target per run (throughput, consumer lag, pending)
* ``sum``      the sum of one figure over every bus in a run (combined throughput)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["engine", "bus", "pair", "system"]
Direction = Literal["lower", "higher"]
Kind = Literal["samples", "ratio", "status", "availability", "value", "sum"]

PERCENTILES: dict[str, float] = {
    "p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
DISTRIBUTION_AGGREGATES = ("mean", "p50", "p90", "p95", "p99", "p999", "max", "min")
ALL_AGGREGATES = (*DISTRIBUTION_AGGREGATES, "ratio", "rate", "value")

# Fewer successful samples than this and a percentile is not an honest number: p99 of 12
# samples is just the maximum. Such a result is "no data", never a pass.
MIN_SAMPLES: dict[str, int] = {
    "mean": 1, "min": 1, "max": 1, "p50": 1, "p90": 10, "p95": 20, "p99": 50, "p999": 500,
    "ratio": 1, "rate": 1, "value": 1}

# Aggregates over per-run values (value/status kinds): one value per run, so with no window
# they all equal that run's value.
PER_RUN_AGGREGATES = ("value", "mean", "min", "max", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class Indicator:
    name: str
    scope: Scope
    kind: Kind
    unit: str
    direction: Direction
    aggregates: tuple[str, ...]
    description: str
    asset: str                   # the Dagster asset whose data the indicator reads
    table: str                   # warehouse table
    sample_kind: str | None = None   # samples.kind for samples/ratio kinds
    metric: str | None = None        # summaries.metric guarding validity
    column: str | None = None        # value column for value/sum kinds

    @property
    def budgeted(self) -> bool:
        """Ratios and availability have an error budget when evaluated over a window."""
        return self.kind in ("ratio", "availability")


def _i(*args: object, **kwargs: object) -> Indicator:
    return Indicator(*args, **kwargs)  # type: ignore[arg-type]


CATALOGUE: dict[str, Indicator] = {i.name: i for i in (
    _i("engine.latency_ms", "engine", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "paced GET health_path latency, from the moment the probe was ready to send "
       "(successful requests only)",
       "engine_measurements", "engine_samples", sample_kind="engine_http", metric="latency"),
    _i("engine.hot_latency_ms", "engine", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "GET health_path back to back on one warm connection, like wrk -t1 -c1: the engine's "
       "service time without the idle wake-ups a paced request pays",
       "engine_measurements", "engine_samples", sample_kind="engine_hot", metric="hot"),
    _i("engine.success_ratio", "engine", "ratio", "ratio", "higher", ("ratio",),
       "successful health requests / all health requests", "engine_measurements",
       "engine_samples", sample_kind="engine_http", metric="latency"),
    _i("engine.status", "engine", "status", "1=operational", "higher", PER_RUN_AGGREGATES,
       "1 when the engine was classified operational in the run, else 0",
       "engine_measurements", "targets"),
    _i("engine.availability", "engine", "availability", "ratio", "higher", ("ratio",),
       "runs in which the engine was operational / runs (1 or 0 for a single run)",
       "engine_measurements", "targets"),
    _i("engine.consumer_lag", "engine", "value", "entries", "lower", PER_RUN_AGGREGATES,
       "entries not yet delivered to the engine's consumer group (XINFO GROUPS lag)",
       "bus_measurements", "stream_stats", column="lag"),
    _i("engine.pending", "engine", "value", "entries", "lower", PER_RUN_AGGREGATES,
       "entries delivered to the engine's group but not acknowledged (XPENDING count)",
       "bus_measurements", "stream_stats", column="pending"),
    _i("stream.lag_ms", "engine", "value", "ms", "lower", PER_RUN_AGGREGATES,
       "lag in time: age of the oldest entry not yet delivered to the group, the worst of the "
       "streams the engine consumes (0 when nothing waits)",
       "bus_measurements", "stream_stats", column="lag_ms"),
    _i("stream.pending_age_ms", "engine", "value", "ms", "lower", PER_RUN_AGGREGATES,
       "age of the oldest entry delivered but not acknowledged, the worst of the engine's "
       "streams (0 when nothing is pending)",
       "bus_measurements", "stream_stats", column="pending_age_ms"),
    _i("stream.consumed", "engine", "value", "1=consumed", "higher", PER_RUN_AGGREGATES,
       "1 when every stream the engine consumes has a live consumer group (status OK or "
       "WARN), 0 when one is STALL, STOP or MISSING",
       "bus_measurements", "stream_stats", column="consumed"),
    _i("bus.ping_ms", "bus", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "PING round trip", "bus_measurements", "bus_samples", sample_kind="bus_ping",
       metric="ping"),
    _i("bus.delivery_latency_ms", "bus", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "XADD on one connection → XREADGROUP on another, from the moment the probe was "
       "ready to send",
       "bus_measurements", "bus_samples", sample_kind="bus_delivery", metric="delivery"),
    _i("bus.throughput_msgs_per_s", "bus", "value", "msgs/s", "higher",
       (*PER_RUN_AGGREGATES, "rate"),
       "messages delivered per second through a consumer group during the capacity burst",
       "bus_measurements", "targets", column="throughput"),
    _i("bus.success_ratio", "bus", "ratio", "ratio", "higher", ("ratio",),
       "probe messages delivered / probe messages sent", "bus_measurements", "bus_samples",
       sample_kind="bus_delivery", metric="delivery"),
    _i("bus.consumer_lag", "bus", "value", "entries", "lower", PER_RUN_AGGREGATES,
       "the largest consumer-group lag over the engine streams on the bus",
       "bus_measurements", "stream_stats", column="lag"),
    _i("bus.pending", "bus", "value", "entries", "lower", PER_RUN_AGGREGATES,
       "the largest pending (unacknowledged) count over the engine streams on the bus",
       "bus_measurements", "stream_stats", column="pending"),
    _i("pair.roundtrip_ms", "pair", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "probe → engine A's stream → engine B's stream → probe (dualbus probe protocol)",
       "pair_measurements", "pair_samples", sample_kind="pair_roundtrip", metric="roundtrip"),
    _i("pair.hot_roundtrip_ms", "pair", "samples", "ms", "lower", DISTRIBUTION_AGGREGATES,
       "the same round trip back to back, one in flight: the platform's own cost of a "
       "cross-engine hop without the idle wake-ups a paced round trip pays",
       "pair_measurements", "pair_samples", sample_kind="pair_hot", metric="hot"),
    _i("pair.success_ratio", "pair", "ratio", "ratio", "higher", ("ratio",),
       "round trips answered within the timeout / round trips sent", "pair_measurements",
       "pair_samples", sample_kind="pair_roundtrip", metric="roundtrip"),
    _i("system.availability", "system", "availability", "ratio", "higher", ("ratio",),
       "operational engines / engines in the run (pooled over the runs of a window)",
       "engine_measurements", "targets"),
    _i("system.combined_throughput_msgs_per_s", "system", "sum", "msgs/s", "higher",
       (*PER_RUN_AGGREGATES, "rate"),
       "the sum of every bus's measured throughput in the run", "bus_measurements",
       "targets", column="throughput"),
)}

SYSTEM_TARGET = "system"
