"""Exact percentiles (nearest rank) and the validity rules of a summary."""

from __future__ import annotations

import pytest

from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.stats import percentile, slowed, summarize

MS = 1_000_000


def batch(latencies_ms: list[float], *, interval_ms: float = 1.0, late_ms: float = 0.0,
          ok: list[bool] | None = None) -> SampleBatch:
    b = SampleBatch(target="t", kind="engine_http")
    for i, lat in enumerate(latencies_ms):
        intended = int(i * interval_ms * MS)
        sent = intended + int(late_ms * MS)
        b.add(intended, sent, intended + int(lat * MS), True if ok is None else ok[i])
    return b


def test_nearest_rank_percentiles_by_hand() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.0       # ceil(0.5*10) = 5th
    assert percentile(values, 90) == 9.0       # ceil(9.0) = 9th
    assert percentile(values, 99) == 10.0      # ceil(9.9) = 10th
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    hundred = [float(v) for v in range(1, 101)]
    assert percentile(hundred, 99) == 99.0
    assert percentile(hundred, 99.9) == 100.0  # ceil(99.9) = 100th
    thousand = [float(v) for v in range(1, 1001)]
    assert percentile(thousand, 99.9) == 999.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_uses_successes_for_latency_and_all_samples_for_ratio() -> None:
    lat = [1.0, 2.0, 3.0, 4.0, 100.0]
    s = summarize(batch(lat, ok=[True, True, True, True, False]), None, min_samples=1)
    assert s.count == 5 and s.ok == 4 and s.success_ratio == 0.8
    assert s.p50 == 2.0 and s.max == 4.0 and s.min == 1.0 and s.mean == 2.5
    assert s.valid


def test_latency_from_start_service_from_sent_lateness_from_intended() -> None:
    """Charged from when the probe was ready (start), not from its schedule: the probe's own
    lateness (start − intended) is reported but is not the target's latency."""
    b = SampleBatch(target="t", kind="engine_http")
    for i in range(30):
        intended = i * 10 * MS
        start = intended + int(0.4 * MS)      # the probe woke 0.4 ms late
        sent = start + int(0.1 * MS)          # a connection was free 0.1 ms later
        b.add(intended, sent, start + 5 * MS, True, start_ns=start)
    s = summarize(b, 100.0, min_samples=20, late_bound_ms=1.0)
    assert s.p50 == 5.0 and s.service_p50 == 4.9 and s.lateness_p99_ms == 0.4
    assert s.achieved_rate_per_s == pytest.approx(100.0)
    assert s.valid and not s.inconclusive and s.replaced == 0


def test_start_defaults_to_intended() -> None:
    s = summarize(batch([5.0] * 30, interval_ms=10, late_ms=1.0), 100.0, min_samples=20)
    assert s.p50 == 5.0 and s.service_p50 == 4.0 and s.lateness_p99_ms == 0.0


def test_too_few_samples_is_invalid() -> None:
    s = summarize(batch([1.0] * 5), None, min_samples=20)
    assert not s.valid and not s.inconclusive
    assert s.invalid_reason == "too few samples: 5 < 20"


def test_replaced_samples_are_in_no_figure() -> None:
    b = SampleBatch(target="t", kind="engine_http")
    for i in range(40):
        intended = i * 10 * MS
        late = i % 4 == 0  # every fourth send was delayed 3 ms by the host: re-taken
        start = intended + (3 * MS if late else 0)
        b.add(intended, start, start + (50 * MS if late else MS), not late, start_ns=start,
              replaced=late)
    s = summarize(b, 100.0, min_samples=20, late_bound_ms=1.0)
    assert s.count == 30 and s.ok == 30 and s.success_ratio == 1.0 and s.replaced == 10
    assert s.max == 1.0 and s.lateness_p99_ms == 0.0
    assert s.valid and not s.inconclusive


def test_host_delayed_samples_still_counted_make_it_inconclusive() -> None:
    """Once the re-take budget is spent, delayed samples are counted (retake.py): nobody can
    tell what the target would have shown, so the summary is inconclusive (neither pass nor
    breach)."""
    b = SampleBatch(target="t", kind="engine_http")
    for i in range(30):
        intended = i * 10 * MS
        b.add(intended, intended, intended + MS, True, replaced=i in (1, 2))
    s = summarize(b, 100.0, min_samples=20, late_bound_ms=1.0, host_delayed=2)
    assert s.inconclusive and not s.valid
    assert s.invalid_reason == ("inconclusive: the probe host delayed 2 more sample(s) by "
                                "over 1 ms after 2 re-take(s) had used the budget")
    assert summarize(b, 100.0, min_samples=20).valid


def test_all_failed_is_a_valid_zero_success_without_latency() -> None:
    s = summarize(batch([1.0] * 30, ok=[False] * 30), None, min_samples=20)
    assert s.valid and s.success_ratio == 0.0 and s.p50 is None and s.mean is None


def test_guard_flags_only_a_gross_slowdown() -> None:
    together = summarize(batch([3.0] * 30), None, min_samples=20)
    assert slowed(together, 1.0, ratio=1.5, min_ms=0.2)
    assert not slowed(together, 2.5, ratio=1.5, min_ms=0.2)   # 1.2×: within the ratio
    assert not slowed(together, 1.0, ratio=1.5, min_ms=5.0)   # 2 ms more: under min_ms
    assert not slowed(together, None, ratio=1.5, min_ms=0.2)  # no window alone
    faster = summarize(batch([0.5] * 30), None, min_samples=20)
    assert not slowed(faster, 1.0, ratio=1.5, min_ms=0.2)
    few = summarize(batch([3.0] * 5), None, min_samples=20)   # not valid: not judged
    assert not slowed(few, 1.0, ratio=1.5, min_ms=0.2)
