"""OpenSLO v1 in and out: `dualbus slo import` / `dualbus slo export --format openslo`.

The documents under tests/openslo/ are written from the published v1 specification (not
produced by dualbus): inline and referenced SLIs, ratio (bad/total) and threshold metrics,
Occurrences and Timeslices, rolling and calendar windows, alert policies and conditions by
reference and inline, multi-document files and top-level lists, `alertPolicies:` left empty,
several objectives in one SLO, and `m` (minutes) against `M` (months).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.errors import SpecError
from dualbus_pipeline.indicators import CATALOGUE
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.slospec.model import Budget, Slo
from dualbus_pipeline.slospec.openslo_export import export_openslo, run_interval
from dualbus_pipeline.slospec.openslo_import import dualbus_yaml, import_openslo

DOCS = Path(__file__).resolve().parents[1] / "openslo"
GOOD = [DOCS / n for n in ("latency.yaml", "slis.yaml", "delivery.yaml", "per_run.yaml")]


def _short(s: Slo) -> dict[str, Any]:
    return s.model_dump(exclude_defaults=True, exclude={"description"})


def test_each_kind_of_document_maps_onto_dualbus_indicators() -> None:
    imported = import_openslo(GOOD)
    by_name = {s.name: _short(s) for s in imported.slos}
    assert list(by_name) == ["checkout_latency", "checkout_errors", "bus_delivery_typical",
                             "bus_delivery_tail", "bus_throughput"]
    # Occurrences on a threshold metric: target 0.99 is p99; 4w is 28 days; no alert policy
    # (`alertPolicies:` left empty, YAML null) is a per-run alert only
    assert by_name["checkout_latency"] == {
        "name": "checkout_latency", "scope": "engine", "targets": ["checkout", "pricing"],
        "indicator": "engine.latency_ms", "aggregate": "p99",
        "objective": {"op": "<", "value": 8.0},
        "budget": {"period": "28d", "alerts": "run"}}
    # bad/total ratio, targetPercent, no op: >= the target
    assert by_name["checkout_errors"] == {
        "name": "checkout_errors", "scope": "engine", "indicator": "engine.success_ratio",
        "aggregate": "ratio", "objective": {"op": ">=", "value": 0.995},
        "budget": {"period": "7d", "alerts": "run"}}
    # two objectives of one SLO, an SLI from another file, a calendar month (1M = 30 days)
    # and an alert policy by reference (dualbus's 14.4x / 1h rule): budget at its defaults
    assert by_name["bus_delivery_typical"] == {
        "name": "bus_delivery_typical", "scope": "bus", "indicator": "bus.delivery_latency_ms",
        "aggregate": "p90", "objective": {"op": "<=", "value": 2.0}}
    assert by_name["bus_delivery_tail"]["aggregate"] == "p99"
    # Timeslices: one event per run, so the target is the budget's; 60m is one hour
    assert by_name["bus_throughput"] == {
        "name": "bus_throughput", "scope": "bus", "indicator": "bus.throughput_msgs_per_s",
        "aggregate": "value", "objective": {"op": ">", "value": 1000.0},
        "severity": "warning", "weight": 0.5,
        "budget": {"target": 0.95, "period": "1h", "alerts": "run"}}
    notes = "\n".join(imported.notes)
    assert "delivery.yaml:11: SLO bus-delivery: spec.timeWindow[0].duration: the " \
        "calendar-aligned 1M window is read as a rolling 30d budget" in notes
    assert "the policies name 14.4× over 1h; dualbus applies all four" in notes
    assert "AlertNotificationTarget objects are not used" in notes


def _line(path: Path, text: str) -> int:
    """The line of the first occurrence of `text` in the file (1-based)."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in {path}")


