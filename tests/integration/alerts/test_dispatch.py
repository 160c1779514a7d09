"""dispatch_alerts end to end: real DuckDB file, real Apprise, real HTTP server capturing posts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from dualbus_pipeline.alerts import dispatch_alerts
from dualbus_pipeline.config import AlertSink
from dualbus_pipeline.store import Warehouse
from tests.integration.alerts.support import (
    T0,
    CaptureSink,
    Result,
    record_run,
    rows,
    topology,
)

BREACH = Result("engine_latency_p99", "risk", passed=False, value=12.5, grade="F")
PASS = Result("engine_latency_p99", "risk", passed=True, value=4.0, grade="A")


def test_breach_fires_once_stays_quiet_then_resolves(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()])
    record_run(wh, "run-1", [BREACH], at=T0)
    s1 = dispatch_alerts(wh, "run-1", topo, report_path="/r/run-1/report.html", now=T0)
    assert (s1.fired, s1.delivered, s1.pending) == (1, 1, 0)
    assert len(sink.posts) == 1
    post = sink.posts[0].json
    assert post["title"] == "FIRING error: engine_latency_p99 on risk"
    assert post["type"] == "failure"
    for needle in ("Value: 12.5", "Objective: < 10", "Grade: F", "Run: run-1",
                   "Report: /r/run-1/report.html", "Target: risk"):
        assert needle in post["message"], needle

    record_run(wh, "run-2", [BREACH], at=T0 + timedelta(minutes=15))
    s2 = dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=15))
    assert (s2.fired, s2.reminded, s2.resolved) == (0, 0, 0)
    assert len(sink.posts) == 1  # same breach, next run: nothing

    record_run(wh, "run-3", [PASS], at=T0 + timedelta(minutes=30))
    s3 = dispatch_alerts(wh, "run-3", topo, report_path="/r/3", now=T0 + timedelta(minutes=30))
    assert s3.resolved == 1
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk",
                             "RESOLVED error: engine_latency_p99 on risk"]
    assert sink.posts[1].json["type"] == "success"
    assert "Run: run-3" in sink.posts[1].json["message"]

    events = rows(wh, "SELECT run_id, transition FROM alert_events ORDER BY event_at")
    assert events == [("run-1", "fired"), ("run-3", "resolved")]
    state = rows(wh, "SELECT state, first_breach_run, last_run FROM alerts")
    assert state == [("resolved", "run-1", "run-3")]

    # The next breach after a resolve fires again.
    record_run(wh, "run-4", [BREACH], at=T0 + timedelta(minutes=45))
    dispatch_alerts(wh, "run-4", topo, report_path=None, now=T0 + timedelta(minutes=45))
    assert sink.titles()[-1] == "FIRING error: engine_latency_p99 on risk"
    assert len(sink.posts) == 3


def test_redispatching_the_same_run_sends_nothing_new(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], remind_every="1s")
    record_run(wh, "run-1", [BREACH])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    again = dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0 + timedelta(hours=1))
    assert (again.fired, again.reminded) == (0, 0)
    assert len(sink.posts) == 1


def test_reminder_at_most_every_remind_every(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], remind_every="1s")
    for i, dt in enumerate([0.0, 0.5, 2.0, 2.6, 3.5]):
        run = f"run-{i}"
        record_run(wh, run, [BREACH], at=T0 + timedelta(seconds=dt))
        dispatch_alerts(wh, run, topo, report_path=None, now=T0 + timedelta(seconds=dt))
    assert sink.titles() == [
        "FIRING error: engine_latency_p99 on risk",             # t=0
        "FIRING (reminder) error: engine_latency_p99 on risk",  # t=2.0 (>=1s since t=0)
        "FIRING (reminder) error: engine_latency_p99 on risk",  # t=3.5 (>=1s since t=2.0)
    ]
    assert "Firing since:" in sink.posts[1].json["message"]
    assert [r[0] for r in rows(wh, "SELECT transition FROM alert_events ORDER BY event_at")] \
        == ["fired", "reminded", "reminded"]


def test_warning_severity_uses_warning_type(wh: Warehouse, sink: CaptureSink) -> None:
    warn = Result("bus_throughput", "marketdata", passed=False, value=900.0, severity="warning")
    record_run(wh, "run-1", [warn])
    dispatch_alerts(wh, "run-1", topology([sink.url()]), report_path=None, now=T0)
    post = sink.posts[0].json
    assert post["title"] == "FIRING warning: bus_throughput on marketdata"
    assert post["type"] == "warning"


def test_no_data_has_its_own_alert_beside_the_breach_alert(wh: Warehouse,
                                                           sink: CaptureSink) -> None:
    topo = topology([sink.url()])
    blind = Result("engine_latency_p99", "risk", passed=False, value=None,
                   reason="no data: no successful samples (100 of 100 failed)", outcome="no_data")
    for i, r in enumerate([BREACH, blind, blind, PASS]):
        record_run(wh, f"run-{i}", [r], at=T0 + timedelta(minutes=15 * i))
        dispatch_alerts(wh, f"run-{i}", topo, report_path=None,
                        now=T0 + timedelta(minutes=15 * i))
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk",
                             "NO DATA error: engine_latency_p99 on risk",
                             # one message for the run that brought data back and a pass
                             "RESOLVED: 2 alerts on Testplat"]
    nodata = sink.posts[1].json
    assert nodata["type"] == "failure" and "Value: no data" in nodata["message"]
    assert "Reason: no data: no successful samples (100 of 100 failed)" in nodata["message"]
    assert "- RESOLVED (data again) error: engine_latency_p99 on risk" in \
        sink.posts[2].json["message"]
    # while there was no data the breach alert kept its state: no resolve, no re-fire
    assert rows(wh, "SELECT slo, transition, run_id FROM alert_events ORDER BY event_at") == [
        ("engine_latency_p99", "fired", "run-0"),
        ("engine_latency_p99:nodata", "fired", "run-1"),
        ("engine_latency_p99", "resolved", "run-3"),
        ("engine_latency_p99:nodata", "resolved", "run-3")]


def test_pending_baseline_is_neither_breach_nor_pass(wh: Warehouse,
                                                      sink: CaptureSink) -> None:
    topo = topology([sink.url()])
    # written as rows were before outcomes were stored (outcome NULL, the old reason): the
    # new outcome column (test_inconclusive.py) and these old rows read the same
    unknown = Result("engine_latency_p99", "risk", passed=False, value=3.0, grade=None,
                     reason="insufficient baseline: 2 of 5 runs")
    record_run(wh, "run-1", [unknown])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    assert sink.posts == [] and rows(wh, "SELECT * FROM alerts") == []
    record_run(wh, "run-2", [BREACH], at=T0 + timedelta(minutes=1))
    dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=1))
    # A firing alert does not resolve on an unjudged result.
    record_run(wh, "run-3", [unknown], at=T0 + timedelta(minutes=2))
    s = dispatch_alerts(wh, "run-3", topo, report_path=None, now=T0 + timedelta(minutes=2))
    assert s.resolved == 0
    assert rows(wh, "SELECT state, last_run FROM alerts") == [("firing", "run-2")]


def test_for_runs_damps_flapping(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], for_runs=3)
    sequence = [BREACH, BREACH, PASS, BREACH, BREACH, BREACH, BREACH]
    states = []
    for i, r in enumerate(sequence):
        run = f"run-{i}"
        record_run(wh, run, [r], at=T0 + timedelta(minutes=i))
        dispatch_alerts(wh, run, topo, report_path=None, now=T0 + timedelta(minutes=i))
        states.append(rows(wh, "SELECT state FROM alerts")[0][0])
    assert states == ["pending", "pending", "resolved", "pending", "pending", "firing", "firing"]
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk"]
    transitions = rows(wh, "SELECT run_id, transition FROM alert_events ORDER BY event_at")
    assert transitions == [("run-0", "pending"), ("run-2", "cleared"), ("run-3", "pending"),
                           ("run-5", "fired")]


def test_sink_down_keeps_alert_in_outbox_until_it_returns(
        wh: Warehouse, sink_factory: Callable[..., CaptureSink]) -> None:
    down = sink_factory(start=False)
    topo = topology([down.url()])
    record_run(wh, "run-1", [BREACH])
    s1 = dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)  # must not raise
    assert (s1.fired, s1.delivered, s1.pending) == (1, 0, 1)
    (attempts, nxt, err), = rows(wh, "SELECT attempts, next_attempt_at, last_error FROM outbox")
    assert attempts == 3  # one try plus two quick retries
    assert nxt > T0 and err

    down.start()  # the sink comes back
    # Still backing off: a new notification for that sink does not overtake the old one.
    record_run(wh, "run-2", [PASS], at=T0 + timedelta(seconds=10))
    s2 = dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(seconds=10))
    assert (s2.resolved, s2.delivered, s2.pending) == (1, 0, 2)
    assert down.posts == []

    record_run(wh, "run-3", [PASS], at=T0 + timedelta(minutes=2))
    s3 = dispatch_alerts(wh, "run-3", topo, report_path=None, now=T0 + timedelta(minutes=2))
    assert (s3.delivered, s3.pending) == (2, 0)
    assert down.titles() == ["FIRING error: engine_latency_p99 on risk",
                             "RESOLVED error: engine_latency_p99 on risk"]
    assert rows(wh, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == [(0,)]


def test_undelivered_notifications_expire(wh: Warehouse,
                                          sink_factory: Callable[..., CaptureSink]) -> None:
    down = sink_factory(start=False)
    topo = topology([down.url()], outbox_expiry="1h")
    record_run(wh, "run-1", [BREACH])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    down.start()
    record_run(wh, "run-2", [BREACH], at=T0 + timedelta(hours=2))
    s = dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(hours=2))
    assert (s.delivered, s.pending) == (0, 0)
    assert down.posts == []
    assert rows(wh, "SELECT expired_at IS NOT NULL, delivered_at FROM outbox") == [(True, None)]


def test_routing_by_severity_and_slo_target_filters(wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([
        AlertSink(url=sink.url("/errors"), min_severity="error"),
        AlertSink(url=sink.url("/engines"), min_severity="warning", slos=["engine_*"]),
        AlertSink(url=sink.url("/risk"), targets=["risk"]),
        AlertSink(url=sink.url("/risk-errors"), min_severity="error", targets=["ri*"]),
    ], group_by="alert")  # one message per alert change, to see each routed alone
    record_run(wh, "run-1", [
        Result("engine_latency_p99", "ml", passed=False, severity="warning"),
        Result("bus_throughput", "marketdata", passed=False, severity="error"),
        Result("engine_success", "risk", passed=False, severity="warning"),
        Result("engine_latency_p99", "risk", passed=True, severity="error"),
    ])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    assert sink.titles("/errors") == ["FIRING error: bus_throughput on marketdata"]
    assert sorted(sink.titles("/engines")) == ["FIRING warning: engine_latency_p99 on ml",
                                               "FIRING warning: engine_success on risk"]
    assert sink.titles("/risk") == ["FIRING warning: engine_success on risk"]
    assert sink.titles("/risk-errors") == []


def test_sink_secrets_are_used_but_never_stored_or_shown(
        wh: Warehouse, sink_factory: Callable[..., CaptureSink], tmp_path: object,
        capsys: object) -> None:
    down = sink_factory(start=False)
    url = down.url(userinfo="alice:s3cr3tpw", query="+X-Api-Key=k3yk3yk3y")
    topo = topology([url])
    record_run(wh, "run-1", [BREACH])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)  # fails: error recorded
    down.start()
    record_run(wh, "run-2", [PASS], at=T0 + timedelta(minutes=5))
    dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=5))
    # Delivered with the real credentials...
    assert len(down.posts) == 2
    assert down.posts[0].headers["X-Api-Key"] == "k3yk3yk3y"
    assert down.posts[0].headers["Authorization"].startswith("Basic ")
    # ...which appear nowhere in the warehouse.
    dump = ""
    for table in ("alerts", "alert_events", "outbox"):
        dump += repr(rows(wh, f"SELECT * FROM {table}"))
    assert "s3cr3tpw" not in dump and "k3yk3yk3y" not in dump
    assert "json://alice:***@127.0.0.1" in dump
    assert "+X-Api-Key=***" in dump
    assert "Connection refused" in dump or "onnect" in dump  # the error was kept, scrubbed


def test_keep_firing_for_stops_a_flapping_verdict_from_paging_twice(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], keep_firing_for=3)
    verdicts = [BREACH, PASS, BREACH, PASS, PASS, PASS, PASS]
    states = []
    for i, r in enumerate(verdicts):
        record_run(wh, f"run-{i}", [r], at=T0 + timedelta(minutes=15 * i))
        dispatch_alerts(wh, f"run-{i}", topo, report_path=None,
                        now=T0 + timedelta(minutes=15 * i))
        states.append(rows(wh, "SELECT state, consecutive_passes FROM alerts")[0])
    # one page and one resolve, at the third passing run in a row (run-5)
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk",
                             "RESOLVED error: engine_latency_p99 on risk"]
    assert states == [("firing", 0), ("firing", 1), ("firing", 0), ("firing", 1),
                      ("firing", 2), ("resolved", 0), ("resolved", 0)]
    assert rows(wh, "SELECT run_id, transition FROM alert_events ORDER BY event_at") == [
        ("run-0", "fired"), ("run-5", "resolved")]


def test_alerts_of_a_removed_target_or_renamed_slo_resolve_with_that_reason(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], group_by="alert")
    ml = Result("engine_latency_p99", "ml", passed=False, value=30.0, grade="F")
    old_name = Result("engine_p99", "risk", passed=False, value=30.0, grade="F")
    record_run(wh, "run-1", [BREACH, ml, old_name])
    assert dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0).fired == 3
    # run-2: ml left the topology, engine_p99 was renamed; risk still breaches
    record_run(wh, "run-2", [BREACH], at=T0 + timedelta(minutes=15))
    s = dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=15))
    assert s.resolved == 2
    resolved = {p.title: p.json["message"] for p in sink.posts[3:]}
    assert set(resolved) == {"RESOLVED error: engine_latency_p99 on ml",
                             "RESOLVED error: engine_p99 on risk"}
    assert all("no longer evaluated" in m for m in resolved.values())
    assert rows(wh, "SELECT slo, target, state FROM alerts ORDER BY slo, target") == [
        ("engine_latency_p99", "ml", "resolved"), ("engine_latency_p99", "risk", "firing"),
        ("engine_p99", "risk", "resolved")]


def test_a_silence_holds_back_notifications_and_a_firing_alert_is_told_when_it_ends(
        wh: Warehouse, sink: CaptureSink) -> None:
    from dualbus_pipeline.store import silences

    topo = topology([sink.url()])
    with wh.transaction() as con:
        silences.add(con, starts_at=T0 - timedelta(minutes=1), ends_at=T0 + timedelta(hours=1),
                     target="ri*", slo=None, reason="kernel upgrade", created_by="ops",
                     now=T0)
    record_run(wh, "run-1", [BREACH], at=T0)
    s = dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    assert (s.fired, s.silenced) == (0, 1) and sink.posts == []
    assert rows(wh, "SELECT state, last_notified_at FROM alerts") == [("firing", None)]
    (detail,), = rows(wh, "SELECT detail FROM alert_events")
    assert "silenced by #1: kernel upgrade" in detail
    record_run(wh, "run-2", [BREACH], at=T0 + timedelta(minutes=30))
    dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=30))
    assert sink.posts == []  # still inside the window
    assert rows(wh, "SELECT count(*) FROM alert_events") == [(1,)]  # nothing new happened
    # the silence is over and the target still breaches: the page goes out now, once
    for i, minutes in enumerate((75, 90), start=3):
        record_run(wh, f"run-{i}", [BREACH], at=T0 + timedelta(minutes=minutes))
        dispatch_alerts(wh, f"run-{i}", topo, report_path=None,
                        now=T0 + timedelta(minutes=minutes))
    assert sink.titles() == ["FIRING error: engine_latency_p99 on risk"]


def test_one_message_per_run_and_sink_lists_what_fired_and_resolved(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([AlertSink(url=sink.url("/all")),
                     AlertSink(url=sink.url("/risk"), targets=["risk"])])  # group_by: run
    ml = Result("engine_latency_p99", "ml", passed=False, value=30.0, grade="F")
    lag = Result("bus_lag", "md", passed=False, value=2000.0, severity="warning")
    record_run(wh, "run-1", [BREACH, ml, lag])
    s = dispatch_alerts(wh, "run-1", topo, report_path="/r/run-1/report.html", now=T0)
    assert s.fired == 3 and len(sink.posts) == 2  # one per sink, not one per alert
    (group,) = [p for p in sink.posts if p.path == "/all"]
    assert group.title == "FIRING error: 3 alerts on Testplat"
    assert group.json["type"] == "failure"
    msg = group.json["message"].splitlines()
    assert msg[:3] == [
        "- FIRING warning: bus_lag on md (value 2000 [engine.latency_ms], objective < 10)",
        "- FIRING error: engine_latency_p99 on ml (value 30 [engine.latency_ms], objective < 10)",
        "- FIRING error: engine_latency_p99 on risk (value 12.5 [engine.latency_ms], "
        "objective < 10)"]
    assert "Report: /r/run-1/report.html" in msg
    # the sink filtered to risk accepted one change: it gets that alert's own message
    assert sink.titles("/risk") == ["FIRING error: engine_latency_p99 on risk"]

    record_run(wh, "run-2", [PASS, ml, Result("bus_lag", "md", passed=True, value=5.0,
                                              severity="warning")],
               at=T0 + timedelta(minutes=15))
    dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=15))
    # ml still fires (no reminder due): only the two resolves, grouped where there are two
    assert sink.titles("/all")[1:] == ["RESOLVED: 2 alerts on Testplat"]
    assert sink.titles("/risk")[1:] == ["RESOLVED error: engine_latency_p99 on risk"]
    assert all(p.json["type"] == "success" for p in sink.posts[2:])
