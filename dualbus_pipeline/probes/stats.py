"""Exact statistics over raw samples and the validity rules of a summary.

Percentiles use the **nearest-rank** method on the sorted successful latencies: the q-th
percentile of n values is the value at 1-based rank ``ceil(q/100 * n)``. Every reported
percentile is therefore a latency that was really observed (no interpolation, no histogram),
and p100 is the maximum. With fewer than 1000 samples p99.9 is the maximum — which is why the
sample count travels with every summary.

Validity (a summary the numbers make untrustworthy is flagged, never silently used):

* too few samples: ``count < min_samples``;
* probe lateness: the probe's own scheduling lateness (when its timer fired − intended send
  time; waiting for a connection to a slow target is the target's latency, not lateness) is
  comparable to the latency it measured at the same point of the distribution — lateness p50
  above ``LATENESS_P50_FRACTION`` (25 %) of the latency p50, or lateness p99 above
  ``LATENESS_FRACTION`` (50 %) of the latency p99. Latency runs from the intended send time,
  so lateness is part of every corrected figure; these bounds say when it stops being a small
  part. (Comparing lateness p99 with latency p50 — the first rule we shipped — condemned a
  100-sample run for one late send.);
* rate: the achieved send rate is below ``RATE_FRACTION`` (50 %) of the intended rate.

A target with no successful sample keeps ``valid=True`` when the rules above hold: a success
ratio of 0 is a true measurement; its latency fields are None ("no data" for latency SLOs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dualbus_pipeline.probes.model import SampleBatch, Summary

LATENESS_FRACTION = 0.5
LATENESS_P50_FRACTION = 0.25
RATE_FRACTION = 0.5


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


def summarize(batch: SampleBatch, intended_rate_per_s: float | None,
              min_samples: int) -> Summary:
    """Summarize one batch: success ratio, latency distribution of successes, validity.

    ``intended_rate_per_s`` None means the probe was not paced (closed-loop round trips such
    as PING): the rate rule is skipped.
    """
    count = len(batch)
    ok_n = sum(1 for o in batch.ok if o)
    lat = sorted(x for x, o in zip(batch.latency_ms(), batch.ok, strict=True) if o)
    svc = sorted(x for x, o in zip(batch.service_ms(), batch.ok, strict=True) if o)
    fired = batch.dispatch_ns if len(batch.dispatch_ns) == count else batch.sent_ns
    late = sorted((s - i) / 1e6 for i, s in zip(batch.intended_ns, fired, strict=True))

    def pct(values: Sequence[float], q: float) -> float | None:
        return percentile(values, q) if values else None

    p50 = pct(lat, 50)
    p99 = pct(lat, 99)
    lateness_p50 = pct(late, 50)
    lateness_p99 = pct(late, 99)
    achieved = achieved_rate_per_s(batch.sent_ns)

    reasons: list[str] = []
    if count < min_samples:
        reasons.append(f"too few samples: {count} < {min_samples}")
    if (lateness_p50 is not None and p50 is not None
            and lateness_p50 > LATENESS_P50_FRACTION * p50):
        reasons.append(f"probe scheduling lateness p50 {lateness_p50:.3f} ms exceeds "
                       f"{LATENESS_P50_FRACTION:.0%} of the measured p50 {p50:.3f} ms")
    if (lateness_p99 is not None and p99 is not None
            and lateness_p99 > LATENESS_FRACTION * p99):
        reasons.append(f"probe scheduling lateness p99 {lateness_p99:.3f} ms exceeds "
                       f"{LATENESS_FRACTION:.0%} of the measured p99 {p99:.3f} ms")
    if (intended_rate_per_s is not None and achieved is not None
            and achieved < RATE_FRACTION * intended_rate_per_s):
        reasons.append(f"achieved rate {achieved:.1f}/s is below {RATE_FRACTION:.0%} of the "
                       f"intended {intended_rate_per_s:.1f}/s")
    return Summary(
        count=count,
        ok=ok_n,
        success_ratio=(ok_n / count) if count else 0.0,
        mean=_round(math.fsum(lat) / len(lat)) if lat else None,
        p50=_round(p50),
        p90=_round(pct(lat, 90)),
        p99=_round(p99),
        p999=_round(pct(lat, 99.9)),
        max=_round(lat[-1]) if lat else None,
        min=_round(lat[0]) if lat else None,
        service_p50=_round(pct(svc, 50)),
        service_p99=_round(pct(svc, 99)),
        intended_rate_per_s=intended_rate_per_s,
        achieved_rate_per_s=_round(achieved, 3),
        lateness_p99_ms=_round(lateness_p99),
        valid=not reasons,
        invalid_reason="; ".join(reasons) or None,
    )
