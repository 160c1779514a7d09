"""Sharded probing's pure parts: config checks with their exact one-line messages, the plan
(every target in exactly one shard), and the Parquet hand-off round trip, on a local folder
and through fsspec (its in-memory filesystem stands for s3://)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Topology, load_config
from dualbus_pipeline.errors import ConfigError
from dualbus_pipeline.probes.failed import failed_results
from dualbus_pipeline.sharding import is_sharded, phase_topologies, plan_shards
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.handoff import (
    read_tables,
    remove_run_folder,
    run_folder,
    write_shard,
)
from dualbus_pipeline.store.runs import begin_run, store_tables
from dualbus_pipeline.store.tables import measurement_tables

ENGINES = [{"name": f"e{i}", "url": f"http://127.0.0.1:{9100 + i}", "bus": "md",
            "stream": f"e{i}-in", "group": f"e{i}-g"} for i in range(7)]
GOOD: dict[str, Any] = {
    "platform": "Orbital",
    "buses": [{"name": "md", "url": "redis://127.0.0.1:7001/0"},
              {"name": "el", "url": "redis://127.0.0.1:7002/0"}],
    "engines": ENGINES,
    "pairs": [{"from": "e0", "to": "e1"}, {"from": "e2", "to": "e3"},
              {"from": "e4", "to": "e5"}],
}


def topology(**changes: Any) -> Topology:
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return Topology.model_validate(data)


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    p = tmp_path / "dualbus.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    return [line.removeprefix(f"{p}: ") for line in exc.value.problems]


def test_default_is_unsharded() -> None:
    t = topology()
    assert not is_sharded(t)
    [only] = plan_shards(t)
    assert only.engines == tuple(e["name"] for e in ENGINES) and len(only.pairs) == 3


def test_k_shards_deal_every_target_to_exactly_one_shard() -> None:
    t = topology(probe={"shards": 3})
    shards = plan_shards(t)
    assert [s.name for s in shards] == ["shard_0", "shard_1", "shard_2"]
    assert [s.engines for s in shards] == [("e0", "e3", "e6"), ("e1", "e4"), ("e2", "e5")]
    assert [s.buses for s in shards] == [("md",), ("el",), ()]
    assert [s.pairs for s in shards] == [("e0->e1",), ("e2->e3",), ("e4->e5",)]
    assert all(s.vantage is None and s.queue is None for s in shards)


def test_vantages_group_targets_and_pairs_follow_their_from_engine() -> None:
    data = copy.deepcopy(GOOD)
    data["vantages"] = [{"name": "ldn"}, {"name": "nyc", "queue": "dualbus-nyc"}]
    data["engines"][2]["vantage"] = "nyc"
    data["engines"][4]["vantage"] = "nyc"
    data["buses"][1]["vantage"] = "nyc"
    data["pairs"][2]["vantage"] = "ldn"  # explicit beats its from engine (e4, nyc)
    t = Topology.model_validate(data)
    ldn, nyc = plan_shards(t)
    assert (ldn.name, ldn.vantage, ldn.queue) == ("ldn", "ldn", None)
    assert (nyc.name, nyc.vantage, nyc.queue) == ("nyc", "nyc", "dualbus-nyc")
    assert nyc.engines == ("e2", "e4") and nyc.buses == ("el",) and nyc.pairs == ("e2->e3",)
    assert ldn.engines == ("e0", "e1", "e3", "e5", "e6") and ldn.buses == ("md",)
    assert ldn.pairs == ("e0->e1", "e4->e5")


def test_a_shards_phases_keep_every_engine_and_bus_for_lookups() -> None:
    t = topology(probe={"shards": 3})
    tops = phase_topologies(t, plan_shards(t)[2])
    assert [b.name for b in tops["buses"].buses] == []
    assert [e.name for e in tops["engines"].engines] == ["e2", "e5"]
    assert [p.key for p in tops["pairs"].pairs] == ["e4->e5"]
    assert len(tops["pairs"].engines) == 7 and len(tops["pairs"].buses) == 2
    assert len(tops["buses"].engines) == 7


@pytest.mark.parametrize(("change", "expected"), [
    ({"probe": {"shards": 0}}, ["probe.shards: Input should be greater than or equal to 1 "
                                "(got '0')"]),
    ({"probe": {"shards": "many"}}, ["probe.shards: Input should be a valid integer, unable "
                                     "to parse string as an integer (got 'many')"]),
    ({"vantages": [{"name": "ldn"}], "probe": {"shards": 2}},
     ["probe.shards: 2 shards cannot be combined with vantages: (each vantage is one shard); "
      "remove one of the two"]),
    ({"engines": [{**ENGINES[0], "vantage": "tokyo"}, *ENGINES[1:]],
      "vantages": [{"name": "ldn"}]},
     ["engines[0].vantage: unknown vantage 'tokyo' (declared vantages: ldn)"]),
    ({"pairs": [{"from": "e0", "to": "e1", "vantage": "ldn"}]},
     ["pairs[0].vantage: unknown vantage 'ldn' (declared vantages: none; declare them under "
      "vantages:)"]),
    ({"vantages": [{"name": "ldn"}, {"name": "ldn"}]},
     ["vantages[1].name: duplicate name 'ldn' (names must be unique)"]),
    ({"probe": {"handoff": "s3://ops:hunter2@bucket/dualbus"}},
     ["probe.handoff: the URL holds a password; credentials come from the environment "
      "(e.g. AWS_ACCESS_KEY_ID), never from dualbus.yaml"]),
])
def test_bad_sharding_input_is_one_line_naming_the_field(
        tmp_path: Path, change: dict[str, Any], expected: list[str]) -> None:
    data = copy.deepcopy(GOOD)
    data.update(change)
    assert problems(tmp_path, data) == expected


def test_dualbus_run_refuses_bad_shards_with_exit_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(GOOD)
    data["probe"] = {"shards": -1}
    data["warehouse"] = str(tmp_path / "w.duckdb")
    p = tmp_path / "dualbus.yaml"
    p.write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(p)]) == 2
    assert "probe.shards: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()


def _shard_tables(t: Topology, run_id: str, name: str, vantage: str) -> dict[str, Any]:
    shard = next(s for s in plan_shards(t) if s.name == name)
    tops = phase_topologies(t, shard)
    return measurement_tables(run_id, failed_results(tops["buses"], "buses", "boom"),
                              failed_results(tops["engines"], "engines", "boom"),
                              failed_results(tops["pairs"], "pairs", "boom"), vantage)


@pytest.mark.parametrize("remote", [False, True])
def test_the_parquet_handoff_round_trips_into_the_warehouse(tmp_path: Path,
                                                            remote: bool) -> None:
    t = topology(probe={"shards": 2})
    root = "memory://dualbus-test" if remote else str(tmp_path / "handoff")
    manifests = [write_shard(root, "r1", name, f"host{i}",
                             _shard_tables(t, "r1", name, f"host{i}"), seconds=1.0,
                             error="engines: boom")
                 for i, name in enumerate(("shard_0", "shard_1"))]
    assert all(path.startswith(run_folder(root, "r1")) for m in manifests
               for path in m.files.values())
    tables = read_tables(manifests)
    assert tables["targets"].num_rows == 2 + 7 + 3
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.migrate()
    begin_run(wh, "r1", "Orbital")
    with wh.transaction() as con:
        store_tables(con, "r1", tables)
    with wh.connect() as con:
        rows = con.execute("SELECT vantage, scope, count(*) FROM targets GROUP BY ALL "
                           "ORDER BY ALL").fetchall()
        reasons = {r[0] for r in con.execute(
            "SELECT DISTINCT invalid_reason FROM summaries").fetchall()}
    assert rows == [("host0", "bus", 1), ("host0", "engine", 4), ("host0", "pair", 2),
                    ("host1", "bus", 1), ("host1", "engine", 3), ("host1", "pair", 1)]
    assert reasons == {"shard failed (boom)"}
    remove_run_folder(root, "r1")
    if remote:
        from fsspec.core import url_to_fs

        fs, _ = url_to_fs(root)
        assert not fs.exists(run_folder(root, "r1"))
    else:
        assert not list((tmp_path / "handoff").rglob("*.parquet"))


def test_results_split_by_vantage_count_targets_and_shard_failures() -> None:
    from dualbus_pipeline.report.results import by_vantage

    engines = [{"vantage": "ldn", "status": "operational", "status_reason": "ok"},
               {"vantage": "ldn", "status": "degraded", "status_reason": "slow"},
               {"vantage": "nyc", "status": "unreachable",
                "status_reason": "shard failed (timed out after 300 s)"}]
    buses = [{"vantage": "nyc", "status": "unreachable",
              "status_reason": "shard failed (timed out after 300 s)"}]
    pairs = [{"vantage": None, "status": "operational", "status_reason": ""}]
    assert by_vantage(engines, buses, pairs) == [
        {"vantage": "ldn", "engines": 2, "engines_operational": 1, "buses": 0, "pairs": 0,
         "no_data": 0, "availability": 0.5},
        {"vantage": "nyc", "engines": 1, "engines_operational": 0, "buses": 1, "pairs": 0,
         "no_data": 2, "availability": 0.0},
        {"vantage": "unknown", "engines": 0, "engines_operational": 0, "buses": 0,
         "pairs": 1, "no_data": 0, "availability": None}]


def test_validate_prints_each_shard_and_its_engine_phase(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(GOOD)
    data["vantages"] = [{"name": "ldn"}, {"name": "nyc", "queue": "dualbus-nyc"}]
    data["engines"][2]["vantage"] = "nyc"
    p = tmp_path / "dualbus.yaml"
    p.write_text(yaml.safe_dump(data))
    assert main(["validate", "--config", str(p)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "shards: 2 (one per vantage), each its own step and probe process",
        "  ldn: engines 6, buses 2, pairs 2; engine phase ≈ 6.1 s",
        "  nyc: engines 1, buses 0, pairs 1; engine phase ≈ 1.0 s; Celery queue dualbus-nyc"]
