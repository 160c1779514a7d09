"""The executive summary lists breaches only: not passes, not 'insufficient baseline'."""

from __future__ import annotations

from dualbus_pipeline.report.findings import breaches


def slo(name: str, passed: bool, outcome: str, severity: str = "error") -> dict[str, object]:
    return {"name": name, "target": "t", "passed": passed, "outcome": outcome,
            "severity": severity, "indicator": "engine.latency_ms", "key": False}


def test_breaches_exclude_passes_and_insufficient_baselines() -> None:
    results = {"slos": [slo("ok", True, "pass"), slo("bad", False, "breach"),
                        slo("nodata", False, "no_data", "warning"),
                        slo("regress", False, "insufficient_baseline", "warning")]}
    assert [s["name"] for s in breaches(results)] == ["bad", "nodata"]
