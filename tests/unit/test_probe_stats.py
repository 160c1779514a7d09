"""Exact percentiles (nearest rank) and the validity rules of a summary."""

from __future__ import annotations

import sys

import pytest

from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.stats import percentile, summarize

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


def test_latency_from_intended_and_service_from_sent() -> None:
    s = summarize(batch([5.0] * 30, interval_ms=10, late_ms=1.0), 100.0, min_samples=20)
    assert s.p50 == 5.0 and s.service_p50 == 4.0
    assert s.lateness_p99_ms == 1.0
    assert s.achieved_rate_per_s == pytest.approx(100.0)
    assert s.valid  # 1 ms lateness < 50 % of 5 ms


def test_too_few_samples_is_invalid() -> None:
    s = summarize(batch([1.0] * 5), None, min_samples=20)
    assert not s.valid and s.invalid_reason == "too few samples: 5 < 20"


def test_lateness_comparable_to_latency_is_invalid() -> None:
    s = summarize(batch([0.2] * 50, late_ms=0.15), None, min_samples=20)
    assert not s.valid
    assert s.invalid_reason == (
        "probe scheduling lateness p50 0.150 ms exceeds 25% of the measured p50 0.200 ms; "
        "probe scheduling lateness p99 0.150 ms exceeds 50% of the measured p99 0.200 ms")


def test_one_late_send_in_a_hundred_does_not_condemn_the_run() -> None:
    b = SampleBatch(target="t", kind="engine_http")
    for i in range(100):
        intended = i * 5 * MS
        late = int(0.6 * MS) if i == 0 else 10_000  # one 0.6 ms hiccup, else 10 µs
        b.add(intended, intended + late, intended + late + int(0.25 * MS), True)
    s = summarize(b, 200.0, min_samples=20)
    assert s.valid, s.invalid_reason
    # ...but lateness in the tail comparable to the tail latency does
    b2 = SampleBatch(target="t", kind="engine_http")
    for i in range(100):
        intended = i * 5 * MS
        late = int(0.6 * MS) if i < 5 else 10_000
        b2.add(intended, intended + late, intended + late + int(0.25 * MS), True)
    s2 = summarize(b2, 200.0, min_samples=20)
    assert not s2.valid and "lateness p99 0.600 ms exceeds 50% of the measured p99 0.850 ms" \
        in (s2.invalid_reason or "")


def test_rate_far_below_intended_is_invalid() -> None:
    s = summarize(batch([1.0] * 50, interval_ms=10), 1000.0, min_samples=20)
    assert s.achieved_rate_per_s == pytest.approx(100.0)
    assert not s.valid and "below 50% of the intended 1000.0/s" in (s.invalid_reason or "")


def test_all_failed_is_a_valid_zero_success_without_latency() -> None:
    s = summarize(batch([1.0] * 30, ok=[False] * 30), None, min_samples=20)
    assert s.valid and s.success_ratio == 0.0 and s.p50 is None and s.mean is None


def test_waiting_for_a_connection_is_the_targets_latency_not_probe_lateness() -> None:
    """A slow target makes requests wait for a free connection: sent late, dispatched on time.
    That wait stays in the latency and must not be mistaken for the probe falling behind."""
    b = SampleBatch(target="t", kind="engine_http")
    for i in range(100):
        intended = i * 5 * MS
        sent = intended + int(0.4 * MS)  # waited 0.4 ms for a connection
        b.add(intended, sent, sent + int(0.3 * MS), True)
        b.dispatch_ns.append(intended + 5_000)  # the timer fired 5 µs late
    s = summarize(b, 200.0, min_samples=20)
    assert s.valid, s.invalid_reason
    assert s.p50 == 0.7 and s.lateness_p99_ms == 0.005
    late = SampleBatch(target="t", kind="engine_http", dispatch_ns=[])
    for i in range(100):
        intended = i * 5 * MS
        late.add(intended, intended + int(0.4 * MS), intended + int(0.7 * MS), True)
        late.dispatch_ns.append(intended + int(0.4 * MS))  # the probe itself was late
    assert not summarize(late, 200.0, min_samples=20).valid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl timer slack is Linux's")
def test_timer_slack_is_lowered_without_spawning_a_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import subprocess
    import threading

    from dualbus_pipeline.probes import timing

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("lower_timer_slack spawned a process")

    # ctypes.util.find_library forks `ldconfig -p`: it must not run while probes time.
    monkeypatch.setattr(subprocess, "Popen", refuse)
    timing._libc.cache_clear()
    got: dict[str, int] = {}

    def body() -> None:
        timing.lower_timer_slack()
        got["slack_ns"] = ctypes.CDLL(None).prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert got["slack_ns"] == 1
