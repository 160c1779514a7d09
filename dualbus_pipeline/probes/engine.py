"""Engine probe (product.md §4.2): every engine of a run, measured without disturbing them
(§4.4), then classified. One engine's requests and samples: engine_prober.py.

The phase, all on ONE probe thread and event loop (timing.py):

1. **Alone**: when engines will be in flight together, each engine first gets a short window
   of ``engine_solo_requests`` paced requests with nothing else in flight.
2. **Together**: ``engine_slots`` engines in flight (the send budget
   ``engine_max_send_rate_per_s`` ÷ ``engine_rate_per_s``; defaults 100/s ÷ 100/s = 1), each
   slot on its own phase of a common send grid so that no two sends are due at once; a slot
   takes its next engine one period after its current engine's last send.
3. **Guard**: an engine whose p50 together is above ``guard_ratio`` × its p50 alone (and
   ``guard_min_ms`` more) was slowed by the concurrency: it is re-measured alone, in full, while
   ``remeasure_budget_s`` lasts (the summary's note says so), else its summary is inconclusive.
4. **Hot path**: ``engine_hot_requests`` back-to-back requests per engine, one engine at a
   time (engine_hot.py); then the optional capacity burst, one engine at a time.

Why gentle: a probe that sends hundreds of requests per second to each of ten engines, or
spins to pace them, takes CPU from the platform it measures and reads its own load
(docs/probes.md, "Measuring without disturbing", has the figures).

Classification (from all counted samples of the paced series):
* ``unreachable``: no TCP connection could be made, neither before nor during the schedule;
* ``starting``: most samples failed because the body said the engine is starting
  (``initializing``…: the health check's ``starting`` words): not yet operational, not
  unhealthy;
* ``unhealthy``: connections were made but most samples failed (success ratio < 50 %: an HTTP
  code the health check does not accept, an unhealthy body status, a failed condition, or no
  answer within the timeout);
* ``degraded``: success ratio < 99 %, or some bodies reported a degraded status;
* ``operational``: otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import resource
from collections import Counter, deque
from dataclasses import dataclass

from dualbus_pipeline.config import Engine, HealthCheck, ProbeSettings
from dualbus_pipeline.probes.engine_hot import engine_capacity, hot_series
from dualbus_pipeline.probes.engine_prober import (
    START_DELAY_NS,
    EngineProber,
)
from dualbus_pipeline.probes.model import (
    OPERATIONAL_SUCCESS,
    EngineResult,
    EngineStatus,
    SampleBatch,
    Summary,
)
from dualbus_pipeline.probes.retake import HostWatch, budget, delayed_counted, replace_delayed
from dualbus_pipeline.probes.stats import slowed, summarize
from dualbus_pipeline.probes.timing import in_thread, now_ns, run_on_precise_loop

UNHEALTHY_BELOW = 0.5
FD_RESERVE = 256  # descriptors left for the rest of the process
LONG_ENGINE_PHASE_S = 30.0  # beyond this, `run` and `validate` say which settings shorten it


async def probe_engine(engine: Engine, settings: ProbeSettings) -> EngineResult:
    """Probe one engine; failures are samples, never exceptions."""
    (result,) = await probe_engines_staggered([engine], settings)
    return result


async def probe_engines_staggered(engines: list[Engine],
                                  settings: ProbeSettings) -> list[EngineResult]:
    """Probe engines as the module docstring says, on one precise loop in its own thread.
    Results in input order."""
    if not engines:
        return []
    return await in_thread(lambda: run_on_precise_loop(lambda: _probe_all(engines, settings)),
                           name="dualbus-engines")


def engine_slots(settings: ProbeSettings, engines: int) -> int:
    """Engines in flight at once: as many as the total send-rate budget allows
    (``engine_max_send_rate_per_s`` / ``engine_rate_per_s``), at most ``engine_concurrency``
    and at most the number of engines."""
    by_rate = int(settings.engine_max_send_rate_per_s // settings.engine_rate_per_s)
    return max(1, min(settings.engine_concurrency, by_rate, engines))


def guarded(settings: ProbeSettings, engines: int) -> bool:
    """Whether the phase has windows alone (only when engines are in flight together)."""
    return settings.engine_solo_requests > 0 and engine_slots(settings, engines) > 1


def engine_phase_s(settings: ProbeSettings, engines: int) -> float:
    """The engine phase's length by construction: the windows alone, then rounds of
    ``engine_slots`` engines of ``engine_requests`` periods (plus one between engines of a
    slot). Re-takes, re-measures, the hot series, connection set-up and the wait for the last
    answers come on top."""
    if engines <= 0:
        return 0.0
    period = 1.0 / settings.engine_rate_per_s
    slots = engine_slots(settings, engines)
    rounds = math.ceil(engines / slots)
    alone = engines * settings.engine_solo_requests * period if guarded(settings, engines) \
        else 0.0
    return alone + rounds * (settings.engine_requests + 1) * period


def engine_phase_line(settings: ProbeSettings, engines: int) -> str:
    """One line: how long the engine phase takes by construction, and with what budget."""
    slots = engine_slots(settings, engines)
    secs = engine_phase_s(settings, engines)
    line = (f"engine phase ≈ {secs:.1f} s: {engines} engines × "
            f"{settings.engine_requests} requests at {settings.engine_rate_per_s:g}/s, "
            f"{slots} in flight (probe.engine_max_send_rate_per_s "
            f"{settings.engine_max_send_rate_per_s:g})")
    if guarded(settings, engines):
        line += f", after {settings.engine_solo_requests} requests alone per engine"
    if secs > LONG_ENGINE_PHASE_S:
        line += ("; fewer probe.engine_requests shorten it, and so does a higher send budget "
                 "once the guard shows it does not slow the engines (docs/configuration.md)")
    return line


def connection_cap(settings: ProbeSettings, slots: int) -> int:
    """Connections per engine: ``engine_max_connections``, lowered so that all engines in
    flight together stay well inside the process's descriptor limit."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    budget = max(1, (soft - FD_RESERVE) // slots) if soft > FD_RESERVE else 1
    return max(1, min(settings.engine_max_connections, budget))


