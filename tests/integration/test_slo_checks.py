"""SLO asset checks built from YAML and executed by Dagster in-process."""


from pathlib import Path

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    ConfigurableResource,
    asset,
    materialize,
)

from dualbus_pipeline.defs.checks import make_slo_checks
from dualbus_pipeline.errors import SpecError
from dualbus_pipeline.probes.model import EngineResult
from dualbus_pipeline.slospec.evaluate import evaluate_run
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements
from dualbus_pipeline.store.warehouse import Warehouse
from tests.slo_builders import bus, engine, pair

SLO_YAML = """\
version: dualbus/v1
slos:
  - name: engine_latency_p99
    scope: engine
    indicator: engine.latency_ms
    aggregate: p99
    objective: {op: "<", value: 10}
    severity: error
  - name: engine_up
    scope: engine
    indicator: engine.status
    aggregate: value
    objective: {op: ">=", value: 1}
    severity: warning
  - name: availability
    scope: system
    indicator: system.availability
    aggregate: ratio
    objective: {op: ">", value: 0.9}
    severity: error
    key: true
    blocking: true
  - name: throughput
    scope: bus
    indicator: bus.throughput_msgs_per_s
    aggregate: value
    objective: {op: ">", value: 1000}
  - name: roundtrip
    scope: pair
    indicator: pair.roundtrip_ms
    aggregate: p99
    objective: {op: "<", value: 3}
"""


class StandInWarehouse(ConfigurableResource):  # type: ignore[misc]
    path: str

    def warehouse(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=5)


def graph(slo_dir: Path, engines: list[EngineResult] | None = None) -> list[object]:
    slos = load_slo_dir(slo_dir)

    @asset
    def engine_measurements() -> None: ...

    @asset
    def bus_measurements() -> None: ...

    @asset
    def pair_measurements() -> None: ...

    @asset(deps=[engine_measurements, bus_measurements, pair_measurements])
    def slo_results(context: AssetExecutionContext, warehouse: StandInWarehouse) -> None:
        wh = warehouse.warehouse()
        begin_run(wh, context.run.run_id, "Test")
        measured = engines or [engine("risk", [0.25] * 100), engine("ml", [12.0] * 100),
                               engine("vpin", [0.3] * 100, status="unhealthy")]
        with wh.transaction() as con:
            store_measurements(con, context.run.run_id, [bus("md", throughput=3350.0)],
                               measured, [pair("risk", "ml", [1.5] * 100)])
            ev = evaluate_run(con, context.run.run_id, slos, baseline_runs=3)
            mark_evaluated(con, context.run.run_id, settings={}, overall=ev.overall)

    @asset(deps=[slo_results])
    def trend_tables() -> None: ...

    return [engine_measurements, bus_measurements, pair_measurements, slo_results,
            trend_tables, *make_slo_checks(slos)]


def test_checks_report_breaches_with_severity_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "s.yaml").write_text(SLO_YAML)
    res = materialize(graph(tmp_path / "slo"),
                      resources={"warehouse": StandInWarehouse(path=str(tmp_path / "w.duckdb"))},
                      raise_on_error=False)
    # the blocking, error-severity availability check failed: Dagster fails the run
    assert not res.success
    evals = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert set(evals) == {"engine_latency_p99", "engine_up", "availability", "throughput",
                          "roundtrip"}

    lat = evals["engine_latency_p99"]
    assert lat.asset_key == AssetKey("engine_measurements")
    assert not lat.passed and lat.severity == AssetCheckSeverity.ERROR
    md = {k: v.value for k, v in lat.metadata.items()}
    assert md["worst_target"] == "ml" and md["failed_targets"] == "ml"
    assert md["values"] == {"ml": 12.0, "risk": 0.25, "vpin": 0.3}
    assert md["grades"]["risk"] == "A+" and md["objective"] == "< 10"
    assert md["worst_value"] == 12.0

    up = evals["engine_up"]
    assert not up.passed and up.severity == AssetCheckSeverity.WARN
    assert up.metadata["failed_targets"].value == "vpin"

    avail = evals["availability"]
    assert avail.asset_key == AssetKey("trend_tables")  # blocking: held back the report
    assert not avail.passed and avail.metadata["value"].value == pytest.approx(2 / 3)

    tput = evals["throughput"]
    assert tput.passed and tput.asset_key == AssetKey("bus_measurements")
    assert evals["roundtrip"].passed
    assert evals["roundtrip"].asset_key == AssetKey("pair_measurements")


