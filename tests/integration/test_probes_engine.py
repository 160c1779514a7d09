"""Engine probe against real HTTP servers with injected behaviour (tests/probe_targets.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest

from dualbus_pipeline.config import Engine, EngineCapacity, ProbeSettings
from dualbus_pipeline.probes.engine import probe_engine, probe_engines_staggered
from dualbus_pipeline.probes.engine_prober import JUDGE_NOW_BYTES
from dualbus_pipeline.probes.engine_prober import WARMUP_REQUESTS as WARMUP
from dualbus_pipeline.probes.http import HttpParseError, ResponseParser
from dualbus_pipeline.probes.model import EngineResult
from dualbus_pipeline.stack.redis_server import free_port
from tests.fault_servers import FaultServers
from tests.probe_targets import closed_port, health_server, silent_server

# A generous late bound: these tests are about what engines do, and must hold while the
# other core is busy (re-takes have tests of their own: tests/unit/test_paced.py).
FAST = ProbeSettings(engine_requests=100, engine_rate_per_s=400, engine_timeout_s=0.5,
                     engine_hot_requests=0, late_bound_ms=50, retake_fraction=0.5)


def engine(url: str) -> Engine:
    return Engine(name="e1", url=url, bus="b", stream="s", group="g")


def probe(url: str, settings: ProbeSettings = FAST) -> EngineResult:
    return asyncio.run(probe_engine(engine(url), settings))


def test_delay_of_2ms_is_recovered() -> None:
    """The injected delay shows up as the difference from the same server without it.

    An absolute bound does not hold across machines: the loopback path of an idle aiohttp
    server here is 0.5-0.9 ms (process wake-ups), and time.sleep(0.002) takes 2.1-2.2 ms. 100/s:
    at 400/s a 2 ms blocking handler is ~90 % busy and the probe would measure its queue.
    """
    paced = FAST.model_copy(update={"engine_rate_per_s": 100})
    with health_server() as fast, health_server(delay_ms=2.0) as slow:
        base = probe(fast.url, paced)
        r = probe(slow.url, paced)
    s = r.summary
    assert r.status == "operational", r.status_reason
    assert s.p50 is not None and base.summary.p50 is not None
    assert 1.9 <= s.p50 - base.summary.p50 <= 2.8, (s, base.summary)
    assert s.count == 100 and s.ok == 100
    assert "few samples" not in (s.invalid_reason or "")
    assert s.service_p50 is not None and s.service_p50 <= s.p50
    assert len(r.samples) == 100 + s.replaced  # re-takes are kept, flagged
    assert r.samples.replaced.count(1) == s.replaced
    assert r.body_statuses == {"healthy": 100}


def test_error_share_is_recovered_and_degrades() -> None:
    with health_server(error_share=0.1) as srv:
        r = probe(srv.url, FAST.model_copy(update={"engine_requests": 200}))
    assert r.summary.success_ratio == pytest.approx(0.9, abs=0.01)
    assert r.status == "degraded" and "http 500" in r.status_reason
    counted = [st for st, rep in zip(r.samples.status, r.samples.replaced, strict=True)
               if not rep]
    assert counted.count(500) == 20


def test_majority_503_is_unhealthy() -> None:
    with health_server(status_code=503) as srv:
        r = probe(srv.url)
    assert r.status == "unhealthy" and r.summary.success_ratio == 0
    assert set(r.samples.error) == {"http 503"}


def test_body_status_unhealthy_is_unhealthy_and_degraded_body_degrades() -> None:
    with health_server(body_status="unhealthy") as srv:
        r = probe(srv.url)
    assert r.status == "unhealthy" and r.body_statuses == {"unhealthy": 100}
    with health_server(body_status="degraded") as srv:
        r = probe(srv.url)
    assert r.status == "degraded" and r.summary.success_ratio == 1.0


def test_chunked_and_plain_bodies_parse() -> None:
    with health_server(chunked=True) as srv:
        r = probe(srv.url)
    assert r.status == "operational" and r.body_statuses == {"healthy": 100}
    with health_server(body_status=None) as srv:
        r = probe(srv.url)
    assert r.status == "operational" and r.body_statuses == {}


@pytest.mark.parametrize("size", [100, 2 * JUDGE_NOW_BYTES])
def test_bodies_are_judged_whether_kept_for_later_or_judged_at_once(size: int) -> None:
    # small bodies are judged once the series is in, large ones as they arrive: both count
    pad = "x" * size
    with health_server(body=f'{{"status": "unhealthy", "pad": "{pad}"}}') as srv:
        r = probe(srv.url)
    assert r.status == "unhealthy" and r.body_statuses == {"unhealthy": 100}
    assert set(r.samples.error) == {"status unhealthy"}
    with health_server(body=f'{{"status": "healthy", "pad": "{pad}"}}') as srv:
        r = probe(srv.url)
    assert r.status == "operational" and r.body_statuses == {"healthy": 100}
    assert r.summary.success_ratio == 1.0


def test_refused_is_unreachable_quickly() -> None:
    t0 = time.monotonic()
    r = probe(f"http://127.0.0.1:{closed_port()}")
    assert r.status == "unreachable" and "refused" in r.status_reason
    assert r.summary.count == 100 and r.summary.ok == 0
    assert time.monotonic() - t0 < 10  # the schedule (0.25 s), never 100 timeouts (50 s)


def test_accepting_but_silent_server_times_out_in_bounded_time() -> None:
    settings = FAST.model_copy(update={"engine_timeout_s": 0.3})
    t0 = time.monotonic()
    with silent_server() as port:
        r = probe(f"http://127.0.0.1:{port}", settings)
    elapsed = time.monotonic() - t0
    assert r.status == "unhealthy" and set(r.samples.error) == {"timeout"}
    # schedule (100 at 400/s = 0.25 s) + one timeout; never 100 sequential timeouts (30 s)
    assert elapsed < 10


def test_keep_alive_closed_by_the_engine_between_requests_costs_no_sample() -> None:
    """The probe readies a connection before a send is due (engine_prober.py, `arm`); one the
    engine closes meanwhile is replaced, and its close is not charged to any sample."""
    settings = FAST.model_copy(update={"engine_requests": 20, "engine_rate_per_s": 20})
    port = free_port()
    servers = FaultServers({port: {"kind": "idle_close", "idle_s": 0.01}}).start()
    try:
        r = probe(f"http://127.0.0.1:{port}", settings)
    finally:
        servers.stop()
    assert r.status == "operational", r.status_reason
    assert r.summary.ok == r.summary.count == 20
    assert set(r.samples.error) == {None}


def test_open_loop_keeps_schedule_when_server_is_slow() -> None:
    # 50 ms per request at 200 req/s: a closed loop would send 10x slower. Open loop keeps
    # the rate (several connections), and latency from intended includes no hidden queueing.
    settings = FAST.model_copy(update={"engine_requests": 60, "engine_rate_per_s": 200})
    with health_server(delay_ms=50) as srv:
        r = probe(srv.url, settings)
    s = r.summary
    assert s.achieved_rate_per_s is not None and s.achieved_rate_per_s > 150
    assert s.p50 is not None and s.p50 >= 50


def test_engines_share_slots_on_one_grid_and_are_first_probed_alone() -> None:
    """Six engines, two slots (400/s budget ÷ 200/s): each engine first gets a window alone
    (its p50 is kept for the concurrency guard); then never more than two engines send at
    once, no two sends are due at the same instant, and an engine that follows another in its
    slot continues that slot's grid (a whole number of periods after the last send)."""
    # guard_min_ms: only a slowdown of a whole second re-measures an engine alone (its own
    # grid, tested below); host noise on a busy machine must not move a window off the grid
    settings = FAST.model_copy(update={"engine_requests": 20, "engine_rate_per_s": 200,
                                       "engine_max_send_rate_per_s": 400,
                                       "engine_solo_requests": 5, "min_samples": 5,
                                       "guard_min_ms": 1000})
    period = int(1e9 / 200)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(health_server()) for _ in range(6)]
        engines = [Engine(name=f"e{i}", url=srv.url, bus="b", stream="s", group="g")
                   for i, srv in enumerate(servers)]
        results = asyncio.run(probe_engines_staggered(engines, settings))
    assert [r.name for r in results] == [e.name for e in engines]
    assert all(r.summary.ok == 20 for r in results), [r.status_reason for r in results]
    assert all(r.summary.solo_p50 is not None for r in results)
    # the first pass: its 20 sends on the slot grid (re-takes of samples the busy host delayed
    # come after every engine, in a pass of their own on a new grid)
    windows = sorted((r.samples.intended_ns[0], r.samples.intended_ns[19]) for r in results)
    sends = [t for r in results for t in r.samples.intended_ns]
    assert len(set(sends)) == len(sends)
    for first, _ in windows:
        assert sum(1 for a, b in windows if a <= first <= b) <= 2
    t0 = windows[0][0]
    by_slot: dict[int, list[tuple[int, int]]] = {}
    for w in windows:  # two slots: half a period apart on the grid
        by_slot.setdefault(round((w[0] - t0) % period / (period / 2)) % 2, []).append(w)
    assert sorted(len(v) for v in by_slot.values()) == [3, 3]
    for slot in by_slot.values():
        for prev, nxt in itertools.pairwise(slot):
            gap = nxt[0] - prev[1]
            assert gap > 0 and gap % period == 0, (gap, period)


