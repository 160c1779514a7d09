"""The executive summary lists breaches only: not passes, not pending baselines, not
inconclusive results (neither is a breach)."""

from __future__ import annotations

from dualbus_pipeline.report.findings import breaches, not_judged


def slo(name: str, passed: bool | None, outcome: str, severity: str = "error",
        target: str = "t", reason: str = "") -> dict[str, object]:
    return {"name": name, "target": target, "passed": passed, "outcome": outcome,
            "severity": severity, "indicator": "engine.latency_ms", "key": False,
            "scope": "engine", "reason": reason}


def test_breaches_exclude_passes_and_unjudged_results() -> None:
    results = {"slos": [slo("ok", True, "pass"), slo("bad", False, "breach"),
                        slo("nodata", False, "no_data", "warning"),
                        slo("regress", None, "pending_baseline", "warning"),
                        slo("blind", None, "inconclusive")]}
    assert [s["name"] for s in breaches(results)] == ["bad", "nodata"]


def test_unjudged_results_are_grouped_one_cause_per_line() -> None:
    why = "inconclusive: the probe host stayed overloaded"
    pending = "pending baseline: 1 of 5 runs"
    results = {"slos": [
        slo("p99", None, "inconclusive", target="ml", reason=why),
        slo("p99_regression", None, "inconclusive", "warning", target="ml", reason=why),
        slo("regress", None, "pending_baseline", target="a", reason=pending),
        slo("regress", None, "pending_baseline", target="b", reason=pending),
        slo("ok", True, "pass")]}
    got = not_judged(results)
    assert got["inconclusive"] == [{"scope": "engine", "target": "ml", "reason": why,
                                    "slos": ["p99", "p99_regression"]}]
    assert got["pending_baseline"] == [{"slo": "regress", "reason": pending,
                                        "targets": ["a", "b"]}]