def test_every_unmappable_field_gives_its_exact_line() -> None:
    path = DOCS / "unmappable.yaml"
    with pytest.raises(SpecError) as err:
        import_openslo([path])
    got = sorted(err.value.problems)
    expected = {
        ("type: Prometheus", "SLO from-prometheus: spec.indicator.spec.thresholdMetric."
         "metricSource.type: 'Prometheus' is not a dualbus probe"),
        ("duration: 5m", "SLO five-minutes: spec.timeWindow[0].duration: dualbus budget "
         "periods are whole hours or days (got '5m': m is minutes, M months)"),
        ("budgetingMethod: RatioTimeslices", "SLO five-minutes: spec.budgetingMethod: "),
        ("threshold: 2", "SLO odd-percentile: spec.alertPolicies[0].spec.conditions[0].spec."
         "condition.threshold: 2× over 1h is not one of dualbus's burn-rate rules"),
        ("target: 0.98\n", "SLO odd-percentile: spec.objectives[0].target: "
         "engine.latency_ms is measured at p50, p90, p95, p99 and p999"),
        ("apiVersion: openslo/v1alpha", "apiVersion: dualbus reads openslo/v1 "
         "(got 'openslo/v1alpha')"),
    }
    assert len(got) == len(expected)
    text = path.read_text()
    for marker, message in expected:
        if marker.endswith("\n"):  # the second `target: 0.98` (odd-percentile's)
            line = text[:text.rindex(marker)].count("\n") + 1
        else:
            line = _line(path, marker)
        prefix = f"{path}:{line}: {message}"
        assert any(p.startswith(prefix) for p in got), (prefix, got)


def test_a_bad_dualbus_annotation_and_a_missing_reference_name_their_lines(
        tmp_path: Path) -> None:
    doc = (DOCS / "per_run.yaml").read_text().replace('dualbus/weight: "0.5"',
                                                      'dualbus/weight: "half"')
    doc += ("---\napiVersion: openslo/v1\nkind: SLO\nmetadata: {name: orphan}\nspec:\n"
            "  service: x\n  indicatorRef: nowhere\n  timeWindow: [{duration: 30d}]\n"
            "  budgetingMethod: Occurrences\n  objectives: [{target: 0.9}]\n")
    path = tmp_path / "bad.yaml"
    path.write_text(doc)
    with pytest.raises(SpecError) as err:
        import_openslo([path])
    assert sorted(err.value.problems) == sorted([
        f"{path}:{_line(path, 'dualbus/weight')}: SLO bus-throughput: metadata.annotations."
        "dualbus/weight: not readable (could not convert string to float: 'half')",
        f"{path}:{_line(path, 'indicatorRef')}: SLO orphan: spec.indicatorRef: no SLI named "
        "'nowhere' in the files given (pass its file too)"])


def _norm(s: Slo) -> Slo:
    """Budget at every default says what no budget block says (docs/openslo.md)."""
    return s.model_copy(update={"budget": None}) if s.budget == Budget() else s


EVERY_FIELD = [
    {"name": "lat_tier", "description": "tiers", "scope": "engine", "targets": ["a", "b"],
     "indicator": "engine.hot_latency_ms", "aggregate": "p50",
     "objective": {"op": "<", "value": 0.5}, "severity": "warning", "weight": 0.25,
     "kind": "tier", "grades": {"A+": 1.5, "A": 1.2, "C": 0.7}},
    {"name": "lat_gate", "scope": "engine", "indicator": "engine.latency_ms",
     "aggregate": "p999", "objective": {"op": "<=", "value": 25},
     "warning": {"op": "<=", "value": 40}, "key": True, "blocking": True,
     "budget": {"target": 0.995, "period": "7d", "alerts": "burn"}},
    {"name": "lat_regression", "scope": "pair", "indicator": "pair.roundtrip_ms",
     "aggregate": "p90", "objective": {"op": "<=", "value": "+50%", "relative_to": "baseline"},
     "warning": {"op": "<=", "value": "+80%", "relative_to": "baseline"}},
    {"name": "lag_abs", "scope": "bus", "indicator": "bus.consumer_lag", "aggregate": "max",
     "objective": {"op": "<=", "value": "-0.5", "relative_to": "baseline"},
     "severity": "warning"},
    {"name": "avail_runs", "scope": "engine", "indicator": "engine.availability",
     "aggregate": "ratio", "window": "50 runs", "objective": {"op": ">=", "value": 0.9},
     "budget": {"period": "24h", "alerts": "run"}},
    {"name": "status_budget", "scope": "engine", "indicator": "engine.status",
     "aggregate": "value", "objective": {"op": ">=", "value": 1},
     "budget": {"target": 0.9}},
    {"name": "_edge_name_", "scope": "system", "indicator": "system.availability",
     "aggregate": "ratio", "objective": {"op": ">", "value": 0.5}},
]