def test_a_single_engine_has_no_window_alone() -> None:
    with health_server() as srv:
        r = probe(srv.url, FAST.model_copy(update={"engine_requests": 20, "min_samples": 5}))
    assert r.summary.solo_p50 is None and len(r.samples) == 20 + r.summary.replaced


def test_an_engine_that_stalls_once_gives_one_slow_sample_not_an_invalid_summary() -> None:
    """The server blocks 60 ms on one request (a GC pause, a lock): that request is slow and
    charged (the engine made us wait); the summary stays valid and every other sample is
    untouched. 10/s: the next request is due after the stall is over."""
    settings = FAST.model_copy(update={"engine_requests": 30, "engine_rate_per_s": 10,
                                       "min_samples": 10})
    with health_server(stall_at=WARMUP + 15, stall_ms=60) as srv:
        r = probe(srv.url, settings)
    s = r.summary
    assert s.valid and s.ok == 30, s
    counted = [lat for lat, rep in zip(r.samples.latency_ms(), r.samples.replaced, strict=True)
               if not rep]
    slow = [lat for lat in counted if lat >= 60]
    assert len(slow) == 1 and s.max is not None and s.max >= 60, counted
    assert s.p50 is not None and s.p50 < 60


def test_hot_series_is_back_to_back_and_capped_by_max_rate() -> None:
    """The hot path: one request at a time on a warm connection, never faster than
    max_rate_per_s (a safety cap: 100/s here, so 10 requests span at least 90 ms)."""
    settings = FAST.model_copy(update={"engine_requests": 20, "engine_hot_requests": 10,
                                       "max_rate_per_s": 400, "min_samples": 5})
    with health_server(delay_ms=2) as srv:
        r = probe(srv.url, settings)
        capped = probe(srv.url, settings.model_copy(update={"engine_rate_per_s": 100,
                                                            "max_rate_per_s": 100}))
    assert r.hot is not None and r.hot_samples is not None
    assert r.hot_samples.kind == "engine_hot" and len(r.hot_samples) == 10
    assert r.hot.p50 is not None and r.hot.p50 >= 2.0
    for a, b in itertools.pairwise(r.hot_samples.sent_ns):
        assert b >= a  # one at a time: each sent after the previous was answered
    for k in range(1, 10):
        assert r.hot_samples.sent_ns[k] >= r.hot_samples.done_ns[k - 1]
    assert capped.hot_samples is not None
    span = capped.hot_samples.sent_ns[-1] - capped.hot_samples.sent_ns[0]
    assert span >= 9 * 10_000_000


