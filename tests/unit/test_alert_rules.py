"""Pure alert rules: the cron reader (checked against Dagster's own cron iterator), the state
machine's transitions, routing, and secret masking of sink URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from dagster._utils.schedules import reverse_cron_string_iterator

from dualbus_pipeline.alerts.cron import interval_s, parse_cron, ticks_before
from dualbus_pipeline.alerts.notify import (
    AlertFacts,
    alert_notification,
    route,
    safe_sink_url,
    scrub,
)
from dualbus_pipeline.alerts.state import Policy, Verdict, advance, advance_inconclusive
from dualbus_pipeline.config import AlertSink

NOW = datetime(2025, 3, 30, 1, 30, 17, tzinfo=UTC)  # the night Europe/Paris jumps to DST


@pytest.mark.parametrize("cron", [
    "*/15 * * * *", "0 * * * *", "5 9 * * 1-5", "0 9,17 * * mon-fri", "30 2 * * *",
    "0 0 1 * *", "0 12 15 * 3", "*/7 3-5 * jan,mar *", "0 0 * * 7", "10-50/20 */5 * * *",
])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York"])
def test_cron_ticks_match_dagster(cron: str, tz: str) -> None:
    ours = [t.timestamp() for t in islice(ticks_before(cron, tz, NOW), 6)]
    # Dagster yields times up to end_timestamp; ours includes a tick exactly at `now`.
    theirs = [t.timestamp() for t in islice(
        reverse_cron_string_iterator(NOW.timestamp() + 1, cron, tz), 6)]
    assert ours == theirs


def test_cron_interval_and_errors() -> None:
    assert interval_s("*/15 * * * *", "UTC", NOW) == 900
    assert interval_s("0 9 * * 1-5", "UTC", datetime(2025, 3, 3, 10, tzinfo=UTC)) == 3 * 86400
    assert interval_s("0 9 * * 1-5", "UTC", datetime(2025, 3, 5, 10, tzinfo=UTC)) == 86400
    with pytest.raises(ValueError, match="minute field: 61 is out of range 0-59"):
        parse_cron("61 * * * *")
    with pytest.raises(ValueError, match="day-of-month field: 'L' is not a number"):
        parse_cron("0 0 L * *")


T = datetime(2025, 1, 1, tzinfo=UTC)
BAD = Verdict("s", "t", "error", passed=False, value=11.0, objective_text="< 10", grade="F")
GOOD = Verdict("s", "t", "error", passed=True, value=1.0, objective_text="< 10", grade="A")
UNKNOWN = Verdict("s", "t", "error", passed=False, value=1.0, objective_text="<= +10%",
                  grade=None, reason="pending baseline: 1 of 5 runs",
                  outcome="pending_baseline")
BLIND = Verdict("s", "t", "error", passed=False, value=None, objective_text="< 10", grade=None,
                reason="inconclusive: the probe host stayed overloaded", outcome="inconclusive")


def test_state_machine_transitions() -> None:
    p = Policy(for_runs=1, remind_every_s=3600)
    fired = advance(None, BAD, run_id="r1", now=T, policy=p)
    assert (fired.transition, fired.notify) == ("fired", "firing")
    assert fired.alert is not None and fired.alert.state == "firing"
    quiet = advance(fired.alert, BAD, run_id="r2", now=T + timedelta(minutes=59), policy=p)
    assert (quiet.transition, quiet.notify) == (None, None)
    assert quiet.alert is not None and quiet.alert.consecutive_breaches == 2
    remind = advance(quiet.alert, BAD, run_id="r3", now=T + timedelta(hours=1), policy=p)
    assert remind.notify == "reminder"
    assert advance(remind.alert, UNKNOWN, run_id="r4", now=T, policy=p).alert is None
    resolved = advance(remind.alert, GOOD, run_id="r5", now=T + timedelta(hours=2), policy=p)
    assert (resolved.transition, resolved.notify) == ("resolved", "resolved")
    assert advance(resolved.alert, GOOD, run_id="r6", now=T, policy=p).alert is None
    assert advance(None, GOOD, run_id="r1", now=T, policy=p).alert is None


def test_inconclusive_state_machine() -> None:
    p = Policy(for_runs=1, remind_every_s=3600, inconclusive_runs=2)
    assert advance(None, BLIND, run_id="r1", now=T, policy=p).alert is None  # not a breach
    one = advance_inconclusive(None, BLIND, run_id="r1", now=T, policy=p)
    assert (one.transition, one.notify) == ("pending", None)
    assert one.alert is not None and (one.alert.slo, one.alert.state, one.alert.severity,
                                      one.alert.consecutive_breaches) == (
        "s:inconclusive", "pending", "warning", 1)
    two = advance_inconclusive(one.alert, BLIND, run_id="r2", now=T, policy=p)
    assert (two.transition, two.notify) == ("fired", "inconclusive")
    assert two.alert is not None and two.alert.fired_at == T
    three = advance_inconclusive(two.alert, BLIND, run_id="r3", now=T + timedelta(days=1),
                                 policy=p)
    assert (three.transition, three.notify) == (None, None)  # no reminders for blindness
    assert three.alert is not None and three.alert.consecutive_breaches == 3
    assert advance_inconclusive(three.alert, UNKNOWN, run_id="r4", now=T,
                                policy=p).alert is None    # pending baseline: unchanged
    back = advance_inconclusive(three.alert, BAD, run_id="r5", now=T, policy=p)
    assert (back.transition, back.notify) == ("resolved", "inconclusive_resolved")
    assert back.alert is not None and back.alert.consecutive_breaches == 0
    assert advance_inconclusive(back.alert, GOOD, run_id="r6", now=T, policy=p).alert is None
    assert advance_inconclusive(None, GOOD, run_id="r1", now=T, policy=p).alert is None
    # pending, never fired: a conclusive verdict clears it without a notification
    quiet = advance_inconclusive(one.alert, GOOD, run_id="r2", now=T, policy=p)
    assert (quiet.transition, quiet.notify) == ("cleared", None)


@pytest.mark.parametrize(("verdict", "kind"), [
    (Verdict("s", "t", "error", passed=True, value=1.0, objective_text="", grade="A"), "pass"),
    (Verdict("s", "t", "error", passed=False, value=None, objective_text="", grade=None,
             reason="no data: unreachable"), "no_data"),
    (Verdict("s", "t", "error", passed=False, value=2.0, objective_text="", grade=None,
             reason="insufficient baseline: 1 of 5 runs"), "pending_baseline"),
    (Verdict("s", "t", "error", passed=False, value=2.0, objective_text="", grade="F"),
     "breach"),
    (Verdict("s", "t", "error", passed=False, value=2.0, objective_text="", grade=None,
             outcome="insufficient_baseline"), "pending_baseline"),
])
def test_verdicts_of_rows_stored_before_outcomes(verdict: Verdict, kind: str) -> None:
    assert verdict.kind == kind


def test_inconclusive_notification_contract() -> None:
    facts = AlertFacts("engine_latency_p99", "risk", "error", None, "< 10", None,
                       reason="inconclusive: host overloaded", in_a_row=3)
    n = alert_notification("inconclusive", facts, run_id="abc", report_path=None,
                           platform="P")
    assert n.title == "INCONCLUSIVE warning: engine_latency_p99 on risk"
    assert (n.notify_type, n.severity, n.kind) == ("warning", "warning", "inconclusive")
    assert "in 3 runs in a row" in n.body and "SLO: engine_latency_p99 (error)" in n.body
    assert "Reason: inconclusive: host overloaded" in n.body
    back = alert_notification("inconclusive_resolved", facts, run_id="abc", report_path=None,
                              platform="P")
    assert back.title == "RESOLVED (conclusive again) warning: engine_latency_p99 on risk"
    assert back.notify_type == "success" and "Reason:" not in back.body


def test_notification_contract() -> None:
    facts = AlertFacts("engine_latency_p99", "risk", "warning", 12.34567, "< 10", "D")
    n = alert_notification("reminder", facts, run_id="abc", report_path="/x/report.html",
                           platform="P")
    assert n.title == "FIRING (reminder) warning: engine_latency_p99 on risk"
    assert n.notify_type == "warning"
    assert "Value: 12.35" in n.body and "Report: /x/report.html" in n.body
    assert alert_notification("resolved", facts, run_id="abc", report_path=None,
                              platform="P").notify_type == "success"


def test_routing_globs_and_severity() -> None:
    sinks = [AlertSink(url="json://a:1/x", min_severity="error"),
             AlertSink(url="json://a:1/y", slos=["bus_*"], targets=["market*", "engine_logic"])]
    n = alert_notification("firing", AlertFacts("bus_ping", "marketdata", "warning", 1.0,
                                                "< 1", "C"),
                           run_id="r", report_path=None, platform="P")
    assert [i for i, _ in route(sinks, n)] == [1]


@pytest.mark.parametrize(("url", "shown", "hidden"), [
    ("json://user:pw123456@host:8080/hook", "json://user:***@host:8080/hook", ["pw123456"]),
    ("json://host/hook?+X-Api-Key=abcdef123", "json://host/hook?+X-Api-Key=***",
     ["abcdef123"]),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
     "slack://T...2/A...D/T...Q", ["T1JJ3T3L2", "TIiajkdnlazkcOXrIdevi7FQ"]),
    ("jsons://hooks.example.com/in/9f8a7b6c5d4e3f2a1b", "jsons://hooks.example.com/in/***",
     ["9f8a7b6c5d4e3f2a1b"]),
])
def test_sink_urls_are_masked(url: str, shown: str, hidden: list[str]) -> None:
    safe = safe_sink_url(url)
    assert safe.startswith(shown)
    err = scrub(f"POST to {url} failed; token {hidden[0]} rejected", url)
    for secret in hidden:
        assert secret not in safe and secret not in err
