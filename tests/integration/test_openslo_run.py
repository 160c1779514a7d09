"""A team's OpenSLO file drives a real `dualbus run`, without retyping a single SLO."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dualbus_pipeline.cli import main
from dualbus_pipeline.stack.manager import StackManager
from tests.integration.test_pipeline import SMALL_PROBE
from tests.stack_fixtures import make_topology

OPENSLO = """\
- apiVersion: openslo/v1
  kind: SLI
  metadata: {name: health-success}
  spec:
    ratioMetric:
      counter: true
      good: {metricSource: {type: dualbus, spec: {indicator: engine.success_ratio}}}
      total: {metricSource: {type: dualbus, spec: {indicator: engine.success_ratio}}}
- apiVersion: openslo/v1
  kind: SLO
  metadata: {name: engines-answer}
  spec:
    service: exchange
    indicatorRef: health-success
    timeWindow: [{duration: 1w, isRolling: true}]
    budgetingMethod: Occurrences
    objectives: [{displayName: answers, target: 0.95}]
    alertPolicies:
- apiVersion: openslo/v1
  kind: SLO
  metadata: {name: engines-fast}
  spec:
    service: exchange
    indicator:
      metadata: {name: health-latency}
      spec:
        thresholdMetric:
          metricSource: {type: dualbus, spec: {indicator: engine.latency_ms}}
    timeWindow: [{duration: 1w, isRolling: true}]
    budgetingMethod: Occurrences
    objectives: [{op: lt, value: 1000, target: 0.5}]
"""


def test_an_imported_openslo_file_is_what_dualbus_run_judges(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    config = make_topology(tmp_path, ["north", "south"], platform="Exchange",
                           faults={"south": {"down": True}}, extra=SMALL_PROBE)
    stack_factory(config)
    source = tmp_path / "team-slos.yaml"
    source.write_text(OPENSLO)
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    assert main(["slo", "import", str(source), "-o", str(slo_dir / "team.yaml")]) == 0
    wh = tmp_path / "wh.duckdb"
    # the run completes (exit 0); south is down, so the imported success SLO breaches there
    assert main(["run", "--config", str(config), "--warehouse", str(wh), "--slo",
                 str(slo_dir), "--quiet"]) == 0
    (results,) = (tmp_path / "reports").glob("*/results.json")
    verdicts = {(s["name"], s["target"]): (s["outcome"], s["objective_text"])
                for s in json.loads(results.read_text())["slos"]}
    assert verdicts == {
        ("engines_answer", "north"): ("pass", ">= 0.95"),
        ("engines_answer", "south"): ("breach", ">= 0.95"),
        ("engines_fast", "north"): ("pass", "< 1000"),
        ("engines_fast", "south"): ("no_data", "< 1000"),
    }
    # and the CI gate fails on it, as on any error-severity breach
    assert main(["check", "--config", str(config), "--warehouse", str(wh), "--slo",
                 str(slo_dir), "--quiet"]) == 1