def guard_settings(**update: float) -> ProbeSettings:
    """Two engines served by ONE blocking server (6 ms per request): alone each is served
    within its 10 ms period (4 ms to spare on a busy host); together a request arrives every
    5 ms and the queue grows without bound."""
    return FAST.model_copy(update={"engine_requests": 20, "engine_rate_per_s": 100,
                                   "engine_max_send_rate_per_s": 200,
                                   "engine_solo_requests": 5, "min_samples": 5,
                                   "engine_timeout_s": 2.0, "guard_ratio": 1.2,
                                   "guard_min_ms": 1.0, **update})


def test_guard_re_measures_alone_an_engine_that_concurrency_slows() -> None:
    with health_server(delay_ms=6) as srv:
        engines = [Engine(name=n, url=srv.url, bus="b", stream="s", group="g")
                   for n in ("left", "right")]
        results = asyncio.run(probe_engines_staggered(engines, guard_settings()))
    for r in results:
        s = r.summary
        assert s.note is not None and s.note.startswith("re-measured alone: "), s
        assert "engines in flight was" in s.note
        assert s.valid and not s.inconclusive and s.solo_p50 is not None
        # alone again: served within its period, not the growing queue of the together run
        assert s.p50 is not None and s.p50 < 2 * s.solo_p50


