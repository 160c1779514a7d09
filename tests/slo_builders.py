"""Builders for warehouses filled with known samples (probe result types → store_measurements)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
    SampleBatch,
    StreamStat,
    Summary,
)
from dualbus_pipeline.slospec.evaluate import Evaluation, evaluate_run
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements
from dualbus_pipeline.store.warehouse import Warehouse


def batch(target: str, kind: str, latencies_ms: Sequence[float],
          failed: Sequence[float] = ()) -> SampleBatch:
    b = SampleBatch(target, kind)  # type: ignore[arg-type]
    t = 0
    for lat in latencies_ms:
        b.add(t, t, t + round(lat * 1_000_000), True, 200)
        t += 10_000_000
    for lat in failed:
        b.add(t, t, t + round(lat * 1_000_000), False, 0, "timeout")
        t += 10_000_000
    return b


def summary(b: SampleBatch, *, valid: bool = True, reason: str | None = None,
            inconclusive: bool = False) -> Summary:
    ok = sum(b.ok)
    lat = sorted(x for x, good in zip(b.latency_ms(), b.ok, strict=True) if good)
    mean = sum(lat) / len(lat) if lat else None
    return Summary(count=len(b), ok=ok, success_ratio=ok / len(b) if len(b) else 0.0,
                   mean=mean, p50=None, p90=None, p99=lat[-1] if lat else None, p999=None,
                   max=lat[-1] if lat else None, min=lat[0] if lat else None,
                   service_p50=None, service_p99=None, intended_rate_per_s=None,
                   achieved_rate_per_s=None, lateness_p99_ms=None, valid=valid,
                   invalid_reason=reason, inconclusive=inconclusive)


def engine(name: str, latencies_ms: Sequence[float], failed: Sequence[float] = (), *,
           status: str = "operational", valid: bool = True,
           reason: str | None = None, inconclusive: bool = False) -> EngineResult:
    """`inconclusive`: the paced summary is marked so (valid False, `reason` "inconclusive:
    ..."), as probes/engine.py does when the re-measure budget was spent."""
    b = batch(name, "engine_http", latencies_ms, failed)
    return EngineResult(name=name, title=name.title(), url=f"http://127.0.0.1/{name}",
                        status=status, status_reason=f"{status} by test",  # type: ignore[arg-type]
                        summary=summary(b, valid=valid and not inconclusive, reason=reason,
                                        inconclusive=inconclusive), samples=b)


def bus(name: str, *, delivery_ms: Sequence[float] = (0.3,) * 100,
        ping_ms: Sequence[float] = (0.2,) * 100, throughput: float | None = 5000.0,
        lag: dict[str, int | None] | None = None, status: str = "operational") -> BusResult:
    ping = batch(name, "bus_ping", ping_ms)
    delivery = batch(name, "bus_delivery", delivery_ms)
    streams = [StreamStat(stream=f"{e}-stream", group=f"{e}-group", engine=e, exists=True,
                          length=10, lag=v, pending=v, consumers=1)
               for e, v in (lag or {}).items()]
    return BusResult(name=name, title=name, url="redis://127.0.0.1:1/0",
                     status=status, status_reason=status,  # type: ignore[arg-type]
                     ping=summary(ping), delivery=summary(delivery),
                     throughput_msgs_per_s=throughput, capacity_messages=1000, info={},
                     streams=streams, samples=[ping, delivery])


def pair(a: str, b: str, latencies_ms: Sequence[float], failed: Sequence[float] = ()
         ) -> PairResult:
    s = batch(f"{a}->{b}", "pair_roundtrip", latencies_ms, failed)
    return PairResult(from_=a, to=b, bus="logic", status="operational", status_reason="ok",
                      summary=summary(s), samples=s)


def add_run(wh: Warehouse, run_id: str, *, started_at: datetime | None = None,
            engines: Sequence[EngineResult] = (), buses: Sequence[BusResult] = (),
            pairs: Sequence[PairResult] = (), slos: Sequence[Slo] = (),
            baseline_runs: int = 3, complete: bool = True) -> Evaluation:
    """Store one run, evaluate `slos` in the same transaction, and mark it completed."""
    begin_run(wh, run_id, "Test")
    with wh.transaction() as con:
        if started_at is not None:
            con.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", [started_at, run_id])
        store_measurements(con, run_id, list(buses), list(engines), list(pairs))
        ev = evaluate_run(con, run_id, slos, baseline_runs=baseline_runs)
        if complete:
            mark_evaluated(con, run_id, settings={}, overall=ev.overall)
    return ev
