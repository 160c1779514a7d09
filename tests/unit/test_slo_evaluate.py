"""SLO evaluation against real DuckDB warehouses filled with known samples."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dualbus_pipeline.slospec import grading
from dualbus_pipeline.slospec.evaluate import SloResult
from dualbus_pipeline.slospec.gate import breach_line, gate_breaches, gate_failed
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import baselines, slo_queries
from dualbus_pipeline.store.warehouse import Warehouse
from tests.slo_builders import add_run, bus, engine, pair

NOW = datetime(2025, 8, 27, 3, 39, tzinfo=UTC)


def slo(name: str = "s", **kw: Any) -> Slo:
    base: dict[str, Any] = {"name": name, "scope": "engine", "indicator": "engine.latency_ms",
                            "aggregate": "p99", "objective": {"op": "<", "value": 10}}
    base.update(kw)
    return Slo.model_validate(base)


def nearest_rank(xs: list[float], q: float) -> float:
    """The q-quantile by nearest rank, written out: the ceil(q·n)-th smallest value."""
    s = sorted(xs)
    return s[max(1, math.ceil(round(q * len(s), 9))) - 1]


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_timeout_s=1)


def by(results: list[SloResult], slo_name: str, target: str) -> SloResult:
    return next(r for r in results if r.slo == slo_name and r.target == target)


LAT = [i * 0.01 for i in range(1, 1001)]  # 0.01 .. 10.00 ms, 1,000 successful samples


@pytest.mark.parametrize(("aggregate", "expected"), [
    ("mean", sum(LAT) / len(LAT)), ("min", 0.01), ("max", 10.0),
    ("p50", nearest_rank(LAT, 0.5)), ("p90", nearest_rank(LAT, 0.9)),
    ("p95", nearest_rank(LAT, 0.95)), ("p99", nearest_rank(LAT, 0.99)),
    ("p999", nearest_rank(LAT, 0.999)),
])
def test_every_latency_aggregate_over_raw_successful_samples(wh: Warehouse, aggregate: str,
                                                             expected: float) -> None:
    # The failed samples are slow; they must not leak into the latency distribution.
    ev = add_run(wh, "r1", engines=[engine("risk", LAT, failed=[900.0] * 10)],
                 slos=[slo(aggregate=aggregate, objective={"op": "<", "value": 100})])
    r = by(ev.results, "s", "risk")
    assert r.value == pytest.approx(expected, rel=1e-9)
    assert r.passed and r.outcome == "pass" and r.samples == 1000


def test_hand_computed_percentiles() -> None:
    # nearest rank: the 500th and 990th of 0.01 .. 10.00 (no interpolation: 5.005, 9.9001)
    assert nearest_rank(LAT, 0.5) == pytest.approx(5.0)
    assert nearest_rank(LAT, 0.99) == pytest.approx(9.9)


def test_success_ratio_status_throughput_lag_and_system(wh: Warehouse) -> None:
    engines = [engine("risk", [0.2] * 95, failed=[1000.0] * 5),
               engine("ml", [0.3] * 100),
               engine("vpin", [0.5] * 100, status="unhealthy")]
    buses = [bus("md", throughput=3350.0, lag={"risk": 3, "ml": 12}),
             bus("logic", throughput=3330.0, lag={"vpin": None})]
    slos = [
        slo("succ", indicator="engine.success_ratio", aggregate="ratio",
            objective={"op": ">", "value": 0.95}),
        slo("up", indicator="engine.status", aggregate="value",
            objective={"op": ">=", "value": 1}, severity="warning"),
        slo("tput", scope="bus", indicator="bus.throughput_msgs_per_s", aggregate="value",
            objective={"op": ">", "value": 1000}),
        slo("lag", scope="bus", indicator="bus.consumer_lag", aggregate="value",
            objective={"op": "<=", "value": 10}),
        slo("avail", scope="system", indicator="system.availability", aggregate="ratio",
            objective={"op": ">", "value": 0.5}),
        slo("combined", scope="system", indicator="system.combined_throughput_msgs_per_s",
            aggregate="value", objective={"op": ">", "value": 1000}),
    ]
    ev = add_run(wh, "r1", engines=engines, buses=buses, slos=slos)
    res = ev.results
    assert by(res, "succ", "risk").value == pytest.approx(0.95)
    assert not by(res, "succ", "risk").passed  # 0.95 is not > 0.95
    assert by(res, "succ", "ml").value == 1.0 and by(res, "succ", "ml").passed
    assert [by(res, "up", e).value for e in ("ml", "risk", "vpin")] == [1.0, 1.0, 0.0]
    assert by(res, "tput", "md").value == 3350.0 and by(res, "tput", "md").passed
    assert by(res, "lag", "md").value == 12 and not by(res, "lag", "md").passed
    lag_logic = by(res, "lag", "logic")
    assert lag_logic.value is None and lag_logic.outcome == "no_data"
    assert lag_logic.reason.startswith("no data: no consumer-group lag reported for bus")
    assert by(res, "avail", "system").value == pytest.approx(2 / 3)
    assert by(res, "combined", "system").value == pytest.approx(6680.0)
    # written to slo_results exactly as returned
    with wh.connect() as con:
        stored = slo_queries.read_results(con, "r1", "avail")
    assert stored[0]["value"] == pytest.approx(2 / 3) and stored[0]["outcome"] == "pass"
    assert len(ev.results) == 3 + 3 + 2 + 2 + 1 + 1


def test_pair_roundtrip_and_target_filter(wh: Warehouse) -> None:
    pairs = [pair("risk", "collateral", [1.46] * 100), pair("ml", "strategy", [3.5] * 100)]
    s = slo("rt", scope="pair", indicator="pair.roundtrip_ms", aggregate="p99",
            objective={"op": "<", "value": 3}, targets=["risk->*", "ghost->*"])
    ev = add_run(wh, "r1", pairs=pairs, slos=[s])
    assert [r.target for r in ev.results] == ["risk->collateral", "ghost->*"]
    assert ev.results[0].passed and ev.results[0].value == pytest.approx(1.46)
    ghost = ev.results[1]
    assert ghost.outcome == "no_data" and not ghost.passed
    assert ghost.reason == "no data: no pair matching 'ghost->*' was measured in this run"


def test_no_data_is_a_failure_never_a_silent_pass(wh: Warehouse) -> None:
    engines = [engine("slowprobe", [0.2] * 100, valid=False,
                      reason="probe fell behind schedule (lateness p99 40 ms)"),
               engine("down", [], failed=[1000.0] * 100, status="unreachable"),
               engine("few", [0.2] * 20)]
    ev = add_run(wh, "r1", engines=engines, slos=[slo(severity="error")])
    invalid, down, few = (by(ev.results, "s", t) for t in ("slowprobe", "down", "few"))
    assert invalid.reason == "no data: probe fell behind schedule (lateness p99 40 ms)"
    assert down.reason == "no data: no successful samples (100 of 100 failed)"
    assert few.reason == "no data: p99 needs at least 50 successful samples, got 20"
    for r in (invalid, down, few):
        assert r.value is None and not r.passed and r.grade is None and r.outcome == "no_data"
    assert gate_failed(ev.results) and len(gate_breaches(ev.results)) == 3
    assert "no data" in breach_line(down) and breach_line(down).startswith("ERROR s [down]")
    assert ev.overall["breaches"] == 3 and ev.overall["result"] == "fail"


def test_key_slo_failing_fails_the_whole_evaluation(wh: Warehouse) -> None:
    engines = [engine(f"e{i}", [0.2] * 100) for i in range(11)] + [
        engine("websocket", [], failed=[1.0] * 100, status="unreachable"),
        engine("vpin", [0.3] * 100, status="unhealthy")]
    slos = [slo("lat", weight=10),
            slo("avail", scope="system", indicator="system.availability", aggregate="ratio",
                objective={"op": ">", "value": 0.9}, key=True, weight=1)]
    ev = add_run(wh, "r1", engines=engines, slos=slos)
    avail = by(ev.results, "avail", "system")
    assert avail.value == pytest.approx(11 / 13) and not avail.passed
    # the seed called 84.6 % against > 90 % an "A-": 15.4 % down against 10 % allowed
    # is 0.65 of the error budget's worth (graded on the bad fraction), F
    assert avail.grade == "F" and avail.attainment == pytest.approx(0.1 / (2 / 13))
    assert ev.overall["result"] == "fail" and ev.overall["key_failed"] == ["avail"]
    assert ev.overall["passed"] is False
    # the score stays high (one latency no-data out of 13, weight 10) ...
    assert ev.overall["score"] > 75
    assert ev.overall["grade"] in ("D", "F")  # ... but a failed evaluation grades D at best
    with wh.connect() as con:
        row = con.execute("SELECT overall_result, breaches FROM runs WHERE run_id='r1'"
                          ).fetchone()
    assert row == ("fail", 2)


@pytest.mark.parametrize(("grade", "floor"), list(grading.DEFAULT_BANDS.items()))
def test_default_grade_band_boundaries_on_both_sides(grade: str, floor: float) -> None:
    assert grading.grade_for(floor) == grade
    below = grading.grade_for(floor - 1e-9)
    order = [*grading.DEFAULT_BANDS, "F"]
    assert order.index(below) == order.index(grade) + 1


def test_missed_objective_never_grades_better_than_c(wh: Warehouse) -> None:
    assert grading.grade_result(50.0, passed=False) == "C"
    assert grading.grade_result(0.5, passed=False) == "F"
    assert grading.grade_result(1.0, passed=True) == "C+"
    # value exactly at a strict objective: attainment 1.0, missed, C at best
    ev = add_run(wh, "r1", engines=[engine("risk", [2.0] * 100)],
                 slos=[slo(aggregate="p50", objective={"op": "<", "value": 2},
                           grades={"A+": 1.0})])
    r = ev.results[0]
    assert r.attainment == 1.0 and not r.passed and r.grade == "C"
    assert "would grade A+, but a missed objective grades C at best" in r.reason


def test_attainment_directions_and_justification(wh: Warehouse) -> None:
    assert grading.attainment(0.43, 10, "lower") == pytest.approx(23.2558, rel=1e-4)
    assert grading.attainment(6680, 1000, "higher") == pytest.approx(6.68)
    assert grading.attainment(0, 1000, "lower") == grading.ATTAINMENT_CAP
    ev = add_run(wh, "r1", engines=[engine("risk", [0.25] * 100)],
                 slos=[slo(aggregate="p50", objective={"op": "<", "value": 0.5})])
    r = ev.results[0]
    assert r.grade == "B+" and r.attainment == pytest.approx(2.0)
    assert r.reason == ("p50 0.25 ms meets < 0.5 ms: 2.00× the objective "
                        "(attainment 2.00) → B+.")


def test_overall_score_keptn_style() -> None:
    rows = [grading.Scored("a", "pass", True, "error", 2.0, False),
            grading.Scored("a", "breach", False, "error", 2.0, False),
            grading.Scored("b", "breach", False, "warning", 1.0, False),
            grading.Scored("c", "pending_baseline", None, "error", 5.0, False),
            grading.Scored("d", "inconclusive", None, "error", 5.0, True)]
    out = grading.overall(rows)
    # a: (1 + 0)/2 × 2 = 1.0; b: 0.5 × 1; c, d not scored → 100 × 1.5 / 3 = 50
    assert out["score"] == 50.0 and out["result"] == "fail" and out["breaches"] == 2
    assert (out["inconclusive"], out["pending"], out["key_failed"]) == (1, 1, [])
    assert out["grade"] == "F"
    ok = grading.overall([grading.Scored("a", "pass", True, "error", 1.0, False)] * 9
                         + [grading.Scored("b", "breach", False, "warning", 1.0, False)])
    assert ok["score"] == pytest.approx(75.0) and ok["result"] == "warning"
    assert ok["grade"] == "C"  # 75 → C by score, and a breach caps at C anyway
    assert grading.overall([grading.Scored("a", "pass", True, "error", 1.0, False)]) == {
        "grade": "A+", "score": 100.0, "passed": True, "result": "pass", "breaches": 0,
        "error_breaches": 0, "key_failed": [], "slos_evaluated": 1, "inconclusive": 0,
        "pending": 0}


def test_window_of_runs_pools_samples_and_budgets(wh: Warehouse) -> None:
    ratio = slo("succ50", indicator="engine.success_ratio", aggregate="ratio",
                objective={"op": ">=", "value": 0.9}, window="3 runs")
    for i, failed in enumerate([50, 0, 10]):  # oldest first
        add_run(wh, f"p{i}", started_at=NOW - timedelta(hours=3 - i),
                engines=[engine("risk", [0.2] * (100 - failed), failed=[9.0] * failed)])
    ev = add_run(wh, "cur", started_at=NOW, slos=[ratio],
                 engines=[engine("risk", [0.2] * 80, failed=[9.0] * 20)])
    r = ev.results[0]
    # window = cur + p2 + p1: (80 + 90 + 100) / 300 = 0.9; p0 is outside the window
    assert r.value == pytest.approx(0.9) and r.passed and r.window_runs == 3
    assert r.samples == 300
    # the error budget is over its 30-day period, from events stored per run for this SLO:
    # only this run has them (p0-p2 were stored without it), 20 bad of 100 against 10 %
    assert (r.good, r.total, r.sli_target) == (80, 100, 0.9)
    assert r.error_budget_remaining == pytest.approx(-1.0)
    assert r.burn_rate == pytest.approx(2.0)  # this run failed 20 % against a 10 % budget


def test_window_of_days_leaves_out_old_and_excluded_runs(wh: Warehouse) -> None:
    avail = slo("avail7d", scope="system", indicator="system.availability", aggregate="ratio",
                objective={"op": ">", "value": 0.8}, window="7d")
    add_run(wh, "old", started_at=NOW - timedelta(days=10),
            engines=[engine("a", [0.2] * 100, status="unreachable")])
    add_run(wh, "d3", started_at=NOW - timedelta(days=3),
            engines=[engine("a", [0.2] * 100), engine("b", [0.2] * 100, status="degraded")])
    add_run(wh, "bad", started_at=NOW - timedelta(days=2),
            engines=[engine("a", [0.2] * 100, status="unreachable")])
    add_run(wh, "failed", started_at=NOW - timedelta(days=1), complete=False,
            engines=[engine("a", [0.2] * 100, status="unreachable")])
    with wh.transaction() as con:
        baselines.set_excluded(con, "bad")
    ev = add_run(wh, "cur", started_at=NOW, slos=[avail],
                 engines=[engine("a", [0.2] * 100), engine("b", [0.2] * 100)])
    r = ev.results[0]
    # d3 (1 of 2) + cur (2 of 2) = 3 of 4; old is outside, bad excluded, failed incomplete
    assert r.value == pytest.approx(0.75) and r.window_runs == 2 and not r.passed
    assert (r.good, r.total) == (2, 2)  # this run's engines: both operational
    assert r.error_budget_remaining == pytest.approx(1.0)
    assert r.burn_rate == pytest.approx(0.0)


def _p50_runs(wh: Warehouse, values: list[float]) -> None:
    for i, v in enumerate(values):
        add_run(wh, f"b{i}", started_at=NOW - timedelta(hours=len(values) - i),
                engines=[engine("risk", [v] * 100)])


REL = {"op": "<=", "value": "+10%", "relative_to": "baseline"}


def test_relative_objective_median_of_last_n_good_runs(wh: Warehouse) -> None:
    _p50_runs(wh, [1.0, 2.0, 3.0, 10.0])  # last 3 → median 3.0
    ev = add_run(wh, "cur", started_at=NOW, baseline_runs=3,
                 engines=[engine("risk", [3.2] * 100)],
                 slos=[slo(aggregate="p50", objective=REL)])
    r = ev.results[0]
    assert r.baseline == pytest.approx(3.0) and r.objective == pytest.approx(3.3)
    assert r.passed and r.objective_text == "<= +10% of baseline"


def test_min_delta_keeps_a_relative_threshold_away_from_a_small_baseline(
        wh: Warehouse) -> None:
    """+100 % of a 0.3 ms baseline is 0.6 ms; with min_delta 1 the line is 1.3 ms, so 1.2 ms
    passes and 1.4 ms breaches; on a 4 ms baseline the +100 % (8 ms) is the looser and wins."""
    floor = {"op": "<=", "value": "+100%", "relative_to": "baseline", "min_delta": 1}
    _p50_runs(wh, [0.3, 0.3, 0.3])
    ok = add_run(wh, "ok", started_at=NOW, baseline_runs=3,
                 engines=[engine("risk", [1.2] * 100)],
                 slos=[slo(aggregate="p50", objective=floor)]).results[0]
    assert ok.objective == pytest.approx(1.3) and ok.outcome == "pass"
    assert ok.objective_text == "<= +100% of baseline (at least +1)"
    bad = add_run(wh, "bad", started_at=NOW + timedelta(minutes=1), baseline_runs=3,
                  engines=[engine("risk", [1.4] * 100)],
                  slos=[slo(aggregate="p50", objective=floor)]).results[0]
    assert bad.objective == pytest.approx(1.3) and bad.outcome == "breach"
    big = Slo.model_validate({"name": "s", "scope": "engine", "indicator": "engine.latency_ms",
                              "aggregate": "p50", "objective": floor})
    assert big.objective.threshold(4.0) == pytest.approx(8.0)
    down = big.objective.model_copy(update={"op": ">=", "value": "-10%"})
    assert down.threshold(2.0) == pytest.approx(1.0)  # -10 % is 0.2, the floor 1: 2 - 1


def test_relative_objective_excluded_runs_and_pins(wh: Warehouse) -> None:
    _p50_runs(wh, [1.0, 2.0, 3.0, 10.0])
    with wh.transaction() as con:
        baselines.set_excluded(con, "b3")  # the 10 ms run: last 3 good are now 1, 2, 3
    ev = add_run(wh, "cur", started_at=NOW, baseline_runs=3,
                 engines=[engine("risk", [3.2] * 100)],
                 slos=[slo(aggregate="p50", objective=REL)])
    r = ev.results[0]
    assert r.baseline == pytest.approx(2.0) and not r.passed and r.outcome == "breach"
    with wh.transaction() as con:
        baselines.pin(con, "b3")  # a pin wins, even over exclusion
    ev = add_run(wh, "cur2", started_at=NOW + timedelta(hours=1), baseline_runs=3,
                 engines=[engine("risk", [3.2] * 100)],
                 slos=[slo(aggregate="p50", objective=REL)])
    assert ev.results[0].baseline == pytest.approx(10.0) and ev.results[0].passed


def test_pending_baseline_is_reported_not_graded_not_gated(wh: Warehouse) -> None:
    _p50_runs(wh, [1.0, 2.0])
    ev = add_run(wh, "cur", started_at=NOW, baseline_runs=3,
                 engines=[engine("risk", [30.0] * 100)],
                 slos=[slo(aggregate="p50", objective=REL, severity="error")])
    r = ev.results[0]
    assert r.outcome == "pending_baseline" and r.reason == "pending baseline: 2 of 3 runs"
    assert r.grade is None and r.passed is None and r.value == pytest.approx(30.0)
    assert not r.judged and not r.breached
    assert not gate_failed(ev.results) and not gate_failed(ev.results, "warning")
    assert ev.overall["breaches"] == 0 and ev.overall["slos_evaluated"] == 0
    assert ev.overall["pending"] == 1
    # nothing else was judged: no verdict, never an A+ from an empty score
    assert (ev.overall["result"], ev.overall["grade"], ev.overall["score"]) == (
        "no_verdict", None, None)
    with wh.connect() as con:
        stored = slo_queries.read_results(con, "cur")[0]
    assert stored["passed"] is None and stored["outcome"] == "pending_baseline"


def test_unknown_run_and_pin_errors(wh: Warehouse) -> None:
    from dualbus_pipeline.errors import InputError, PipelineError
    from dualbus_pipeline.slospec.evaluate import evaluate_run

    with wh.transaction() as con, pytest.raises(PipelineError):
        evaluate_run(con, "nope", [slo()], baseline_runs=3)
    with wh.transaction() as con, pytest.raises(InputError, match="unknown run id 'nope'"):
        baselines.pin(con, "nope")


def test_warning_line_turns_a_near_miss_into_a_warning(wh: Warehouse) -> None:
    keptn = slo("p99", severity="error", objective={"op": "<", "value": 10},
                warning={"op": "<", "value": 20})
    ev = add_run(wh, "r1", slos=[keptn], engines=[
        engine("ok", [5.0] * 100), engine("near", [15.0] * 100), engine("far", [30.0] * 100)])
    ok, near, far = (by(ev.results, "p99", t) for t in ("ok", "near", "far"))
    assert (ok.outcome, ok.severity) == ("pass", "error")
    assert (near.outcome, near.severity) == ("breach", "warning")
    assert "Within the warning line < 20 (20 ms): a warning, not an error." in near.reason
    assert (far.outcome, far.severity) == ("breach", "error")
    # Keptn scoring: pass 1, warning 0.5, error 0 → (1 + 0.5 + 0) / 3
    assert ev.overall["score"] == pytest.approx(50.0)
    assert ev.overall["error_breaches"] == 1