def test_guard_without_budget_makes_the_slowed_engine_inconclusive() -> None:
    with health_server(delay_ms=6) as srv:
        engines = [Engine(name=n, url=srv.url, bus="b", stream="s", group="g")
                   for n in ("left", "right")]
        results = asyncio.run(probe_engines_staggered(
            engines, guard_settings(remeasure_budget_s=0)))
    for r in results:
        s = r.summary
        assert s.inconclusive and not s.valid and s.note is None
        assert s.invalid_reason is not None and s.invalid_reason.startswith("inconclusive: ")
        assert "re-measure budget" in s.invalid_reason
        assert r.status == "operational"  # the engine answered: only its latency is unknown


def test_capacity_burst_measures_requests_per_second() -> None:
    settings = FAST.model_copy(update={"engine_requests": 20, "engine_capacity": EngineCapacity(
        enabled=True, connections=2, duration_s=0.3)})
    with health_server() as srv:
        r = probe(srv.url, settings)
    assert r.capacity_rps is not None and r.capacity_rps > 100


def test_response_parser_content_length_chunked_and_close() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
    assert not p.done
    p.feed(b"lo")
    assert p.done and p.body == b"hello" and p.keep_alive
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n")
    assert not p.done
    p.feed(b"0\r\n\r\n")
    assert p.done and p.body == b"abcde"
    p = ResponseParser()
    p.feed(b"HTTP/1.0 503 Busy\r\n\r\nbody")
    assert not p.done
    p.feed_eof()
    assert p.done and p.status == 503 and p.body == b"body" and not p.keep_alive
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HttpParseError):
        p.feed_eof()


def test_response_parser_interim_limits_and_errors() -> None:
    p = ResponseParser()  # an interim 100 Continue, then the real response
    p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
    assert p.done and p.status == 204 and p.body == b"" and p.headers == {"x-a": "1"}
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert p.done and not p.keep_alive
    p = ResponseParser()
    with pytest.raises(HttpParseError, match="headers too large"):
        p.feed(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
    p = ResponseParser()
    with pytest.raises(HttpParseError, match="body too large"):
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1_100_000)
    p = ResponseParser()
    with pytest.raises(HttpParseError):
        p.feed(b"SMTP ready\r\n\r\n")
    p = ResponseParser()
    with pytest.raises(HttpParseError):
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
