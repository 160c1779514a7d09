"""The tunable sections of ``dualbus.yaml``: probe settings and safety caps, reference-stack
faults, alert sinks and alerting, baselines and scoring (frozen pydantic models).

The platform itself (buses, engines, pairs) and loading live in config.py, which re-exports
everything here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dualbus_pipeline.health_conditions import parse_condition

NAME_RE = r"^[a-z0-9_]+$"
Name = Annotated[str, Field(pattern=NAME_RE, min_length=1, max_length=64)]
Severity = Literal["warning", "error"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EngineCapacity(_Model):
    enabled: bool = False
    connections: int = Field(4, ge=1, le=64)
    duration_s: float = Field(1.0, gt=0, le=30)


class ProbeSettings(_Model):
    """Counts, rates, timeouts and safety caps. Defaults are gentle enough that probing does
    not change what it measures (docs/probes.md, "Measuring without disturbing")."""

    # engines (§4.2)
    engine_requests: int = Field(100, ge=1, le=100_000)
    engine_rate_per_s: float = Field(100.0, gt=0)
    engine_timeout_s: float = Field(1.0, gt=0, le=60)
    # engines in flight at once: as many as engine_max_send_rate_per_s allows at
    # engine_rate_per_s each, at most engine_concurrency (probes/engine.py engine_slots)
    engine_concurrency: int = Field(64, ge=1, le=1024)
    engine_max_send_rate_per_s: float = Field(100.0, gt=0, le=100_000)
    engine_capacity: EngineCapacity = EngineCapacity()
    # the concurrency guard: each engine's window probed alone (0 = no guard)
    engine_solo_requests: int = Field(10, ge=0, le=10_000)
    # back-to-back requests on one warm connection: the hot path (0 = none)
    engine_hot_requests: int = Field(50, ge=0, le=100_000)
    # buses (§4.1)
    bus_ping_count: int = Field(200, ge=1, le=100_000)
    # consumer health of the engines' streams (docs/probes.md, "Stream-consumer health"):
    # WARN when the oldest undelivered entry is older than stream_lag_warn_ms or the oldest
    # unacknowledged one older than stream_pending_warn_ms; STALL when entries wait, the
    # group did not move while watched and no consumer read for stream_stall_s; STOP when no
    # consumer read for stream_stop_s with entries waiting (or the group has no consumer)
    stream_lag_warn_ms: float = Field(1000.0, gt=0, le=86_400_000)
    stream_pending_warn_ms: float = Field(60_000.0, gt=0, le=86_400_000)
    stream_stall_s: float = Field(5.0, gt=0, le=86_400)
    stream_stop_s: float = Field(60.0, gt=0, le=86_400)
    bus_delivery_count: int = Field(500, ge=1, le=100_000)
    bus_delivery_rate_per_s: float = Field(1000.0, gt=0)
    bus_capacity_messages: int = Field(20_000, ge=0, le=1_000_000)
    bus_timeout_s: float = Field(1.0, gt=0, le=60)
    # pairs (§4.3)
    pair_count: int = Field(50, ge=1, le=100_000)
    pair_rate_per_s: float = Field(50.0, gt=0)
    pair_timeout_s: float = Field(1.0, gt=0, le=60)
    # pairs measured at once (in waves of pairs sharing no engine); their window alone
    pair_concurrency: int = Field(1, ge=1, le=64)
    pair_solo_count: int = Field(10, ge=0, le=10_000)
    # round trips back to back, one in flight: the hot path (0 = none)
    pair_hot_count: int = Field(50, ge=0, le=100_000)
    # measuring without disturbing (§4.4): sends the probe host delayed past late_bound_ms
    # are re-taken, at most retake_fraction of a schedule; a target whose p50 with others in
    # flight exceeds guard_ratio × (and guard_min_ms over) its p50 alone is re-measured
    # alone while remeasure_budget_s lasts
    late_bound_ms: float = Field(1.0, gt=0, le=10_000)
    retake_fraction: float = Field(0.25, ge=0, le=1)
    guard_ratio: float = Field(1.5, gt=1, le=100)
    guard_min_ms: float = Field(0.2, ge=0, le=10_000)
    remeasure_budget_s: float = Field(30.0, ge=0, le=3600)
    # safety caps: no paced rate may exceed max_rate_per_s; probe keys expire after key_ttl_s
    max_rate_per_s: float = Field(5000.0, gt=0, le=100_000)
    max_burst_messages: int = Field(200_000, ge=0, le=10_000_000)
    key_ttl_s: int = Field(600, ge=10, le=86_400)
    stream_maxlen: int = Field(250_000, ge=1000, le=10_000_000)
    # summaries with fewer samples than this are flagged invalid ("no data" for SLOs)
    min_samples: int = Field(20, ge=1, le=100_000)
    # at most this many connections per engine while requests are in flight (open loop)
    engine_max_connections: int = Field(32, ge=1, le=1024)
    # sharded probing (docs/deploy.md): the targets split into this many shards, each its
    # own Dagster step (1: one probe step per phase, as ever); a shard not done within
    # shard_timeout_s is stopped and its targets read "no data: shard failed (timed out)"
    shards: int = Field(1, ge=1, le=256)
    shard_timeout_s: float = Field(900.0, gt=0, le=86_400)
    # where shards leave their Parquet files for the loading step: a local folder (default
    # <warehouse folder>/handoff) or an fsspec URL such as s3://bucket/dualbus (credentials
    # from the environment only)
    handoff: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _caps(self) -> ProbeSettings:
        for name in ("engine_rate_per_s", "bus_delivery_rate_per_s", "pair_rate_per_s"):
            if getattr(self, name) > self.max_rate_per_s:
                raise ValueError(
                    f"{name}={getattr(self, name)} exceeds the safety cap "
                    f"max_rate_per_s={self.max_rate_per_s}; raise the cap deliberately"
                )
        if self.bus_capacity_messages > self.max_burst_messages:
            raise ValueError(
                f"bus_capacity_messages={self.bus_capacity_messages} exceeds the safety cap "
                f"max_burst_messages={self.max_burst_messages}"
            )
        return self


class HealthCheck(_Model):
    """What an engine's health response means (probes/health.py, docs/probes.md): which HTTP
    codes count, which body status words mean healthy, starting, degraded or unhealthy,
    Gatus-style conditions and a response-time bound. `health:` at the top level is every
    engine's default; an engine's own `health:` overrides the keys it sets."""

    ok_codes: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(None, min_length=1)
    status_field: str = Field("status", min_length=1)
    # None: any word not listed below is healthy; a list: only these words are
    healthy: list[str] | None = Field(None, min_length=1)
    starting: list[str] = ["initializing", "initialising", "starting", "warming_up"]
    degraded: list[str] = ["degraded", "warning", "warn"]
    unhealthy: list[str] = ["unhealthy", "down", "error", "failed", "fail", "critical",
                            "unavailable"]
    conditions: list[str] = []
    max_response_ms: float | None = Field(None, gt=0, le=60_000)

    @field_validator("healthy", "starting", "degraded", "unhealthy")
    @classmethod
    def _lower(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [w.strip().lower() for w in v]

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        for c in v:
            try:
                parse_condition(c)
            except ValueError as exc:
                raise ValueError(f"condition {c!r}: {exc}") from None
        return v

    @field_validator("status_field")
    @classmethod
    def _field(cls, v: str) -> str:
        if not re.fullmatch(r"\$?(?:\.?[A-Za-z0-9_\-]+|\[\d+\])+", v.strip()):
            raise ValueError("must be a key or path into the JSON body, like status, "
                             "health.state or $.checks[0].status")
        return v.strip()

    @model_validator(mode="after")
    def _disjoint(self) -> HealthCheck:
        sets = {"healthy": set(self.healthy or ()), "starting": set(self.starting),
                "degraded": set(self.degraded), "unhealthy": set(self.unhealthy)}
        names = list(sets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = sets[a] & sets[b]
                if both:
                    raise ValueError(f"{', '.join(sorted(both))} cannot be both {a} and {b}")
        return self


class Fault(_Model):
    """A fault injected into one reference-stack engine (§9)."""

    down: bool = False
    unhealthy: bool = False
    delay_ms: float = Field(0.0, ge=0, le=60_000)
    error_ratio: float = Field(0.0, ge=0, le=1)
    probe_protocol: bool = True
    # false: the engine answers /health as usual but reads nothing from its bus (its group
    # exists, with no consumer): the "healthy on HTTP, consumes nothing" engine
    consume: bool = True
    # Replies signed with this name instead of the engine's own (a misconfigured engine).
    reply_as: Name | None = None


class StackSettings(_Model):
    faults: dict[Name, Fault] = {}
    state_dir: str | None = None
    # Engines per host process; 1 (default) makes every engine killable on its own.
    engines_per_host: int = Field(1, ge=1, le=500)


class AlertSink(_Model):
    url: str = Field(min_length=3)
    min_severity: Severity = "warning"
    slos: list[str] | None = None
    targets: list[str] | None = None

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, v: str) -> str:
        if "://" not in v:
            raise ValueError("must be an Apprise URL like json://host:port/path or slack://...")
        return v


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")


def parse_duration_s(text: str) -> float:
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise ValueError("must be a duration like 30s, 15m, 4h or 7d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Alerting(_Model):
    remind_every: str = "4h"
    for_runs: int = Field(1, ge=1, le=100)
    # passing runs in a row before a firing alert resolves (1: the first passing run)
    keep_firing_for: int = Field(1, ge=1, le=100)
    # run: one message per run and sink listing what fired, reminded and resolved;
    # alert: one message per alert change (docs/alerts.md)
    group_by: Literal["run", "alert"] = "run"
    # an inconclusive verdict alerts only after this many consecutive inconclusive runs
    inconclusive_runs: int = Field(3, ge=1, le=100)
    outbox_expiry: str = "24h"
    deadman: bool = True
    # a dead-man switch outside dualbus (healthchecks.io-style): every completed run calls it
    heartbeat_url: str | None = None
    heartbeat_method: Literal["GET", "POST"] = "GET"

    @field_validator("remind_every", "outbox_expiry")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration_s(v)
        return v

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://hc-ping.com/<uuid>")
        return v.strip()


class Baseline(_Model):
    runs: int = Field(5, ge=1, le=1000)
    # a trend point regresses when it moved this many percent the wrong way from its
    # baseline; the report's "steady" band is the same number (docs/slos.md, trends)
    regression_pct: float = Field(20.0, gt=0, le=1000)


class Scoring(_Model):
    """Overall result thresholds on the weighted score (0-100, Keptn-style; docs/slos.md)."""

    pass_score: float = Field(90.0, ge=0, le=100)
    warning_score: float = Field(75.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> Scoring:
        if self.warning_score > self.pass_score:
            raise ValueError(f"warning_score={self.warning_score} must not exceed "
                             f"pass_score={self.pass_score}")
        return self
