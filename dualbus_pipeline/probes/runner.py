"""Run orchestration: every probe of a run, with concurrency chosen so probes do not distort
each other.

* Buses: one at a time. A bus probe saturates a bus on purpose (capacity burst) and its
  timing threads want a CPU each; two at once would measure each other.
* Engines: as many at a time as the total send-rate budget allows
  (``engine_max_send_rate_per_s`` / ``engine_rate_per_s``, at most ``engine_concurrency``;
  default 100/s ÷ 100/s: one at a time), all on ONE probe thread and event loop; with a raised
  budget each in-flight engine is on its own phase of a common send grid, with windows alone
  and the concurrency guard (engine.py). The budget bounds the load the probe puts on the platform.
* Pairs: one at a time by default (``pair_concurrency`` 1): a round trip wakes three
  processes in turn, and three pairs at once on a 2-core host with one core taken by someone
  else read p90 3.2–9.7 ms where one at a time reads ~1.6 ms (docs/decisions.md). Raised, pairs
  go in waves of up to that many that share no engine (two pairs sharing an engine would queue
  behind each other in that engine's consumer), the pairs of a wave on distinct phases of the
  send period, with windows alone and the same guard as engines (`probe_pairs`). Then each
  pair's hot path (back-to-back round trips, pair.py), one pair at a time.
* Engines run after buses and before pairs, never alongside the capacity burst.

A dead target costs about its timeout (see each probe); no probe raises for a failed
measurement, and an unexpected exception in one probe becomes a failed result for that target
only (``ProbeError`` is raised only if the topology is unusable).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

from dualbus_pipeline.config import Bus, Engine, Pair, ProbeSettings, Topology
from dualbus_pipeline.probes.bus import probe_bus
from dualbus_pipeline.probes.engine import probe_engine, probe_engines_staggered
from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
    RunResult,
    SampleBatch,
)
from dualbus_pipeline.probes.pair import probe_pair
from dualbus_pipeline.probes.pair_hot import probe_pair_hot
from dualbus_pipeline.probes.stats import slowed, summarize
from dualbus_pipeline.probes.streams import watched_on
from dualbus_pipeline.probes.timing import now_ns

WAVE_LEAD_NS = 50_000_000  # a wave's first sends are due this long after it is planned


async def probe_buses(topology: Topology, run_id: str) -> list[BusResult]:
    out: list[BusResult] = []
    for bus in topology.buses:
        watched = watched_on(topology.engines, bus.name)
        try:
            out.append(await probe_bus(bus, watched, topology.probe, run_id))
        except Exception as exc:  # one broken probe must not cost the run
            out.append(_bus_crashed(bus, topology.probe, exc))
    return out


async def probe_engines(topology: Topology) -> list[EngineResult]:
    settings = topology.probe
    try:
        return await probe_engines_staggered(list(topology.engines), settings)
    except Exception:
        out = []
        for engine in topology.engines:
            try:
                out.append(await probe_engine(engine, settings))
            except Exception as exc:  # one broken probe must not cost the run
                out.append(_engine_crashed(engine, settings, exc))
        return out


def pair_waves(order: list[int], pairs: list[Pair], limit: int) -> list[list[int]]:
    """Group pairs (indices into ``pairs``) into waves that run together: no engine in two
    pairs of one wave (its consumer would queue one pair's messages behind the other's), at
    most ``limit`` per wave. Greedy in declaration order; every pair lands in one wave."""
    waves: list[tuple[list[int], set[str]]] = []
    for i in order:
        ends = {pairs[i].from_, pairs[i].to}
        for members, engines in waves:
            if len(members) < limit and not ends & engines:
                members.append(i)
                engines.update(ends)
                break
        else:
            waves.append(([i], set(ends)))
    return [members for members, _ in waves]


async def probe_pairs(topology: Topology, run_id: str) -> list[PairResult]:
    """Every pair: in waves (`pair_waves`), the pairs of a wave on distinct phases of the send
    period; when pairs share a wave, each is first measured alone for ``pair_solo_count``
    round trips and the concurrency guard applies as for engines (engine.py)."""
    settings = topology.probe
    pairs = list(topology.pairs)
    waves = pair_waves(list(range(len(pairs))), pairs, settings.pair_concurrency)
    interval = int(1e9 / settings.pair_rate_per_s)

    async def one(pair: Pair, **kw: Any) -> PairResult:
        try:
            return await probe_pair(pair, topology, settings, run_id, **kw)
        except Exception as exc:  # one broken probe must not cost the run
            return _pair_crashed(pair, topology, exc)

    solo: dict[int, float | None] = {}
    if settings.pair_solo_count and any(len(w) > 1 for w in waves):
        for i, pair in enumerate(pairs):
            alone = await one(pair, count=settings.pair_solo_count, series="alone")
            solo[i] = alone.summary.p50
    done: dict[int, PairResult] = {}
    for wave in waves:
        # one grid for the wave, from a common origin: each thread's own "now" would differ
        # by its start-up delay and could put two pairs' sends on the same instant
        origin = now_ns() + WAVE_LEAD_NS
        results = await asyncio.gather(*(
            one(pairs[i], start_at_ns=origin + k * interval // len(wave) if len(wave) > 1
                else None) for k, i in enumerate(wave)))
        done.update(zip(wave, results, strict=True))
    budget_end = now_ns() + int(settings.remeasure_budget_s * 1e9)
    needs = int((settings.pair_count + 1) / settings.pair_rate_per_s * 1e9)
    for i, pair in enumerate(pairs):
        r, alone_p50 = done[i], solo.get(i)
        s = r.summary if alone_p50 is None else dataclasses.replace(r.summary,
                                                                    solo_p50=alone_p50)
        if alone_p50 is not None and s.p50 is not None and slowed(
                s, alone_p50, settings.guard_ratio, settings.guard_min_ms):
            why = (f"p50 {s.p50:.3f} ms with other pairs in flight was "
                   f"{s.p50 / alone_p50:.1f}× its p50 alone ({alone_p50:.3f} ms)")
            if now_ns() + needs <= budget_end:
                r = await one(pair, series="again")
                s = dataclasses.replace(r.summary, solo_p50=alone_p50,
                                        note=f"re-measured alone: {why}")
            else:
                s = dataclasses.replace(
                    s, valid=False, inconclusive=True,
                    invalid_reason=f"inconclusive: {why}, and the re-measure budget "
                    f"(probe.remeasure_budget_s {settings.remeasure_budget_s:g}) was spent")
        done[i] = dataclasses.replace(r, summary=s)
    if settings.pair_hot_count:  # the hot path, one pair at a time, where replies came back
        for i, pair in enumerate(pairs):
            if done[i].summary.ok:
                done[i] = await _with_hot(done[i], pair, topology, run_id)
    return [done[i] for i in range(len(pairs))]


async def _with_hot(r: PairResult, pair: Pair, topology: Topology, run_id: str) -> PairResult:
    settings = topology.probe
    try:
        batch = await probe_pair_hot(pair, topology, settings, run_id, settings.pair_hot_count)
    except Exception as exc:  # the paced figures stand; the hot path reads "no data"
        batch = SampleBatch(target=pair.key, kind="pair_hot")
        t = now_ns()
        batch.add(t, t, t, False, 0, _why(exc))
    return dataclasses.replace(r, hot=summarize(batch, None, settings.min_samples),
                               hot_samples=batch)


def run_buses(topology: Topology, run_id: str) -> list[BusResult]:
    return asyncio.run(probe_buses(topology, run_id))


def run_engines(topology: Topology) -> list[EngineResult]:
    return asyncio.run(probe_engines(topology))


def run_pairs(topology: Topology, run_id: str) -> list[PairResult]:
    return asyncio.run(probe_pairs(topology, run_id))


def run_all(topology: Topology, run_id: str) -> RunResult:
    """Every probe of a run: buses, then engines, then pairs (see the module docstring)."""
    started = _now()

    async def all_probes() -> tuple[list[BusResult], list[EngineResult], list[PairResult]]:
        buses = await probe_buses(topology, run_id)
        engines = await probe_engines(topology)
        pairs = await probe_pairs(topology, run_id)
        return buses, engines, pairs

    buses, engines, pairs = asyncio.run(all_probes())
    return RunResult(run_id=run_id, platform=topology.platform, started_at=started,
                     finished_at=_now(), buses=buses, engines=engines, pairs=pairs,
                     settings=topology.probe.model_dump(mode="json"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _why(exc: BaseException) -> str:
    return f"probe crashed: {type(exc).__name__}: {str(exc)[:200]}"


def _bus_crashed(bus: Bus, settings: ProbeSettings, exc: BaseException) -> BusResult:
    ping = SampleBatch(target=bus.name, kind="bus_ping")
    delivery = SampleBatch(target=bus.name, kind="bus_delivery")
    empty = summarize(ping, None, settings.min_samples)
    return BusResult(name=bus.name, title=bus.display, url=bus.safe_url, status="unreachable",
                     status_reason=_why(exc), ping=empty,
                     delivery=dataclasses.replace(empty), throughput_msgs_per_s=None,
                     capacity_messages=settings.bus_capacity_messages, info={}, streams=[],
                     samples=[ping, delivery], error=_why(exc))


def _engine_crashed(engine: Engine, settings: ProbeSettings, exc: BaseException) -> EngineResult:
    batch = SampleBatch(target=engine.name, kind="engine_http")
    return EngineResult(name=engine.name, title=engine.display, url=engine.health_url,
                        status="unreachable", status_reason=_why(exc),
                        summary=summarize(batch, None, settings.min_samples), samples=batch)


def _pair_crashed(pair: Pair, topology: Topology, exc: BaseException) -> PairResult:
    batch = SampleBatch(target=pair.key, kind="pair_roundtrip")
    return PairResult(from_=pair.from_, to=pair.to, bus=topology.engine(pair.from_).bus,
                      status="failed", status_reason=_why(exc),
                      summary=summarize(batch, None, topology.probe.min_samples),
                      samples=batch)