@dataclass
class _Paced:
    """An engine's paced series as measured: the prober of its main pass (connections,
    connect errors), the samples of every pass and each sample's body status."""

    prober: EngineProber
    batch: SampleBatch
    bodies: list[str | None]

    def extend(self, more: _Paced) -> None:
        self.batch.extend(more.batch)
        self.bodies.extend(more.bodies)

    def body_statuses(self) -> Counter[str]:
        """Body statuses of the counted samples: {"healthy": 97, ...}."""
        return Counter(b for b, r in zip(self.bodies, self.batch.replaced, strict=True)
                       if b is not None and not r)


async def _alone_p50(engine: Engine, settings: ProbeSettings) -> float | None:
    """p50 of the engine's window alone (None when nothing answered: no guard for it)."""
    prober = EngineProber(engine, settings, exclusive=True)
    await prober.prepare()
    if not prober.connected_any:
        return None  # an engine that cannot be reached costs no window
    await prober.send_paced(settings.engine_solo_requests)
    return _summary(await prober.collect(), settings).p50


async def _slots(engines: list[Engine], settings: ProbeSettings, watch: HostWatch,
                 counts: dict[str, int]) -> dict[str, _Paced]:
    """Each engine's paced series of ``counts[name]`` requests, ``engine_slots`` engines in
    flight on a staggered grid (module docstring)."""
    slots = engine_slots(settings, len(engines))
    max_conns = connection_cap(settings, 2 * slots)  # a slot's next engine overlaps its last
    period = int(1e9 / settings.engine_rate_per_s)
    origin = now_ns() + START_DELAY_NS
    queue = deque(engines)
    collecting: list[tuple[EngineProber, asyncio.Task[SampleBatch]]] = []

    async def slot(k: int) -> None:
        grid = origin + k * period // slots
        while queue:
            prober = EngineProber(queue.popleft(), settings, max_conns, watch,
                                  exclusive=slots == 1)
            await prober.prepare()
            earliest = now_ns() + START_DELAY_NS
            if grid < earliest:
                grid += -(-(earliest - grid) // period) * period  # the slot's next grid point
            last = await prober.send_paced(counts[prober.engine.name], grid)
            grid = last + period
            collecting.append((prober, asyncio.create_task(prober.collect())))

    await asyncio.gather(*(slot(k) for k in range(slots)))
    return {p.engine.name: _Paced(p, await task, p.bodies) for p, task in collecting}


async def _measured(engines: list[Engine], settings: ProbeSettings,
                    watch: HostWatch) -> tuple[dict[str, _Paced], dict[str, int]]:
    """The paced series of ``engines`` together, then passes that re-take the samples the
    probe host delayed (retake.py) while each engine's budget lasts; returns the series and,
    per engine, how many delayed samples stayed counted (the budget ran out: inconclusive)."""
    n = settings.engine_requests
    paced = await _slots(engines, settings, watch, {e.name: n for e in engines})
    left = {e.name: budget(n, settings.retake_fraction) for e in engines}
    again = {e.name: replace_delayed(paced[e.name].batch, watch, 0, left[e.name])
             for e in engines}
    while retake := [e for e in engines if again[e.name]]:
        more = await _slots(retake, settings, watch, {e.name: again[e.name] for e in retake})
        for e in retake:
            left[e.name] -= again[e.name]
            again[e.name] = replace_delayed(more[e.name].batch, watch, 0, left[e.name])
            paced[e.name].extend(more[e.name])
    return paced, {e.name: delayed_counted(paced[e.name].batch, watch) for e in engines}


def _summary(batch: SampleBatch, settings: ProbeSettings, still: int = 0) -> Summary:
    return summarize(batch, settings.engine_rate_per_s, settings.min_samples,
                     settings.late_bound_ms, still)


async def _probe_all(engines: list[Engine], settings: ProbeSettings) -> list[EngineResult]:
    solo: dict[str, float | None] = {}
    if guarded(settings, len(engines)):
        for e in engines:
            solo[e.name] = await _alone_p50(e, settings)
    watch = HostWatch.for_bound(settings.late_bound_ms)
    paced, still = await _measured(engines, settings, watch)
    summaries = {e.name: _summary(paced[e.name].batch, settings, still[e.name])
                 for e in engines}
    in_flight = engine_slots(settings, len(engines))
    budget_end = now_ns() + int(settings.remeasure_budget_s * 1e9)
    needs = int((settings.engine_requests + 1) / settings.engine_rate_per_s * 1e9)
    for e in engines:
        s, alone_p50 = summaries[e.name], solo.get(e.name)
        if alone_p50 is not None:
            s = dataclasses.replace(s, solo_p50=alone_p50)
        if alone_p50 is not None and s.p50 is not None and slowed(
                s, alone_p50, settings.guard_ratio, settings.guard_min_ms):
            why = (f"p50 {s.p50:.3f} ms with {in_flight} engines in flight was "
                   f"{s.p50 / alone_p50:.1f}× its p50 alone ({alone_p50:.3f} ms)")
            if now_ns() + needs <= budget_end:
                again, left = await _measured([e], settings, watch)
                paced[e.name] = again[e.name]
                s = dataclasses.replace(_summary(again[e.name].batch, settings, left[e.name]),
                                        solo_p50=alone_p50, note=f"re-measured alone: {why}")
            else:
                s = dataclasses.replace(
                    s, valid=False, inconclusive=True,
                    invalid_reason=f"inconclusive: {why}, and the re-measure budget "
                    f"(probe.remeasure_budget_s {settings.remeasure_budget_s:g}) was spent")
        summaries[e.name] = s
    return [await _finish(e, paced[e.name], summaries[e.name], settings) for e in engines]


async def _finish(engine: Engine, paced: _Paced, summary: Summary,
                  settings: ProbeSettings) -> EngineResult:
    """Hot series and capacity (alone), then classification."""
    prober, batch = paced.prober, paced.batch
    hot = hot_batch = None
    capacity = None
    if prober.connected_any and settings.engine_hot_requests:
        hot_batch = await hot_series(EngineProber(engine, settings, exclusive=True),
                                     settings.engine_hot_requests)
        hot = summarize(hot_batch, None, settings.min_samples)
    if prober.connected_any and settings.engine_capacity.enabled:
        capacity = await engine_capacity(EngineProber(engine, settings))
    bodies = paced.body_statuses()
    status, reason = classify_engine(summary, batch, prober.connected_any, prober.connect_error,
                                     bodies, frozenset(engine.health.degraded))
    return EngineResult(name=engine.name, title=engine.display, url=engine.health_url,
                        status=status, status_reason=reason, summary=summary, samples=batch,
                        capacity_rps=capacity, body_statuses=dict(bodies), hot=hot,
                        hot_samples=hot_batch)


def _top_errors(batch: SampleBatch, k: int = 2) -> str:
    counts = Counter(e for e, r in zip(batch.error, batch.replaced, strict=True)
                     if e and not r)
    return ", ".join(f"{err} ×{n}" for err, n in counts.most_common(k))


DEGRADED_WORDS = frozenset(HealthCheck().degraded)


def classify_engine(summary: Summary, batch: SampleBatch, connected_any: bool,
                    connect_error: str | None,
                    bodies: Counter[str] | dict[str, int],
                    degraded: frozenset[str] = DEGRADED_WORDS) -> tuple[EngineStatus, str]:
    """Apply the classification rules of the module docstring."""
    n = summary.count
    if not connected_any:
        return "unreachable", f"no connection could be made ({connect_error or 'no answer'})"
    ratio = summary.success_ratio
    failed = n - summary.ok
    if ratio < UNHEALTHY_BELOW:
        starting = Counter(e for e, r in zip(batch.error, batch.replaced, strict=True)
                           if e and not r and e.startswith("starting: "))
        if sum(starting.values()) * 2 > failed:
            word = starting.most_common(1)[0][0].removeprefix("starting: ")
            return "starting", (f"{sum(starting.values())}/{n} responses said {word!r}: "
                                "starting, not yet operational")
        return "unhealthy", (f"{failed}/{n} requests failed ({_top_errors(batch)})")
    degraded_bodies = sum(v for k, v in bodies.items() if k in degraded)
    if ratio < OPERATIONAL_SUCCESS:
        return "degraded", f"{failed}/{n} requests failed ({_top_errors(batch)})"
    if degraded_bodies:
        return "degraded", f"{degraded_bodies}/{n} responses reported a degraded status"
    return "operational", f"{summary.ok}/{n} requests succeeded"
