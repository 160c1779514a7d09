"""SLO spec loading: a good spec loads; each one-field mutation gives its exact one-line message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.errors import SpecError
from dualbus_pipeline.indicators import CATALOGUE
from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir

GOOD: dict[str, Any] = {
    "version": "dualbus/v1",
    "slos": [
        {"name": "latency_p99", "description": "p99 under 10 ms", "scope": "engine",
         "indicator": "engine.latency_ms", "aggregate": "p99",
         "objective": {"op": "<", "value": 10}, "severity": "error"},
        {"name": "availability", "scope": "system", "indicator": "system.availability",
         "aggregate": "ratio", "objective": {"op": ">", "value": 0.9}, "key": True,
         "window": "7d", "grades": {"A": 1.05, "B": 1.0}},
        {"name": "regression", "scope": "pair", "targets": ["risk->*"],
         "indicator": "pair.roundtrip_ms", "aggregate": "p50",
         "objective": {"op": "<=", "value": "+10%", "relative_to": "baseline"},
         "severity": "warning", "weight": 0.5},
    ],
}


def write(directory: Path, data: object, name: str = "slo.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def problems(tmp_path: Path, data: object) -> list[str]:
    d = tmp_path / "slo"
    p = write(d, data)
    with pytest.raises(SpecError) as exc:
        load_slo_dir(d)
    return [line.replace(str(p), "F") for line in exc.value.problems]


def mutate(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


def test_good_spec_loads(tmp_path: Path) -> None:
    write(tmp_path / "slo", GOOD)
    slos = load_slo_dir(tmp_path / "slo")
    assert [s.name for s in slos] == ["latency_p99", "availability", "regression"]
    assert slos[0].objective.threshold() == 10.0
    assert slos[1].window_seconds() == 7 * 86400 and slos[1].key
    assert slos[2].objective.threshold(2.0) == pytest.approx(2.2)
    assert slos[2].objective.text() == "<= +10% of baseline"


@pytest.mark.parametrize(("path", "value", "line", "expected"), [
    ("slos.0.objective.op", "<>", 9,
     "slos[0].objective.op: must be one of <, <=, >, >= (got '<>')"),
    ("slos.0.scope", "engines", 5,
     "slos[0].scope: must be one of engine, bus, pair, system (got 'engines')"),
    ("slos.0.severity", "critical", 11,
     "slos[0].severity: must be one of warning, error (got 'critical')"),
    ("slos.0.aggregate", "p98", 7,
     "slos[0].aggregate: must be one of mean, p50, p90, p95, p99, p999, max, min, ratio, rate, "
     "value (got 'p98')"),
    ("slos.0.aggregate", "ratio", 7,
     "slos[0].aggregate: must be one of mean, p50, p90, p95, p99, p999, max, min for "
     "engine.latency_ms (got 'ratio')"),
    ("slos.0.indicator", "bus.ping_ms", 6,
     "slos[0].indicator: belongs to scope bus, not engine (got 'bus.ping_ms')"),
    ("slos.0.name", "Latency P99", 3,
     "slos[0].name: String should match pattern '^[a-z0-9_]+$' (got 'Latency P99')"),
    ("slos.0.objective.value", "+10%", 10,
     "slos[0].objective.value: must be a number (an offset like '+10%' needs relative_to: "
     "baseline) (got '+10%')"),
    ("slos.0.objective.value", True, 10,
     "slos[0].objective.value: must be a number, or an offset like '+10%' with relative_to: "
     "baseline (got 'True')"),
    ("slos.2.objective.value", "10%", 32,
     "slos[2].objective.value: must be an offset like '+10%' or '-0.5' when relative_to is "
     "baseline (got '10%')"),
    ("slos.0.objective.min_delta", 1, 11,
     "slos[0].objective.min_delta: applies to a relative objective only (relative_to: "
     "baseline) (got '1')"),
    ("slos.2.objective.min_delta", -1, 34,
     "slos[2].objective.min_delta: Input should be greater than or equal to 0 (got '-1')"),
    ("slos.1.objective.value", 90, 18,
     "slos[1].objective.value: ratios are fractions between 0 and 1 (write 0.95 for 95 %) "
     "(got '90')"),
    ("slos.1.window", "7 weeks", 20,
     "slos[1].window: must be a duration like 7d or 24h, or a run count like '50 runs' "
     "(got '7 weeks')"),
    ("slos.1.grades", {"A": 1.0, "B": 1.5}, 21,
     "slos[1].grades: bands must fall with the grade: B (1.5) needs less attainment than "
     "A (1)"),
    ("slos.1.grades", {"Z": 1.0}, 21,
     "slos[1].grades: unknown grade 'Z' (grades: A+, A, A-, B+, B, B-, C+, C, C-, D+, D, D-, "
     "F)"),
    ("slos.0.weight", 0, 12,
     "slos[0].weight: Input should be greater than 0 (got '0')"),
    ("slos.0.colour", "red", 12,
     "slos[0].colour: unknown key (allowed: aggregate, blocking, budget, description, grades, "
     "indicator, key, kind, name, objective, scope, severity, targets, warning, weight, "
     "window) "
     "(got 'red')"),
    ("slos.0.indicator", DELETE, 3, "slos[0].indicator: required key is missing"),
    ("slos.1.targets", ["a"], 24,
     "slos[1].targets: system scope has a single target; remove targets (got \"['a']\")"),
    ("version", "dualbus/v2", 1,
     "version: must be 'dualbus/v1' (the only spec version this dualbus reads) "
     "(got 'dualbus/v2')"),
])
def test_one_field_mutation_gives_exact_message(tmp_path: Path, path: str, value: object,
                                                line: int, expected: str) -> None:
    got = problems(tmp_path, mutate(path, value))
    assert got == [f"F:{line}: {expected}"]


def test_every_problem_of_every_file_and_duplicates_across_files(tmp_path: Path) -> None:
    d = tmp_path / "slo"
    write(d, GOOD, "a.yaml")
    broken = mutate("slos.0.objective.op", "=")
    broken["slos"][1]["severity"] = "fatal"
    write(d, broken, "b.yaml")
    (d / "c.yaml").write_text("version: dualbus/v1\nslos: [\n")
    with pytest.raises(SpecError) as exc:
        load_slo_dir(d)
    lines = [line.replace(str(d) + "/", "") for line in exc.value.problems]
    assert lines == [
        "b.yaml:9: slos[0].objective.op: must be one of <, <=, >, >= (got '=')",
        "b.yaml:24: slos[1].severity: must be one of warning, error (got 'fatal')",
        "b.yaml:25: slos[2].name: duplicate SLO name 'regression' (first defined at "
        "a.yaml:24; names must be unique across all files)",
        "c.yaml:3: invalid YAML: expected the node content, but found '<stream end>'",
    ]


def test_empty_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="SLO directory not found"):
        load_slo_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"no SLO files \(\*\.yaml\)"):
        load_slo_dir(tmp_path / "empty")


def test_shipped_slos_load_and_cover_the_seed_targets() -> None:
    slos = {s.name: s for s in load_slo_dir(shipped_dir("slo"))}
    assert slos["engine_latency_p99"].objective.text() == "< 10"
    assert slos["engine_latency_p99"].aggregate == "p99"
    assert slos["engine_latency_p50_optimization"].objective.text() == "< 0.5"
    assert slos["bus_throughput"].objective.text() == "> 1000"
    assert slos["system_availability"].objective.text() == "> 0.9"
    assert slos["system_availability"].key and slos["system_availability"].severity == "error"
    assert slos["engine_success_ratio"].objective.text() == "> 0.95"
    assert slos["pair_roundtrip_hot_p50"].objective.text() == "< 3"
    assert slos["pair_roundtrip_hot_p50"].indicator == "pair.hot_roundtrip_ms"
    assert slos["pair_roundtrip_hot_p50"].severity == "error"
    assert slos["pair_roundtrip_p90"].objective.text() == "< 10"
    assert slos["engine_latency_p50_optimization"].indicator == "engine.hot_latency_ms"
    assert slos["system_availability_7d"].window == "7d"
    assert {s.indicator for s in slos.values()} >= {
        "bus.delivery_latency_ms", "bus.consumer_lag", "engine.latency_ms"}


def test_resolve_slo_dir_prefers_arg_then_config_neighbour(tmp_path: Path) -> None:
    assert resolve_slo_dir("x/y", None) == Path("x/y")
    assert resolve_slo_dir(None, None) == shipped_dir("slo")


def test_catalogue_entries_are_consistent() -> None:
    for name, ind in CATALOGUE.items():
        # the prefix is the scope; stream.* read the streams an engine consumes, per engine
        if name.startswith("stream."):
            assert (ind.scope, ind.table) == ("engine", "stream_stats")
        else:
            assert name.split(".")[0] == ind.scope
        assert ind.aggregates and ind.direction in ("lower", "higher")


def test_validate_command_reports_slo_problems(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "slo"
    write(d, mutate("slos.0.objective.op", "<>"))
    repo = Path(__file__).resolve().parents[2]
    code = main(["validate", "--config", str(repo / "dualbus.yaml"), "--slo", str(d)])
    err = capsys.readouterr().err
    assert code == 2
    assert "slos[0].objective.op: must be one of <, <=, >, >= (got '<>')" in err


def test_kind_and_budget_rules_name_the_field(tmp_path: Path) -> None:
    assert problems(tmp_path / "a", mutate("slos.1.kind", "tier")) == [
        "F:24: slos[1].kind: a tier SLO groups engines by latency: its indicator must be "
        "engine.latency_ms or engine.hot_latency_ms (got 'tier')"]
    assert problems(tmp_path / "b", mutate("slos.2.budget", {"target": 0.9})) == [
        "F:36: slos[2].budget: a relative objective has no error budget (no fixed good/bad "
        "line per event); remove budget (got \"{'target': 0.9}\")"]
    assert problems(tmp_path / "c", mutate("slos.0.budget", {"period": "30 days"})) == [
        "F:13: slos[0].budget.period: must be a duration like 30d, 7d or 24h (got '30 days')"]
    mean = mutate("slos.0.aggregate", "mean")
    mean["slos"][0]["budget"] = {"alerts": "burn"}
    assert problems(tmp_path / "d", mean) == [
        "F:12: slos[0].budget.target: engine.latency_ms mean has no per-request form, so its "
        "budget counts one event per run and needs a target (e.g. target: 0.99) (got 'None')"]


def test_a_warning_line_is_an_error_slos_looser_line(tmp_path: Path) -> None:
    assert problems(tmp_path / "a", mutate("slos.0.warning", {"op": "<", "value": 5})) == [
        "F:14: slos[0].warning.value: must be looser than the objective (< 10): a miss that "
        "meets it becomes a warning (got '5')"]
    assert problems(tmp_path / "b", mutate("slos.0.warning", {"op": ">", "value": 50})) == [
        "F:13: slos[0].warning.op: must point the same way as the objective (<) (got '>')"]
    warn_sev = problems(tmp_path / "c", mutate("slos.2.warning", {
        "op": "<=", "value": "+20%", "relative_to": "baseline"}))
    assert len(warn_sev) == 1 and warn_sev[0].startswith(
        "F:36: slos[2].warning: a warning line turns an error into a warning: the SLO's "
        "severity must be error")
    ok = mutate("slos.0.warning", {"op": "<", "value": 20})
    d = tmp_path / "ok"
    write(d, ok)
    assert load_slo_dir(d)[0].warning is not None