def test_export_then_import_gives_the_same_spec(tmp_path: Path) -> None:
    slos = [*load_slo_dir(shipped_dir("slo")), *(Slo.model_validate(d) for d in EVERY_FIELD)]
    path = tmp_path / "out.yaml"
    path.write_text(export_openslo(slos, source="x", schedule="*/15 * * * *"))
    back = import_openslo([path]).slos
    assert [_norm(s) for s in back] == [_norm(s) for s in slos]
    # and the dualbus file written from the import loads as the same spec again
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "imported.yaml").write_text(dualbus_yaml(back, sources=["out.yaml"]))
    assert [_norm(s) for s in load_slo_dir(tmp_path / "slo")] == [_norm(s) for s in slos]


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"^\d+[mhdwMQY]$")


def _check_metric(metric: Any, where: str) -> None:
    source = metric["metricSource"]
    assert isinstance(source["type"], str) and isinstance(source["spec"], dict), where
    assert all(isinstance(v, str | int | float) for v in source["spec"].values()), where


def _valid_openslo_v1(docs: list[Any]) -> None:
    """The v1 specification's rules for the kinds dualbus writes."""
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert len(names) == len(docs), "object names are unique per kind"
    for d in docs:
        where = f"{d['kind']} {d['metadata']['name']}"
        assert d["apiVersion"] == "openslo/v1" and _NAME.match(d["metadata"]["name"]), where
        assert all(isinstance(v, str) for v in d["metadata"].get("annotations", {}).values())
        spec = d["spec"]
        if d["kind"] == "AlertPolicy":
            (cond,) = spec["conditions"]  # v1: exactly one condition per policy
            c = cond["spec"]["condition"]
            assert cond["spec"]["severity"] and c["kind"] == "burnrate", where
            assert _DURATION.match(c["lookbackWindow"]) and _DURATION.match(c["alertAfter"])
            assert all(("AlertNotificationTarget", t["targetRef"]) in names
                       for t in spec["notificationTargets"]), where
            continue
        if d["kind"] == "AlertNotificationTarget":
            assert spec["target"], where
            continue
        assert d["kind"] == "SLO" and spec["service"], where
        assert len(spec.get("description", "")) <= 1050, where
        (window,) = spec["timeWindow"]
        assert _DURATION.match(window["duration"]) and window["isRolling"] is True, where
        assert spec["budgetingMethod"] in ("Occurrences", "Timeslices"), where
        sli = spec["indicator"]["spec"]
        assert _NAME.match(spec["indicator"]["metadata"]["name"]), where
        assert ("thresholdMetric" in sli) != ("ratioMetric" in sli), where
        if "thresholdMetric" in sli:
            _check_metric(sli["thresholdMetric"], where)
        else:
            assert isinstance(sli["ratioMetric"]["counter"], bool), where
            _check_metric(sli["ratioMetric"]["good"], where)
            _check_metric(sli["ratioMetric"]["total"], where)
        for o in spec["objectives"]:
            assert 0 <= o["target"] < 1 and o["op"] in ("lt", "lte", "gt", "gte"), where
            if spec["budgetingMethod"] == "Timeslices":
                assert 0 < o["timeSliceTarget"] <= 1, where
                assert _DURATION.match(o["timeSliceWindow"]), where
        for ref in spec.get("alertPolicies") or []:
            assert ("AlertPolicy", ref["alertPolicyRef"]) in names, where


