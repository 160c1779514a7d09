"""Paced sends from a blocking thread (probes/paced.py): what each sample is charged from, and
re-takes (probes/retake.py). The sends are plain functions here: the rules are about when the
probe was ready and when the previous send returned, which a function can make happen; the
real-bus versions are in tests/integration/test_probes_bus.py and test_probes_pair.py.

Lateness is forced with sleeps far longer than the bound, and every assertion holds whatever
else the host does (a busy host may add re-takes; never remove one)."""

from __future__ import annotations

import time

from dualbus_pipeline.probes.paced import paced_sends
from dualbus_pipeline.probes.retake import Retakes
from dualbus_pipeline.probes.timing import now_ns

MS = 1_000_000


def test_retake_budget_is_a_fraction_of_the_schedule_rounded_up() -> None:
    r = Retakes.for_schedule(10, late_bound_ms=1.0, fraction=0.25)
    assert r.budget == 3 and r.bound_ns == MS
    assert not r.replace(MS)  # at the bound: on time
    assert [r.replace(2 * MS) for _ in range(4)] == [True, True, True, False]
    assert r.used == 3


def test_a_send_the_target_held_is_charged_from_its_due_time() -> None:
    """Send 2 blocks 30 ms (a stalled bus) while sends are due every 5 ms: the sends due
    meanwhile go out late, and are charged from their due time — the wait is the target's."""
    def send(k: int, _due: int) -> str | None:
        if k == 2:
            time.sleep(0.030)
        return None

    out = paced_sends(10, 5 * MS, now_ns() + MS, late_bound_ms=20.0, retake_fraction=0.0,
                      send=send, stopped=lambda: None)
    assert len(out) == 10 and not any(out.replaced)
    for k in (3, 4, 5, 6, 7):  # due at +15..+35 ms, while send 2 held the thread until +40
        assert out.sent[k] > out.intended[k] + 3 * MS  # went out late ...
        assert 0 <= out.start[k] - out.intended[k] < 20 * MS  # ... charged from (near) due
    assert out.start[7] - out.intended[7] < out.sent[7] - out.intended[7]


def test_a_send_the_probe_host_delayed_is_re_taken() -> None:
    """The thread is held up between sends (here by `stopped`, as another process holding the
    core would): the sample starts when the probe was ready, is flagged and sent again at the
    end of the schedule."""
    calls = [0]

    def stopped() -> None:
        calls[0] += 1
        if calls[0] == 4:  # before send 3 is due
            time.sleep(0.025)

    out = paced_sends(8, 5 * MS, now_ns() + MS, late_bound_ms=10.0, retake_fraction=0.5,
                      send=lambda k, d: None, stopped=stopped)
    assert out.replaced[3]
    assert out.start[3] - out.intended[3] > 10 * MS  # its own lateness, not charged
    assert len(out) == 8 + sum(out.replaced)  # one more send per re-take
    assert out.intended == [out.intended[0] + k * 5 * MS for k in range(len(out))]


def test_re_takes_stop_at_the_budget_and_falling_behind_is_never_the_targets() -> None:
    """Every send is held up 12 ms by the probe side against a 5 ms period: the probe falls
    further behind each time. The previous send returning after this one was due is then the
    probe's doing, not the target's: every sample is late, two are re-taken (ceil(8 × 0.25))
    and the rest are counted late (the summary would be inconclusive)."""
    def stopped() -> None:
        time.sleep(0.012)

    out = paced_sends(8, 5 * MS, now_ns(), late_bound_ms=2.0, retake_fraction=0.25,
                      send=lambda k, d: None, stopped=stopped)
    assert sum(out.replaced) == 2 and len(out) == 10
    assert all(s - i > 10 * MS for s, i in zip(out.start, out.intended, strict=True))


def test_stopped_sends_are_not_attempted() -> None:
    sent: list[int] = []

    def send(k: int, _due: int) -> str | None:
        sent.append(k)
        return None

    out = paced_sends(5, MS, now_ns(), late_bound_ms=50.0, retake_fraction=0.0, send=send,
                      stopped=lambda: "bus given up" if len(sent) >= 2 else None)
    assert sent == [0, 1]
    assert out.error == [None, None] + ["not attempted: bus given up"] * 3
