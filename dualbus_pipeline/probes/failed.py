"""Results for targets a probe never measured because their shard failed or timed out.

A shard's probe process that dies, is killed or overruns its time leaves its targets with no
samples; they are reported, never left out: each target gets an empty result whose summary is
invalid with the reason ``shard failed (<why>)``, so every SLO on it reads
"no data: shard failed (<why>)" (slospec/evaluate.py) and the report lists it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dualbus_pipeline.config import Topology
from dualbus_pipeline.probes.model import BusResult, EngineResult, PairResult, SampleBatch
from dualbus_pipeline.probes.stats import summarize


def shard_failed_reason(why: str) -> str:
    return f"shard failed ({why.strip().splitlines()[0] if why.strip() else 'unknown'})"


def failed_results(topology: Topology, phase: str, why: str) -> list[Any]:
    """One empty, invalid result per target of ``phase`` in ``topology`` (a shard's part)."""
    reason = shard_failed_reason(why)
    settings = topology.probe

    def empty(target: str, kind: Any) -> tuple[SampleBatch, Any]:
        batch = SampleBatch(target=target, kind=kind)
        summary = dataclasses.replace(summarize(batch, None, settings.min_samples),
                                      valid=False, invalid_reason=reason)
        return batch, summary

    if phase == "buses":
        out: list[Any] = []
        for b in topology.buses:
            ping, s = empty(b.name, "bus_ping")
            delivery, _ = empty(b.name, "bus_delivery")
            out.append(BusResult(name=b.name, title=b.display, url=b.safe_url,
                                 status="unreachable", status_reason=reason, ping=s,
                                 delivery=s, throughput_msgs_per_s=None,
                                 capacity_messages=settings.bus_capacity_messages, info={},
                                 streams=[], samples=[ping, delivery], error=reason))
        return out
    # the hot path too: every figure of the target reads the same reason
    if phase == "engines":
        return [EngineResult(name=e.name, title=e.display, url=e.health_url,
                             status="unreachable", status_reason=reason,
                             summary=s, samples=batch, hot=s,
                             hot_samples=empty(e.name, "engine_hot")[0])
                for e in topology.engines
                for batch, s in [empty(e.name, "engine_http")]]
    return [PairResult(from_=p.from_, to=p.to, bus=topology.engine(p.from_).bus,
                       status="failed", status_reason=reason, summary=s, samples=batch,
                       hot=s, hot_samples=empty(p.key, "pair_hot")[0])
            for p in topology.pairs
            for batch, s in [empty(p.key, "pair_roundtrip")]]
