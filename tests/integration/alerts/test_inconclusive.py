"""Inconclusive alerts end to end: real DuckDB file, real Apprise, real HTTP capture server.

An inconclusive verdict alerts only after `alerting.inconclusive_runs` inconclusive runs in a
row of that SLO × target, as its own kind (INCONCLUSIVE, warning), and resolves at the next
conclusive verdict; it never touches the breach alert; pending baseline never alerts."""

from __future__ import annotations

from datetime import timedelta

from dualbus_pipeline.alerts import DispatchSummary, dispatch_alerts
from dualbus_pipeline.config import AlertSink, Topology
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store import alerts as store
from tests.integration.alerts.support import (
    T0,
    CaptureSink,
    Result,
    record_run,
    rows,
    topology,
)

WHY = "inconclusive: the probe host delayed 3 more send(s) by over 1 ms"
BLIND = Result("engine_latency_p99", "risk", passed=None, value=None, reason=WHY,
               outcome="inconclusive")
PASS = Result("engine_latency_p99", "risk", passed=True, value=4.0, grade="A", outcome="pass")
BREACH = Result("engine_latency_p99", "risk", passed=False, value=12.5, grade="F",
                outcome="breach")
PENDING = Result("engine_latency_p99", "risk", passed=None, value=3.0,
                 reason="pending baseline: 2 of 5 runs", outcome="pending_baseline")
FIRED = "INCONCLUSIVE warning: engine_latency_p99 on risk"
BACK = "RESOLVED (conclusive again) warning: engine_latency_p99 on risk"


def run(wh: Warehouse, i: int, result: Result, topo: Topology) -> DispatchSummary:
    at = T0 + timedelta(minutes=15 * i)
    record_run(wh, f"run-{i}", [result], at=at)
    return dispatch_alerts(wh, f"run-{i}", topo, report_path=f"/r/run-{i}", now=at)


def test_fires_after_n_inconclusive_runs_and_resolves_when_conclusive(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], inconclusive_runs=3)
    for i in (1, 2):
        s = run(wh, i, BLIND, topo)
        assert s.inconclusive == 0
    assert sink.posts == []
    assert rows(wh, "SELECT slo, state, consecutive_breaches FROM alerts") == [
        ("engine_latency_p99:inconclusive", "pending", 2)]
    s3 = run(wh, 3, BLIND, topo)
    assert s3.inconclusive == 1
    assert sink.titles() == [FIRED]
    post = sink.posts[0].json
    assert post["type"] == "warning"
    for needle in ("could not judge this SLO in 3 runs in a row", "SLO: engine_latency_p99 "
                   "(error)", f"Reason: {WHY}", "Run: run-3", "Report: /r/run-3"):
        assert needle in post["message"], needle
    run(wh, 4, BLIND, topo)           # still blind: no reminder, no second notification
    assert sink.titles() == [FIRED]
    s5 = run(wh, 5, PASS, topo)
    assert s5.resolved == 1
    assert sink.titles() == [FIRED, BACK] and sink.posts[1].json["type"] == "success"
    # the breach alert never existed: a pass with no breach behind it changes nothing
    assert rows(wh, "SELECT slo, state FROM alerts") == [
        ("engine_latency_p99:inconclusive", "resolved")]
    events = rows(wh, "SELECT run_id, slo, transition FROM alert_events ORDER BY event_at")
    assert events == [("run-1", "engine_latency_p99:inconclusive", "pending"),
                      ("run-3", "engine_latency_p99:inconclusive", "fired"),
                      ("run-5", "engine_latency_p99:inconclusive", "resolved")]


def test_a_conclusive_run_resets_the_count_and_pending_baseline_does_not(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], inconclusive_runs=2)
    run(wh, 1, BLIND, topo)
    run(wh, 2, BREACH, topo)          # conclusive: the count starts again (quietly)
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk"]
    run(wh, 3, BLIND, topo)
    run(wh, 4, PENDING, topo)         # not a verdict either way: changes nothing
    assert rows(wh, "SELECT state, consecutive_breaches FROM alerts WHERE slo = "
                "'engine_latency_p99:inconclusive'") == [("pending", 1)]
    run(wh, 5, BLIND, topo)
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk", FIRED]
    # the breach alert stays firing through inconclusive and pending runs
    assert rows(wh, "SELECT state, last_run FROM alerts WHERE slo = 'engine_latency_p99'") \
        == [("firing", "run-2")]
    transitions = rows(wh, "SELECT run_id, transition FROM alert_events WHERE slo = "
                       "'engine_latency_p99:inconclusive' ORDER BY event_at")
    assert transitions == [("run-1", "pending"), ("run-2", "cleared"), ("run-3", "pending"),
                           ("run-5", "fired")]


def test_pending_baseline_never_alerts(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], inconclusive_runs=1)
    for i in range(1, 4):
        run(wh, i, PENDING, topo)
    assert sink.posts == [] and rows(wh, "SELECT * FROM alerts") == []


def test_routing_of_inconclusive_alerts(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([AlertSink(url=sink.url("/errors"), min_severity="error"),
                     AlertSink(url=sink.url("/engines"), slos=["engine_latency_p99"]),
                     AlertSink(url=sink.url("/bus"), slos=["bus_*"])],
                    inconclusive_runs=1)
    run(wh, 1, BLIND, topo)
    # warning severity: not for an error-only sink; the SLO filter matches the SLO's own name
    assert sink.titles("/errors") == [] and sink.titles("/bus") == []
    assert sink.titles("/engines") == [FIRED]


def test_alert_listing_keeps_breach_and_inconclusive_deliveries_apart(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], inconclusive_runs=1)
    run(wh, 1, BREACH, topo)
    run(wh, 2, BLIND, topo)
    with wh.connect() as con:
        latest = store.latest_deliveries(con)
    assert sorted((d["slo"], d["kind"]) for d in latest) == [
        ("engine_latency_p99", "firing"), ("engine_latency_p99", "inconclusive")]
    assert all(d["delivered_at"] is not None for d in latest)
