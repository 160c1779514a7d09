"""Error budgets and multi-window, multi-burn-rate alerts on a synthetic history: real DuckDB,
the real evaluation (samples → good/total events → windows), real Apprise to a capture server.

The generator (`history`): one run a minute of one engine, 100 requests each; a run's "bad"
requests answer in 50 ms against the SLO's 10 ms line (p99 < 10 ms ⇒ 99 % of requests under
10 ms, a 1 % budget). The budget period is 1 day, so the workbook's windows scale by 1/30:

    page    2 min and 10 s  > 14.4        ticket  48 min and 4 min  > 3
    page    12 min and 1 min > 6          ticket  2.4 h and 12 min  > 1

Runs 0-9 are clean, 10-12 send half their requests over the line (burn 50×), then clean
again. Expected, run by run (windows hold runs that started within them, this one included):
run 0 holds one run in every long window (not judged); 1-9 ok; 10 pages (2 min: runs 9-10 at
25× and 10 s: run 10 at 50×, both over 14.4); 13 drops to a ticket (the 1 min short window is
clean, the 4 min one still holds runs 10-12); it stays a ticket while the 12 min short window
of the slow ticket rule holds run 12, and is ok from run 24 (12 min after it).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dualbus_pipeline.alerts import dispatch_alerts
from dualbus_pipeline.slospec.budget import Count, judge, rules_for, windows_for
from dualbus_pipeline.slospec.model import Budget, Objective, Slo
from dualbus_pipeline.store import Warehouse
from tests.integration.alerts.support import T0, CaptureSink, rows, topology
from tests.slo_builders import add_run, engine

P99 = Slo(name="lat", scope="engine", indicator="engine.latency_ms", aggregate="p99",
          objective=Objective(op="<", value=10), budget=Budget(period="1d", alerts="burn"))
BAD_RUNS = {10: 50, 11: 50, 12: 50}
EXPECTED = (["insufficient"] + ["ok"] * 9 + ["page"] * 3 + ["ticket"] * 11 + ["ok"] * 4)


def history(wh: Warehouse, sink: CaptureSink, runs: int,
            check_events: bool = True) -> list[str | None]:
    """Store, evaluate and dispatch `runs` runs a minute apart; the burn state of each."""
    topo = topology([sink.url()])
    states = []
    for i in range(runs):
        bad = BAD_RUNS.get(i, 0)
        at = T0 + timedelta(minutes=i)
        ev = add_run(wh, f"r{i:02d}", started_at=at, slos=[P99],
                     engines=[engine("risk", [0.2] * (100 - bad) + [50.0] * bad)])
        (r,) = ev.results
        if check_events:
            assert (r.good, r.total, r.sli_target) == (100 - bad, 100, 0.99)
        states.append(r.burn_state)
        dispatch_alerts(wh, f"r{i:02d}", topo, report_path=None, now=at,
                        alert_modes={"lat": "burn"})
    return states


def test_burn_rate_pages_then_tickets_then_resolves_at_the_right_runs(
        wh: Warehouse, sink: CaptureSink) -> None:
    assert history(wh, sink, len(EXPECTED)) == EXPECTED
    # one alert: fired as a page at run 10, kept firing through the ticket, resolved at 24
    assert sink.titles() == ["FIRING error: lat:burn on risk", "RESOLVED error: lat:burn on risk"]
    assert "burn rate 25.0× over 2m and 50.0× over 10s, both above 14.4× (page)" in \
        sink.posts[0].json["message"]
    assert rows(wh, "SELECT run_id, transition FROM alert_events ORDER BY event_at") == [
        ("r10", "fired"), ("r24", "resolved")]
    # budget.alerts: burn → no per-run breach alert although runs 10-12 breached p99 < 10
    assert rows(wh, "SELECT count(*) FROM alerts WHERE slo = 'lat'") == [(0,)]
    # each window's burn rate is stored: at run 10, 2 min holds runs 9-10 (50 bad of 200,
    # 25x), 1 min and 10 s hold run 10 alone (50x), the 1-day period runs 0-10
    ((windows,),) = rows(wh, "SELECT burn_windows FROM slo_results WHERE run_id = 'r10'")
    burns = json.loads(windows)
    assert list(burns) == ["1d", "2.4h", "48m", "12m", "4m", "2m", "1m", "10s"]
    assert (burns["2m"], burns["1m"], burns["10s"]) == (25.0, 50.0, 50.0)
    assert burns["1d"] == pytest.approx(50 / 1100 / 0.01)
    # the 1-day budget: 150 bad of 2,800 requests against 1 % allowed
    ((left,),) = rows(wh, "SELECT error_budget_remaining FROM slo_results WHERE run_id = 'r27'")
    assert left == pytest.approx(1 - (150 / 2800) / 0.01)


def test_windows_scale_with_the_period_and_factors_stay() -> None:
    week = rules_for(7 * 86400)
    assert [(r.severity, r.long_s, r.short_s, r.factor) for r in week] == [
        ("page", 3600 * 7 / 30, 300 * 7 / 30, 14.4), ("page", 6 * 3600 * 7 / 30, 420.0, 6.0),
        ("ticket", 86400 * 7 / 30, 7200 * 7 / 30, 3.0),
        ("ticket", 3 * 86400 * 7 / 30, 6 * 3600 * 7 / 30, 1.0)]
    assert windows_for(30 * 86400)[0] == 30 * 86400  # the period itself: the budget


def test_a_sparse_schedule_is_said_not_guessed() -> None:
    # hourly runs: the 1 h long window holds one run, so the fast page rule cannot be judged
    period = 30 * 86400.0
    counts = {w: Count(1 if w <= 3600 else 6, 90, 100) for w in windows_for(period)}
    b = judge(counts, 0.99, period)
    assert b.state == "page" and b.rule is not None and b.rule.long_s == 6 * 3600
    lonely = judge({w: Count(1, 90, 100) for w in windows_for(period)}, 0.99, period)
    assert lonely.state == "insufficient" and "1h holds 1 run" in lonely.text


def test_a_silence_keeps_maintenance_out_of_the_budget(wh: Warehouse,
                                                        sink: CaptureSink) -> None:
    from dualbus_pipeline.store import silences

    with wh.transaction() as con:  # the bad runs 10-12 were a planned restart
        silences.add(con, starts_at=T0 + timedelta(minutes=10),
                     ends_at=T0 + timedelta(minutes=12, seconds=30), target="risk", slo="lat",
                     reason="planned restart", created_by=None, now=T0)
    states = history(wh, sink, 16, check_events=False)
    assert states[10:13] == [None, None, None] and set(states[1:]) - {None} == {"ok"}
    assert sink.posts == []
    assert rows(wh, "SELECT count(*) FROM slo_results WHERE total IS NULL") == [(3,)]
    ((text,),) = rows(wh, "SELECT burn_text FROM slo_results WHERE run_id = 'r11'")
    assert text == "silenced (#1: planned restart): left out of the budget"