def test_the_export_is_valid_openslo_v1_and_says_what_openslo_cannot() -> None:
    slos = [*load_slo_dir(shipped_dir("slo")), *(Slo.model_validate(d) for d in EVERY_FIELD)]
    text = export_openslo(slos, source="slo/", schedule="*/5 * * * *")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    _valid_openslo_v1(docs)
    by_name = {d["metadata"]["displayName"]: d for d in docs if d["kind"] == "SLO"}
    assert len(by_name) == len(slos)
    p99 = by_name["engine_latency_p99"]["spec"]
    assert p99["budgetingMethod"] == "Occurrences" and p99["objectives"] == [
        {"displayName": "engine_latency_p99", "op": "lt", "value": 10.0, "target": 0.99}]
    assert [r["alertPolicyRef"] for r in p99["alertPolicies"]] == [
        "dualbus-burn-30d-page-1h", "dualbus-burn-30d-page-6h", "dualbus-burn-30d-ticket-1d",
        "dualbus-burn-30d-ticket-3d"]
    # a weekly budget's rules scale: 14.4x over 14 minutes
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "AlertPolicy"}
    weekly = policies["dualbus-burn-7d-page-14m"]["spec"]["conditions"][0]["spec"]
    assert weekly["condition"]["threshold"] == 14.4 and weekly["severity"] == "page"
    # one run is one time slice: the slice is the schedule's interval
    status = by_name["status_budget"]["spec"]
    assert status["budgetingMethod"] == "Timeslices"
    assert status["objectives"][0]["timeSliceWindow"] == "5m"
    # no budget: OpenSLO's required target is a placeholder, and the annotation says so
    tput = by_name["bus_throughput"]
    assert tput["metadata"]["annotations"] == {"dualbus/budget": "none"}
    assert "alertPolicies" not in tput["spec"]
    edge = by_name["_edge_name_"]["metadata"]
    assert edge["name"] == "edge-name" and edge["annotations"]["dualbus/name"] == "_edge_name_"
    assert all(d["spec"]["indicator"]["spec"].get("thresholdMetric", d["spec"]["indicator"][
        "spec"].get("ratioMetric", {}).get("good", {}))["metricSource"]["spec"]["indicator"]
        in CATALOGUE for d in by_name.values())


@pytest.mark.parametrize(("cron", "interval"), [
    ("*/15 * * * *", "15m"), ("0 * * * *", "1h"), ("5 */6 * * *", "6h"),
    ("30 2 * * *", "1d"), ("0 9 * * 1-5", None), ("0,30 * * * *", None)])
def test_the_time_slice_is_the_schedule_interval_when_cron_says_one(
        cron: str, interval: str | None) -> None:
    assert run_interval(cron) == interval


def test_slo_import_and_export_commands(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    out = slo_dir / "imported.yaml"
    assert main(["slo", "import", *map(str, GOOD), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "5 SLOs imported from 4 files" in err and "note: " in err
    assert main(["validate", "--slo", str(slo_dir)]) == 0
    assert [s.name for s in load_slo_dir(slo_dir)][:2] == ["checkout_latency",
                                                           "checkout_errors"]
    # a failed import writes nothing and names each field, one line each, exit 2
    bad_out = tmp_path / "never.yaml"
    assert main(["slo", "import", str(DOCS / "unmappable.yaml"), "-o", str(bad_out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 6 and all("unmappable.yaml:" in ln for ln in lines)
    assert not bad_out.exists()
    assert main(["slo", "import"]) == 2
    assert "give the OpenSLO files to read" in capsys.readouterr().err
    exported = tmp_path / "openslo.yaml"
    assert main(["slo", "export", "--format", "openslo", "--slo", str(slo_dir), "-o",
                 str(exported)]) == 0
    again = import_openslo([exported]).slos
    assert [_norm(s) for s in again] == [_norm(s) for s in load_slo_dir(slo_dir)]
