"""Paced sends from a blocking thread (probes/paced.py) and re-takes (probes/retake.py).

The sends are plain functions here: the rules are about when the probe was ready, when the
previous send returned and what the host did meanwhile, which a function can make happen;
the real-bus versions are in tests/integration/test_probes_bus.py and test_probes_pair.py.
Lateness is forced with sleeps far longer than the bound, and every assertion holds whatever
else the host does (a busy host may add late windows; never remove one)."""

from __future__ import annotations

import time

from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.paced import paced_sends, retaken
from dualbus_pipeline.probes.retake import (
    HostWatch,
    budget,
    delayed_counted,
    replace_delayed,
)
from dualbus_pipeline.probes.timing import now_ns

MS = 1_000_000


def test_a_send_the_target_held_is_charged_from_its_due_time() -> None:
    """Send 2 blocks 30 ms (a stalled bus) while sends are due every 5 ms: the sends due
    meanwhile go out late and are charged from their due time — the wait is the target's —
    and the probe is not counted late for them."""
    def send(k: int, _due: int) -> str | None:
        if k == 2:
            time.sleep(0.030)
        return None

    watch = HostWatch.for_bound(20.0)
    out = paced_sends(10, 5 * MS, now_ns() + MS, watch=watch, send=send,
                      stopped=lambda: None)
    assert len(out) == 10
    for k in (3, 4, 5, 6, 7):  # due at +15..+35 ms, while send 2 held the thread until +40
        assert out.sent[k] > out.intended[k] + 3 * MS  # went out late ...
        assert 0 <= out.start[k] - out.intended[k] < 20 * MS  # ... charged from (near) due
    assert out.start[7] - out.intended[7] < out.sent[7] - out.intended[7]


def test_a_send_the_probe_host_delayed_leaves_a_late_window() -> None:
    """The thread is held up between sends (here by `stopped`, as another process holding the
    core would): the sample starts when the probe was ready, and the watch keeps the window."""
    calls = [0]

    def stopped() -> None:
        calls[0] += 1
        if calls[0] == 4:  # before send 3 is due
            time.sleep(0.025)

    watch = HostWatch.for_bound(10.0)
    out = paced_sends(8, 5 * MS, now_ns() + MS, watch=watch, send=lambda k, d: None,
                      stopped=stopped)
    assert out.start[3] - out.intended[3] > 10 * MS  # its own lateness, not charged
    assert (out.intended[3], out.start[3]) in watch.windows


def test_falling_behind_is_never_the_targets() -> None:
    """Every send is held up 12 ms by the probe side against a 5 ms period: the previous send
    returning after this one was due is then the probe's doing, not the target's."""
    def stopped() -> None:
        time.sleep(0.012)

    out = paced_sends(8, 5 * MS, now_ns(), watch=HostWatch.for_bound(2.0),
                      send=lambda k, d: None, stopped=stopped)
    assert all(s - i > 10 * MS for s, i in zip(out.start, out.intended, strict=True))


def test_stopped_sends_are_not_attempted() -> None:
    sent: list[int] = []

    def send(k: int, _due: int) -> str | None:
        sent.append(k)
        return None

    out = paced_sends(5, MS, now_ns(), watch=HostWatch.for_bound(50.0), send=send,
                      stopped=lambda: "bus given up" if len(sent) >= 2 else None, first_k=7)
    assert sent == [7, 8]  # numbered from first_k
    assert out.error == [None, None] + ["not attempted: bus given up"] * 3


def synthetic(n: int, late_ms: dict[int, float], stall_us: dict[int, int] | None = None,
              at: int = 0) -> SampleBatch:
    """n samples 10 ms apart, each 1 ms long; some late or stalled (by index)."""
    b = SampleBatch(target="t", kind="engine_http")
    for k in range(n):
        due = at + k * 10 * MS
        start = due + int(late_ms.get(k, 0.0) * MS)
        b.add(due, start, start + MS, True, start_ns=start,
              stall_us=(stall_us or {}).get(k, 0))
    return b


def test_a_sample_is_host_delayed_by_lateness_cpu_pressure_or_a_late_loop() -> None:
    watch = HostWatch.for_bound(1.0)
    b = synthetic(6, {1: 2.0}, {2: 1500})
    watch.woke(b.start_ns[4] + 100_000, b.start_ns[4] + 3 * MS)  # the loop froze meanwhile
    assert [watch.delayed(b, k) for k in range(6)] == [False, True, True, False, True, False]
    assert not watch.overlapped(b.start_ns[4] + 3 * MS + 1, b.start_ns[4] + 4 * MS)  # after it


def test_re_takes_replace_delayed_samples_within_the_budget() -> None:
    """10 samples, budget ceil(10 × 0.3) = 3: the first pass has 2 delayed samples, both
    replaced and taken again; one of the 2 new ones is delayed too, replaced (the third of the
    budget) and taken again: 10 counted in the end. A second series with 5 delayed samples
    replaces 3 and counts the other 2."""
    watch = HostWatch.for_bound(1.0)
    calls: list[tuple[int, int]] = []

    def measure(n: int, first_k: int) -> SampleBatch:
        calls.append((n, first_k))
        late = {2: 5.0, 6: 5.0} if first_k == 0 else {0: 5.0} if first_k == 10 else {}
        return synthetic(n, late, at=first_k * 10 * MS)

    batch, still = retaken(10, 0.3, watch, measure)
    assert calls == [(10, 0), (2, 10), (1, 12)]
    assert len(batch) == 13 and batch.replaced.count(1) == 3 and still == 0
    assert [k for k in range(13) if batch.replaced[k]] == [2, 6, 10]

    many = synthetic(10, {k: 5.0 for k in (1, 2, 3, 4, 5)})
    assert replace_delayed(many, watch, 0, budget(10, 0.3)) == 3
    assert [k for k in range(10) if many.replaced[k]] == [1, 2, 3]
    assert delayed_counted(many, watch) == 2
