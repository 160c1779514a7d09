"""The bench's CPU accounting: real processes read through /proc, and the marginal arithmetic
that turns two runs into a per-request cost (benchmarks are not tests; their bookkeeping is)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest

from bench.common import cpu_seconds
from bench.pipeline_bench import _marginal_cpu_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# Burns 0.5 s of CPU, then sleeps; the test waits for 0.4 s (/proc counts whole clock ticks).
BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n" \
       "time.sleep(30)"


def test_cpu_seconds_counts_a_busy_process_and_not_a_sleeping_one() -> None:
    busy = subprocess.Popen([sys.executable, "-c", BURN])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds([busy.pid]) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        burnt = cpu_seconds([busy.pid])
        assert 0.4 <= burnt < 2.0
        assert cpu_seconds([idle.pid]) < 0.3  # interpreter start-up only
        # Pids are counted once, and one that is gone adds nothing.
        assert cpu_seconds([busy.pid, busy.pid]) == pytest.approx(burnt, abs=0.05)
        assert cpu_seconds([busy.pid, 2**22 + 1]) == pytest.approx(burnt, abs=0.05)
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()


def test_marginal_cpu_per_request_cancels_fixed_costs() -> None:
    cores = os.cpu_count() or 1
    rows = _marginal_cpu_rows([("N=13", 5.0, 1.0, 1_300),
                               ("N=1000", 55.0, 31.0, 100_000),
                               ("N=1000 ×30 requests", 20.0, 9.0, 1_000)])  # fewer: skipped
    assert [r["metric"] for r in rows] == ["N=1000: CPU per engine request"]
    (r,) = rows
    per_request = (50.0 + 30.0) * 1e6 / (100_000 - 1_300)
    assert r["value"] == round(per_request)
    assert "dualbus 507 + stack 304 µs" in r["note"]
    assert f"≥ {per_request * 100_000 / 1e6 / cores:.1f} s" in r["note"]
    assert _marginal_cpu_rows([("N=13", 5.0, 1.0, 1_300)]) == []


def test_drift_is_taken_against_the_lower_baseline() -> None:
    from bench.common import row
    from bench.pipeline_bench import _drift_rows

    def p50(tag: str, value: float) -> dict[str, object]:
        return row("scale", f"{tag}: e0000 (1 ms delay) p50", value, "ms")

    rows = [p50("N=13", 73.2), p50("N=100", 2.0), p50("N=1000", 2.4),
            p50("N=1000 @5000/s", 300.0), p50("N=13 again", 1.9)]
    drift = {r["metric"]: r for r in _drift_rows(rows, 13, 1000)}
    # a disturbed first baseline (73 ms) must not turn 2.4 ms into "no drift"
    assert drift["e0000 p50 drift N=1000 vs N=13"]["value"] == round(2.4 / 1.9, 3)
    assert drift["e0000 p50 drift N=1000 vs N=13"]["met"] is False
    assert drift["e0000 p50 drift N=1000 @5000/s vs N=13"]["value"] == round(300 / 1.9, 3)
    assert set(drift) == {"e0000 p50 drift N=1000 vs N=13",
                          "e0000 p50 drift N=1000 @5000/s vs N=13"}
    assert _drift_rows([p50("N=1000", 2.4)], 13, 1000) == []


def test_median_interval_separates_a_shift_from_noise() -> None:
    from bench.verdict_bench import median_interval, outside

    assert median_interval([1.2] * 20) == (1.2, 1.2)
    noisy = [0.7, 1.3, 0.9, 1.1, 1.0, 0.8, 1.25, 0.95, 1.05, 1.15] * 2
    lo, hi = median_interval(noisy)
    assert lo <= statistics.median(noisy) <= hi
    assert lo < 1.0 < hi and not outside((lo, hi), 1.1)  # noise around 1: no verdict
    shifted = [x + 0.4 for x in noisy]  # every round 0.4 slower: a perturbation
    assert outside(median_interval(shifted), 1.1)
    assert outside(median_interval([x - 0.3 for x in noisy]), 1.1)  # faster, too
    assert median_interval(noisy) == median_interval(noisy)  # one seed, one interval
