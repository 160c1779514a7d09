"""Synthetic probe results (real model objects, plausible numbers) for warehouse benchmarks:
no network, deterministic (seeded)."""

from __future__ import annotations

import random

from dualbus_pipeline.probes.model import BusResult, EngineResult, PairResult, SampleBatch
from dualbus_pipeline.probes.stats import summarize


def _batch(target: str, kind: str, n: int, rng: random.Random, base_ms: float,
           t0: int) -> SampleBatch:
    b = SampleBatch(target=target, kind=kind)
    interval = 5_000_000
    for i in range(n):
        intended = t0 + i * interval
        sent = intended + int(rng.random() * 20_000)
        done = sent + int((base_ms + rng.expovariate(1 / (base_ms * 0.2))) * 1e6)
        ok = rng.random() > 0.001
        b.add(intended, sent, done, ok, 200 if ok else 500, None if ok else "http 500")
    return b


def results(engines: int, requests: int, *, buses: int = 2, pairs: int = 4,
            seed: int = 1) -> tuple[list[BusResult], list[EngineResult], list[PairResult]]:
    rng = random.Random(seed)
    t0 = 1_000_000_000
    eng: list[EngineResult] = []
    for i in range(engines):
        name = f"e{i:04d}"
        batch = _batch(name, "engine_http", requests, rng, 0.25 + (i % 7) * 0.05, t0)
        s = summarize(batch, 200.0, 20)
        eng.append(EngineResult(name=name, title=name, url=f"http://127.0.0.1:{20000 + i}/health",
                                status="operational", status_reason="ok", summary=s,
                                samples=batch, body_statuses={"healthy": s.ok}))
    bus: list[BusResult] = []
    for j in range(buses):
        name = f"bus{j}"
        ping = _batch(name, "bus_ping", 200, rng, 0.05, t0)
        delivery = _batch(name, "bus_delivery", 500, rng, 0.2, t0)
        bus.append(BusResult(name=name, title=name, url=f"redis://127.0.0.1:{6380 + j}/0",
                             status="operational", status_reason="ok",
                             ping=summarize(ping, None, 20),
                             delivery=summarize(delivery, 1000.0, 20),
                             throughput_msgs_per_s=150_000.0 + j, capacity_messages=20_000,
                             info={"connected_clients": 5.0}, streams=[],
                             samples=[ping, delivery]))
    prs: list[PairResult] = []
    for k in range(min(pairs, engines // 2)):
        a, b = f"e{2 * k:04d}", f"e{2 * k + 1:04d}"
        batch = _batch(f"{a}->{b}", "pair_roundtrip", 50, rng, 0.6, t0)
        prs.append(PairResult(from_=a, to=b, bus="bus0", status="operational",
                              status_reason="ok", summary=summarize(batch, 100.0, 20),
                              samples=batch))
    return bus, eng, prs