def test_blocking_only_where_the_spec_says_so(tmp_path: Path) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "s.yaml").write_text(SLO_YAML)
    [checks] = make_slo_checks(load_slo_dir(tmp_path / "slo"))
    blocking = {spec.name: spec.blocking for spec in checks.check_specs}
    assert blocking == {"engine_latency_p99": False, "engine_up": False, "availability": True,
                        "throughput": False, "roundtrip": False}
    for spec in checks.check_specs:
        if spec.blocking:
            assert spec.asset_key == AssetKey("trend_tables") and not spec.additional_deps
        else:
            assert AssetKey("slo_results") in {d.asset_key for d in spec.additional_deps}


def test_bad_yaml_fails_at_definition_load_with_the_same_messages(tmp_path: Path) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "s.yaml").write_text(SLO_YAML.replace('op: "<", value: 10',
                                                              'op: "<>", value: 10'))
    with pytest.raises(SpecError) as exc:
        graph(tmp_path / "slo")
    assert exc.value.problems == [
        f"{tmp_path}/slo/s.yaml:7: slos[0].objective.op: must be one of <, <=, >, >= "
        "(got '<>')"]


UNJUDGED_YAML = """\
version: dualbus/v1
slos:
  - name: engine_latency_p99
    scope: engine
    indicator: engine.latency_ms
    aggregate: p99
    objective: {op: "<", value: 10}
  - name: engine_latency_p99_quiet
    scope: engine
    targets: [risk, ml]
    indicator: engine.latency_ms
    aggregate: p99
    objective: {op: "<", value: 10}
  - name: engine_latency_regression
    scope: engine
    indicator: engine.latency_ms
    aggregate: p99
    objective: {op: "<=", value: "+50%", relative_to: baseline}
    severity: warning
"""
WHY = "inconclusive: the probe host delayed 4 more send(s) by over 1 ms"


def test_inconclusive_and_pending_targets_never_fail_a_check(tmp_path: Path) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "s.yaml").write_text(UNJUDGED_YAML)
    engines = [engine("risk", [0.25] * 100),
               engine("ml", [0.3] * 100, reason=WHY, inconclusive=True),
               engine("vpin", [12.0] * 100)]
    res = materialize(graph(tmp_path / "slo", engines),
                      resources={"warehouse": StandInWarehouse(path=str(tmp_path / "w.duckdb"))},
                      raise_on_error=False)
    evals = {e.check_name: e for e in res.get_asset_check_evaluations()}

    def md(name: str) -> dict[str, object]:
        return {k: v.value for k, v in evals[name].metadata.items()}

    # a breach still fails the check; the inconclusive target is named apart
    lat = evals["engine_latency_p99"]
    assert not lat.passed
    assert md("engine_latency_p99")["failed_targets"] == "vpin"
    assert md("engine_latency_p99")["inconclusive_targets"] == "ml"
    assert md("engine_latency_p99")["outcomes"] == {"ml": "inconclusive", "risk": "pass",
                                                    "vpin": "breach"}
    # inconclusive alone: the check passes and says what it could not judge
    quiet = evals["engine_latency_p99_quiet"]
    assert quiet.passed and quiet.description == (
        f"all 1 judged targets meet < 10; 1 inconclusive (not judged): ml — {WHY}")
    assert md("engine_latency_p99_quiet")["failed_targets"] == "none"
    # no baseline yet: every target pending, the check passes, nothing was judged
    regression = evals["engine_latency_regression"]
    assert regression.passed
    assert md("engine_latency_regression")["pending_targets"] == "ml, risk, vpin"
    assert regression.description.startswith(
        "no target was judged against <= +50% of baseline; 3 pending baseline (not judged): "
        "ml, risk, vpin — pending baseline: 0 of 3 runs")
