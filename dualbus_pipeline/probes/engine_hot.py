"""One engine's unpaced series, one engine at a time after the paced ones (engine.py):

* `hot_series`: back to back on one warm connection, one request in flight, like
  ``wrk -t1 -c1``: the engine's service time without the idle wake-ups a paced request pays
  (docs/probes.md, "Paced and hot"). Never faster than ``max_rate_per_s``.
* `engine_capacity` (product.md §4.2, optional): closed-loop requests on C connections for T
  seconds.
"""

from __future__ import annotations

import asyncio

from dualbus_pipeline.probes.engine_prober import EngineProber
from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.timing import now_ns


async def hot_series(prober: EngineProber, count: int) -> SampleBatch:
    """``count`` requests back to back on one warm connection (the hot path)."""
    await prober.prepare()
    spacing = int(1e9 / prober.settings.max_rate_per_s)  # the safety cap holds here too
    t0 = now_ns()
    for k in range(count):
        due = t0 + k * spacing
        i = prober.s.new(due)
        prober.s.intended[i] = await prober.take(i, due, settle_by=None)  # never late
    return await prober.collect("engine_hot")


async def engine_capacity(prober: EngineProber) -> float | None:
    """Closed-loop requests on C connections for T seconds: completed 2xx per second."""
    cap = prober.settings.engine_capacity
    timeout = prober.settings.engine_timeout_s
    completed = 0
    deadline = now_ns() + int(cap.duration_s * 1e9)

    async def worker() -> None:
        nonlocal completed
        try:
            conn = await prober.connect(timeout)
        except Exception:  # no capacity from this worker
            return
        try:
            while now_ns() < deadline and not conn.closed:
                _, status, _, keep_alive = await asyncio.wait_for(
                    conn.request(prober.request), timeout)
                if 200 <= status < 300:
                    completed += 1
                if not keep_alive:
                    break
        except Exception:  # the burst ends for this worker
            pass
        finally:
            conn.abort()

    t0 = now_ns()
    await asyncio.gather(*(worker() for _ in range(cap.connections)))
    elapsed = (now_ns() - t0) / 1e9
    return completed / elapsed if completed and elapsed > 0 else None
