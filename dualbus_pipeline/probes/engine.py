"""Engine probe (product.md §4.2): every engine's paced GETs of ``health_path``, scheduled
together, then classification. One engine's requests and samples: engine_prober.py.

Scheduling: all engines of a run share ONE probe thread and event loop with microsecond
timers (timing.py), and their schedules are phase-staggered on a common grid: with C engines
in flight at rate R, engine slot k sends at ``origin + k/(C·R) + i/R``, so no two sends are
due at the same instant and spin-waits never overlap. One thread per engine was tried first:
on a 2-core machine eight spinning threads starved each other and the engines being
measured, and the lateness check (rightly) invalidated most summaries.

Classification (from all samples):
* ``unreachable``: no TCP connection could be made, neither before nor during the schedule;
* ``unhealthy``: connections were made but most samples failed (success ratio < 50 %: non-2xx,
  an unhealthy body status, or no answer within the timeout);
* ``degraded``: success ratio < 99 %, or some bodies reported a degraded status;
* ``operational``: otherwise.
"""

from __future__ import annotations

import asyncio
import heapq
import resource
from collections import Counter
from collections.abc import Callable

from dualbus_pipeline.config import Engine, ProbeSettings
from dualbus_pipeline.probes.engine_prober import (
    DEGRADED_BODY,
    HANDOVER_LEAD_NS,
    START_DELAY_NS,
    EngineProber,
)
from dualbus_pipeline.probes.model import EngineResult, EngineStatus, SampleBatch, Summary
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.probes.timing import (
    SPIN_MAX_NS,
    in_thread,
    now_ns,
    run_on_precise_loop,
    spin_budget,
)

OPERATIONAL_SUCCESS = 0.99
UNHEALTHY_BELOW = 0.5
FD_RESERVE = 256  # descriptors left for the rest of the process (Dagster, DuckDB, buses)


async def probe_engine(engine: Engine, settings: ProbeSettings) -> EngineResult:
    """Probe one engine; failures are samples, never exceptions."""
    (result,) = await probe_engines_staggered([engine], settings)
    return result


async def probe_engines_staggered(engines: list[Engine],
                                  settings: ProbeSettings) -> list[EngineResult]:
    """Probe engines ``engine_slots`` at a time on one precise loop in its own thread, each
    in-flight engine on its own phase of a common send grid. Results in input order."""
    if not engines:
        return []
    return await in_thread(
        lambda: run_on_precise_loop(lambda: _probe_staggered(engines, settings)),
        name="dualbus-engines")


