"""Exact statistics over raw samples and the validity rules of a summary.

Percentiles use the **nearest-rank** method on the sorted successful latencies: the q-th
percentile of n values is the value at 1-based rank ``ceil(q/100 * n)``. Every reported
percentile is therefore a latency that was really observed (no interpolation, no histogram),
and p100 is the maximum. With fewer than 1000 samples p99.9 is the maximum — which is why the
sample count travels with every summary.

The same rank is what DuckDB's ``quantile_disc`` returns, and SLO values are computed with it
(store/slo_queries.py): a figure in the report and the SLO verdict on it are one number.

Counted samples: every sample that was not ``replaced`` (re-taken because the probe host
delayed it past ``probe.late_bound_ms``, retake.py).

Validity (a summary the numbers make untrustworthy is flagged, never silently used):

* too few samples: ``count < min_samples`` ("no data" for SLOs);
* inconclusive: a counted sample was still delayed by the probe host (retake.py) — the re-take
  budget was spent, so the host stayed overloaded — and nobody can tell what the target would
  have shown. Inconclusive is its own SLO outcome, neither pass nor breach.

A target with no successful sample keeps ``valid=True`` when the rules above hold: a success
ratio of 0 is a true measurement; its latency fields are None ("no data" for latency SLOs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dualbus_pipeline.probes.model import SampleBatch, Summary


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in [0, 100]); ValueError if empty."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100] (got {q!r})")
    # round() first: 99.9 / 100 * 1000 is 999.0000000000001 in binary floating point
    rank = max(1, math.ceil(round(q * n / 100, 9)))
    return sorted_values[rank - 1]


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(v, digits)


def achieved_rate_per_s(sent_ns: Sequence[int]) -> float | None:
    """Sends per second over the span of the sends ((n - 1) intervals); None below 2 sends."""
    if len(sent_ns) < 2:
        return None
    span = max(sent_ns) - min(sent_ns)
    if span <= 0:
        return None
    return (len(sent_ns) - 1) / (span / 1e9)


def summarize(batch: SampleBatch, intended_rate_per_s: float | None, min_samples: int,
              late_bound_ms: float | None = None, host_delayed: int = 0) -> Summary:
    """Summarize one batch's counted samples: success ratio, latency distribution of the
    successes, the probe's own lateness, validity (module docstring).

    ``intended_rate_per_s`` None means the probe was not paced (closed-loop round trips such
    as PING). ``host_delayed``: counted samples the probe host delayed after the re-take
    budget was spent (retake.py); ``late_bound_ms`` is the bound they exceeded.
    """
    keep = [k for k in range(len(batch)) if not batch.replaced[k]]
    latency, service, lateness = batch.latency_ms(), batch.service_ms(), batch.lateness_ms()
    count = len(keep)
    ok_n = sum(1 for k in keep if batch.ok[k])
    lat = sorted(latency[k] for k in keep if batch.ok[k])
    svc = sorted(service[k] for k in keep if batch.ok[k])
    late = sorted(lateness[k] for k in keep)

    def pct(values: Sequence[float], q: float) -> float | None:
        return percentile(values, q) if values else None

    achieved = achieved_rate_per_s([batch.sent_ns[k] for k in keep])
    reasons: list[str] = []
    inconclusive = False
    if count < min_samples:
        reasons.append(f"too few samples: {count} < {min_samples}")
    if host_delayed:
        inconclusive = True
        reasons.append(
            f"inconclusive: the probe host delayed {host_delayed} more sample(s) by over "
            f"{late_bound_ms or 0:g} ms after {batch.replaced.count(1)} re-take(s) had used "
            "the budget")
    return Summary(
        count=count,
        ok=ok_n,
        success_ratio=(ok_n / count) if count else 0.0,
        mean=_round(math.fsum(lat) / len(lat)) if lat else None,
        p50=_round(pct(lat, 50)),
        p90=_round(pct(lat, 90)),
        p99=_round(pct(lat, 99)),
        p999=_round(pct(lat, 99.9)),
        max=_round(lat[-1]) if lat else None,
        min=_round(lat[0]) if lat else None,
        service_p50=_round(pct(svc, 50)),
        service_p99=_round(pct(svc, 99)),
        intended_rate_per_s=intended_rate_per_s,
        achieved_rate_per_s=_round(achieved, 3),
        lateness_p99_ms=_round(pct(late, 99)),
        valid=not reasons,
        invalid_reason="; ".join(reasons) or None,
        replaced=batch.replaced.count(1),
        inconclusive=inconclusive,
    )


def slowed(together: Summary, alone_p50: float | None, ratio: float, min_ms: float) -> bool:
    """The concurrency guard's test (engine.py, runner.py): the p50 a target showed with
    others in flight is above ``ratio`` × its p50 alone, and at least ``min_ms`` above it.
    A window alone is short and its p50 noisy: the guard is for gross slowdowns; the
    10 % fidelity is measured in bench/ (docs/benchmarks.md)."""
    if alone_p50 is None or together.p50 is None or not together.valid:
        return False
    return together.p50 > ratio * alone_p50 and together.p50 - alone_p50 > min_ms
