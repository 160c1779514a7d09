"""Verdict semantics (issue 19, item 8): ratios graded on the bad fraction, inconclusive and
pending baseline as outcomes that are neither pass nor breach, "no verdict", and the CI gate's
`--fail-on`. Real DuckDB warehouses filled with known samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dualbus_pipeline.cli import build_parser
from dualbus_pipeline.slospec import grading
from dualbus_pipeline.slospec.evaluate import SloResult
from dualbus_pipeline.slospec.gate import gate_breaches, gate_failed, gate_report, not_judged_line
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import slo_queries
from dualbus_pipeline.store.queries import run_bundle
from dualbus_pipeline.store.warehouse import Warehouse
from tests.slo_builders import add_run, engine

INCONCLUSIVE = ("inconclusive: p50 2.100 ms with 5 engines in flight was 5.0× its p50 alone "
                "(0.420 ms), and the re-measure budget (probe.remeasure_budget_s 30) was spent")


def slo(name: str, **kw: Any) -> Slo:
    base: dict[str, Any] = {"name": name, "scope": "engine", "indicator": "engine.latency_ms",
                            "aggregate": "p99", "objective": {"op": "<", "value": 10}}
    base.update(kw)
    return Slo.model_validate(base)


SUCCESS = slo("succ", indicator="engine.success_ratio", aggregate="ratio",
              objective={"op": ">", "value": 0.95})
UP = slo("up", indicator="engine.status", aggregate="value",
         objective={"op": ">=", "value": 1}, severity="warning")


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_timeout_s=1)


def by(results: list[SloResult], name: str, target: str) -> SloResult:
    return next(r for r in results if r.slo == name and r.target == target)


# ------------------------------------------------------------------ grades on ratios


def test_a_perfect_ratio_grades_a_plus(wh: Warehouse) -> None:
    ev = add_run(wh, "r1", engines=[engine("risk", [0.2] * 100),
                                    engine("ml", [0.2] * 99, failed=[5.0]),
                                    engine("vpin", [0.2] * 94, failed=[5.0] * 6,
                                           status="unhealthy")],
                 slos=[SUCCESS, UP])
    perfect = by(ev.results, "succ", "risk")
    assert perfect.value == 1.0 and perfect.grade == "A+"  # value/objective would be C+
    assert perfect.reason == "ratio 100 % meets > 95 %: 0 % bad of 5 % allowed " \
        "(attainment 1000.00) → A+."
    one_pct = by(ev.results, "succ", "ml")
    # 1 % failed against 5 % allowed: five times inside the budget
    assert one_pct.attainment == 5.0 and one_pct.grade == "A"
    assert "1 % bad of 5 % allowed" in one_pct.reason
    missed = by(ev.results, "succ", "vpin")
    # 6 % failed against 5 % allowed: attainment 0.833, D (and never better than C)
    assert missed.outcome == "breach" and missed.grade == "D"
    assert missed.attainment == pytest.approx(5 / 6)
    # engine_operational: 1 >= 1 is perfect; nothing is allowed, so anything else is F
    assert by(ev.results, "up", "risk").grade == "A+"
    assert by(ev.results, "up", "vpin").grade == "F"


@pytest.mark.parametrize(("value", "objective", "expected"), [
    (1.0, 0.95, grading.ATTAINMENT_CAP), (0.99, 0.95, 5.0), (0.999, 0.99, 10.0),
    (0.95, 0.95, 1.0), (0.90, 0.95, 0.5), (1.0, 1.0, grading.ATTAINMENT_CAP),
    (0.999, 1.0, 0.0), (0.0, 0.0, 1.0),
])
def test_ratio_attainment_is_allowed_bad_over_actual_bad(value: float, objective: float,
                                                         expected: float) -> None:
    assert grading.ratio_attainment(value, objective) == expected


def test_only_ratio_like_slos_are_graded_on_the_bad_fraction() -> None:
    assert grading.ratio_like("ratio", "higher", ">", 0.95)
    assert grading.ratio_like("status", "higher", ">=", 1.0)
    assert grading.ratio_like("availability", "higher", ">", 0.9)
    assert not grading.ratio_like("samples", "lower", "<", 0.5)      # a latency
    assert not grading.ratio_like("value", "higher", ">", 1000)      # throughput
    assert not grading.ratio_like("ratio", "higher", "<", 0.5)       # an odd upper bound
    assert not grading.ratio_like("status", "higher", ">=", 2.0)     # not a fraction


# ------------------------------------------------------------------ inconclusive


def test_an_inconclusive_summary_is_neither_pass_nor_breach(wh: Warehouse) -> None:
    engines = [engine("risk", [0.2] * 100),
               engine("ml", [2.1] * 100, reason=INCONCLUSIVE, inconclusive=True)]
    ev = add_run(wh, "r1", engines=engines, slos=[slo("lat"), SUCCESS])
    lat = by(ev.results, "lat", "ml")
    assert lat.outcome == "inconclusive" and lat.reason == INCONCLUSIVE
    assert (lat.passed, lat.grade, lat.value, lat.attainment) == (None, None, None, None)
    # success ratios stay usable: whether requests succeeded does not depend on the timing
    assert by(ev.results, "succ", "ml").outcome == "pass"
    assert ev.overall["inconclusive"] == 1 and ev.overall["breaches"] == 0
    assert ev.overall["result"] == "pass" and ev.overall["score"] == 100.0
    assert not gate_failed(ev.results, "error") and not gate_failed(ev.results, "warning")
    with wh.connect() as con:
        stored = slo_queries.read_results(con, "r1", "lat")
    assert {r["target"]: (r["outcome"], r["passed"]) for r in stored} == {
        "ml": ("inconclusive", None), "risk": ("pass", True)}


def test_too_few_samples_is_no_data_even_when_also_inconclusive(wh: Warehouse) -> None:
    reason = f"too few samples: 10 < 20; {INCONCLUSIVE}"
    ev = add_run(wh, "r1", engines=[engine("ml", [2.1] * 10, reason=reason, inconclusive=True)],
                 slos=[slo("lat", aggregate="p50")])
    r = ev.results[0]
    assert r.outcome == "no_data" and r.reason == f"no data: {reason}" and r.passed is False


def test_nothing_judged_is_no_verdict_never_a_plus(wh: Warehouse) -> None:
    ev = add_run(wh, "r1", engines=[engine("ml", [2.1] * 100, reason=INCONCLUSIVE,
                                           inconclusive=True)],
                 slos=[slo("lat", key=True)])
    assert ev.overall == {"grade": None, "score": None, "passed": None,
                          "result": "no_verdict", "breaches": 0, "error_breaches": 0,
                          "key_failed": [], "slos_evaluated": 0, "inconclusive": 1,
                          "pending": 0}
    with wh.connect() as con:
        run = run_bundle(con, "r1")["run"]
    assert (run["overall_result"], run["overall_grade"], run["overall_score"],
            run["overall_passed"]) == ("no_verdict", None, None, None)
    assert grading.overall([])["result"] == "no_verdict"


# ------------------------------------------------------------------ the CI gate


def rows() -> list[dict[str, Any]]:
    def row(slo_name: str, severity: str, outcome: str) -> dict[str, Any]:
        return {"slo": slo_name, "target": "t", "severity": severity, "outcome": outcome,
                "passed": {"pass": True, "breach": False, "no_data": False}.get(outcome),
                "value": None if outcome != "breach" else 12.0, "unit": "ms",
                "aggregate": "p99", "objective_text": "< 10", "grade": None,
                "reason": f"{outcome} reason"}
    return [row("a", "error", "pass"), row("b", "warning", "breach"),
            row("c", "warning", "no_data"), row("d", "error", "inconclusive"),
            row("e", "error", "pending_baseline")]


def test_fail_on_error_warning_and_result() -> None:
    warn_only = rows()
    assert not gate_failed(warn_only, "error")  # warning misses never gate by default
    assert [r["slo"] for r in gate_breaches(warn_only, "warning")] == ["b", "c"]
    assert gate_failed(warn_only, "warning")
    assert not gate_failed(warn_only, "result", "pass")
    assert gate_failed(warn_only, "result", "fail")
    assert gate_failed(warn_only, "result", "no_verdict")
    with_error = [*warn_only, {**warn_only[0], "slo": "f", "outcome": "no_data",
                               "passed": False}]
    assert [r["slo"] for r in gate_breaches(with_error, "error")] == ["f"]
    with pytest.raises(ValueError, match="fail_on: must be one of error, warning, result"):
        gate_breaches(warn_only, "critical")


def test_unjudged_results_never_fail_a_gate_and_are_counted() -> None:
    unjudged = [r for r in rows() if r["outcome"] in ("inconclusive", "pending_baseline")]
    for fail_on in ("error", "warning"):
        assert not gate_failed(unjudged, fail_on)
    assert not_judged_line(rows()) == \
        "1 inconclusive (not judged), 1 pending baseline (not judged)"
    assert not_judged_line(rows()[:3]) is None
    # a row stored before outcomes existed: judged by `passed`, old pending name mapped
    legacy = {**rows()[0], "outcome": "insufficient_baseline", "passed": False}
    assert not gate_failed([legacy], "warning")


def test_gate_report_lines() -> None:
    ok = gate_report(rows(), "error", {"overall_result": "warning"})
    assert not ok.failed and ok.headline == "check passed: no error-severity SLO breached"
    assert ok.not_judged == "1 inconclusive (not judged), 1 pending baseline (not judged)"
    warned = gate_report(rows(), "warning", {})
    assert warned.failed and warned.headline == "check FAILED: 2 breach(es):"
    assert warned.lines[0].startswith("WARNING b [t]: p99 12 ms, objective < 10")
    result = gate_report(rows(), "result", {"overall_result": "fail", "overall_grade": "D",
                                            "overall_score": 71.25})
    assert result.failed and result.headline == \
        "check FAILED: overall result fail (grade D, score 71.25)"
    blind = gate_report(rows()[3:], "result", {"overall_result": "no_verdict"})
    assert blind.failed and blind.headline == \
        "check FAILED: overall result no verdict (nothing was judged)"
    passed = gate_report(rows(), "result", {"overall_result": "pass", "overall_grade": "A",
                                            "overall_score": 95.0})
    assert not passed.failed and passed.lines == []


def test_check_takes_fail_on() -> None:
    parser = build_parser("run")  # `run` registers both run and check
    assert parser.parse_args(["check"]).fail_on == "error"
    assert parser.parse_args(["check", "--fail-on", "result"]).fail_on == "result"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["check", "--fail-on", "critical"])
    assert exc.value.code == 2
    assert not hasattr(parser.parse_args(["run"]), "fail_on")