def engine_slots(settings: ProbeSettings, engines: int) -> int:
    """Engines in flight at once: as many as the total send-rate budget allows
    (``engine_max_send_rate_per_s`` / ``engine_rate_per_s``), at most ``engine_concurrency``
    and at most the number of engines."""
    by_rate = int(settings.engine_max_send_rate_per_s // settings.engine_rate_per_s)
    return max(1, min(settings.engine_concurrency, by_rate, engines))


def engine_phase_s(settings: ProbeSettings, engines: int) -> float:
    """The engine phase's length by construction: engines go ``engine_slots`` at a time, each
    slot starting after its ramp offset (`ramp_periods`) and taking the next engine when one
    ends, each engine ``engine_requests`` periods of ``1 / engine_rate_per_s``. Connection
    set-up and the wait for the last answers come on top (docs/benchmarks.md measured ~2 s
    over 1,000 engines)."""
    if engines <= 0:
        return 0.0
    slots = engine_slots(settings, engines)
    n = settings.engine_requests
    ramp = ramped(settings, engines)
    free_at = [ramp_periods(k, slots, n) if ramp else 0 for k in range(slots)]  # a heap
    end = 0
    for _ in range(engines):
        start = heapq.heappop(free_at)
        end = max(end, start + n)
        heapq.heappush(free_at, start + n)
    return end / settings.engine_rate_per_s


LONG_ENGINE_PHASE_S = 30.0  # beyond this, `run` and `validate` say which settings shorten it


def engine_phase_line(settings: ProbeSettings, engines: int) -> str:
    """One line: how long the engine phase takes by construction, and with what budget."""
    slots = engine_slots(settings, engines)
    secs = engine_phase_s(settings, engines)
    line = (f"engine phase ≈ {secs:.1f} s: {engines} engines × "
            f"{settings.engine_requests} requests at {settings.engine_rate_per_s:g}/s, "
            f"{slots} in flight (probe.engine_max_send_rate_per_s "
            f"{settings.engine_max_send_rate_per_s:g})")
    if secs > LONG_ENGINE_PHASE_S:
        line += ("; a higher send budget shortens it when the probe host has a free core, "
                 "fewer probe.engine_requests in any case (docs/configuration.md)")
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


def ramp_periods(slot: int, slots: int, requests: int) -> int:
    """Send periods slot ``slot``'s first engine waits: ``slot × requests ÷ slots``.

    Engines of equal length started together would also end together, and every slot's next
    engine would connect and warm up in the same few milliseconds, once per engine length:
    measured at 5,000/s over 1,000 engines, the probe's lateness p50 rose from ~12 µs to
    64–148 µs and the latency p50 doubled in those windows (docs/probes.md, "Concurrency").
    Offsetting the slots' first engines by whole periods spreads the hand-overs evenly over an
    engine's length (the send grid is unchanged) and ramps the load up over the first one, at
    the cost of up to one engine length (`engine_phase_s` counts it)."""
    return slot * requests // slots


def ramped(settings: ProbeSettings, engines: int) -> bool:
    """Whether the slots start on a ramp: only when some engine waits for a slot (a single
    round has no hand-overs to spread, and would only pay for the ramp)."""
    return engines > engine_slots(settings, engines)


async def _probe_staggered(engines: list[Engine], settings: ProbeSettings) -> list[EngineResult]:
    slots = engine_slots(settings, len(engines))
    # A slot passes to its next engine HANDOVER_LEAD_NS before the current one's last send
    # (unless a capacity burst follows): the next engine connects and warms up meanwhile, and
    # its schedule continues the slot's grid one period after that last send. Waiting for the
    # whole result left 18-28 ms on average between two engines of a slot at 5,000/s (the last
    # answers, connect, warm-up, the slot's next phase): ~0.6 s over 1,000 engines. Two engines can
    # then hold connections in one slot at once, so the descriptor budget counts 2 × slots.
    handover = not settings.engine_capacity.enabled
    max_conns = connection_cap(settings, 2 * slots if handover else slots)
    period = 1e9 / settings.engine_rate_per_s
    spacing = period / slots
    if slots > 1:  # engines share the loop: spin no more than the wake-ups need
        spin_budget().cap_for_spacing(spacing)
    else:
        # One engine in flight: when its sends come closer together than the spin (matched
        # load), the answer to one arrives while the loop spins for the next and is read
        # without a wake-up (docs/benchmarks.md, "Scale"; at 200/s it is not: "Sixth
        # machine"), and its CPU is no one's loss. With many engines in flight that CPU is the
        # platform's.
        spin_budget().pin(SPIN_MAX_NS)
    origin = now_ns() + START_DELAY_NS
    free: asyncio.Queue[int] = asyncio.Queue()
    # per slot: no send before this (half a period after its previous engine's last send, so
    # the next grid point is the one a period on). At first: the slot's ramp offset.
    ramp = ramped(settings, len(engines))
    not_before = [origin + ramp_periods(k, slots, settings.engine_requests) * int(period)
                  if ramp else 0 for k in range(slots)]
    loop = asyncio.get_running_loop()
    for k in range(slots):  # each slot opens just in time to connect and warm up
        opens_in = (not_before[k] - HANDOVER_LEAD_NS - now_ns()) / 1e9
        if opens_in > 0:
            loop.call_later(opens_in, free.put_nowait, k)
        else:
            free.put_nowait(k)

    def start_for(slot: int) -> int:
        earliest = max(now_ns() + START_DELAY_NS, not_before[slot])
        phase = origin + int(slot * spacing)
        if earliest <= phase:
            return phase
        cycles = -(-(earliest - phase) // int(period))  # ceil
        return phase + int(cycles * period)

    async def one(engine: Engine) -> EngineResult:
        slot = await free.get()
        held = True

        def release(last_send_ns: int | None = None) -> None:
            nonlocal held
            if held:
                held = False
                if last_send_ns is not None:
                    not_before[slot] = last_send_ns + int(period / 2)
                free.put_nowait(slot)

        try:
            return await _probe(engine, settings, start_for=lambda: start_for(slot),
                                max_connections=max_conns,
                                handover=release if handover else None)
        finally:
            release()

    return list(await asyncio.gather(*(one(e) for e in engines)))


async def _probe(engine: Engine, settings: ProbeSettings,
                 start_for: Callable[[], int] | None = None,
                 max_connections: int | None = None,
                 handover: Callable[[int], None] | None = None) -> EngineResult:
    prober = EngineProber(engine, settings, max_connections)
    batch = await prober.run(start_for, handover)
    summary = summarize(batch, settings.engine_rate_per_s, settings.min_samples)
    capacity = None
    if settings.engine_capacity.enabled and prober.connected_any:
        capacity = await prober.capacity()
    status, reason = classify_engine(summary, batch, prober.connected_any, prober.connect_error,
                                     prober.bodies)
    return EngineResult(name=engine.name, title=engine.display, url=engine.health_url,
                        status=status, status_reason=reason, summary=summary, samples=batch,
                        capacity_rps=capacity, body_statuses=dict(prober.bodies))


def _top_errors(batch: SampleBatch, k: int = 2) -> str:
    counts = Counter(e for e in batch.error if e)
    return ", ".join(f"{err} ×{n}" for err, n in counts.most_common(k))


def classify_engine(summary: Summary, batch: SampleBatch, connected_any: bool,
                    connect_error: str | None,
                    bodies: Counter[str] | dict[str, int]) -> tuple[EngineStatus, str]:
    """Apply the classification rules of the module docstring."""
    n = summary.count
    if not connected_any:
        return "unreachable", f"no connection could be made ({connect_error or 'no answer'})"
    ratio = summary.success_ratio
    failed = n - summary.ok
    if ratio < UNHEALTHY_BELOW:
        return "unhealthy", (f"{failed}/{n} requests failed ({_top_errors(batch)})")
    degraded_bodies = sum(v for k, v in bodies.items() if k in DEGRADED_BODY)
    if ratio < OPERATIONAL_SUCCESS:
        return "degraded", f"{failed}/{n} requests failed ({_top_errors(batch)})"
    if degraded_bodies:
        return "degraded", f"{degraded_bodies}/{n} responses reported a degraded status"
    return "operational", f"{summary.ok}/{n} requests succeeded"

