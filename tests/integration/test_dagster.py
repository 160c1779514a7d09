"""Dagster: the Definitions snapshot, `dagster dev -w workspace.yaml`, and `dualbus check`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.defs.build import JOB_NAME, build_definitions
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.stack.redis_server import free_port
from tests.stack_fixtures import make_topology

REPO = Path(__file__).resolve().parents[2]
ASSETS = ["alert_dispatch", "bus_measurements", "engine_measurements", "graded_report",
          "pair_measurements", "slo_results", "trend_tables"]
SEED_ENGINES = ["analytics", "backtesting", "risk", "factor", "ml", "features", "websocket",
                "strategy", "marketdata", "portfolio", "collateral", "vpin", "enhanced_vpin"]


def test_definitions_snapshot() -> None:
    defs = build_definitions(REPO / "dualbus.yaml", REPO / "slo")
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == ASSETS
    slos = load_slo_dir(REPO / "slo")
    checks = sorted(k.name for k in graph.asset_check_keys)
    assert checks == sorted(s.name for s in slos)  # one check per SLO, generated from YAML
    assert [s.cron_schedule for s in defs.schedules] == ["*/15 * * * *"]  # type: ignore[union-attr]
    assert {s.name for s in defs.sensors} >= {"dualbus_run_failure", "dualbus_deadman"}
    job = defs.resolve_job_def(JOB_NAME)
    assert job.executor_def.name == "in_process"
    upstream = graph.get(graph_key("slo_results")).parent_keys
    assert sorted(k.to_user_string() for k in upstream) == [
        "bus_measurements", "engine_measurements", "pair_measurements"]


def graph_key(name: str) -> object:
    from dagster import AssetKey

    return AssetKey(name)


def test_bad_slo_yaml_fails_definition_load_with_the_validate_message(tmp_path: Path) -> None:
    from dualbus_pipeline.errors import SpecError

    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    (slo_dir / "x.yaml").write_text(
        "version: dualbus/v1\nslos:\n  - name: lat\n    scope: engine\n"
        "    indicator: engine.latency_ms\n    aggregate: p99\n"
        "    objective: {op: '<>', value: 10}\n    severity: error\n")
    with pytest.raises(SpecError) as exc:
        build_definitions(REPO / "dualbus.yaml", slo_dir)
    assert exc.value.problems[0].startswith(f"{slo_dir / 'x.yaml'}:7: slos[0].objective.op")


def _graphql(port: int, query: str) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.mark.slow
def test_dagster_dev_serves_the_graph(tmp_path: Path) -> None:
    """`dagster dev -w workspace.yaml` starts and its GraphQL API lists our assets and checks."""
    cfg = make_topology(tmp_path, ["alpha", "beta"], pairs=[("alpha", "beta")])
    port = free_port()
    env = dict(os.environ, DUALBUS_CONFIG=str(cfg), DAGSTER_HOME=str(tmp_path / "dh"),
               DAGSTER_DISABLE_TELEMETRY="1")
    (tmp_path / "dh").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w",
                             str(REPO / "workspace.yaml"), "-p", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        nodes: list[str] = []
        while time.monotonic() < deadline and sorted(nodes) != ASSETS:
            time.sleep(1)
            try:
                data = _graphql(port, "{ assetNodes { assetKey { path } } }")
                nodes = [n["assetKey"]["path"][0] for n in data["data"]["assetNodes"]]
            except (OSError, KeyError, TypeError, ValueError):
                continue
        assert sorted(nodes) == ASSETS
        data = _graphql(port, '{ assetNodeOrError(assetKey: {path: ["engine_measurements"]}) '
                        '{ ... on AssetNode { assetChecksOrError { ... on AssetChecks '
                        '{ checks { name } } } } } }')
        checks = data["data"]["assetNodeOrError"]["assetChecksOrError"]["checks"]
        assert "engine_latency_p99" in {c["name"] for c in checks}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_check_gates_on_the_seed_scenario(tmp_path: Path, stack_factory: object,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's platform (13 engines, free ports) with the seed faults: the availability
    breach (websocket down, vpin unhealthy → 84.6 % < 90 %) fails `dualbus check`."""
    cfg = make_topology(tmp_path, SEED_ENGINES, buses=("marketdata", "engine_logic"),
                        pairs=[("analytics", "risk"), ("risk", "collateral")],
                        platform="Nautilus", extra={"probe": {"engine_requests": 60,
                                                              "bus_capacity_messages": 2000,
                                                              "pair_count": 50}})
    stack = stack_factory(cfg, scenario="seed")  # type: ignore[operator]
    wh = tmp_path / "wh.duckdb"
    assert main(["check", "--config", str(stack.cfg.path), "--warehouse", str(wh),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "check FAILED" in err
    assert "system_availability [system]" in err
    assert "engine_success_ratio [websocket]" in err and "engine_success_ratio [vpin]" in err
    # breaches exactly where the faults are: a healthy engine never breaches a success,
    # availability or status objective. It may show up in a tail-latency objective (p99 < 10 ms
    # over 60 requests is one slow answer on a noisy 2-core VM: 26-40 ms host stalls seen here)
    # or when the instrument itself declared its data untrustworthy.
    for line in err.splitlines():
        for healthy in ("[risk]", "[analytics]", "[collateral]", "[ml]", "[portfolio]"):
            if healthy in line:
                assert ("no data: probe scheduling lateness" in line
                        or line.split()[1] == "engine_latency_p99"), line


@pytest.mark.slow
def test_check_passes_on_a_healthy_platform(tmp_path: Path, stack_factory: object,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_topology(tmp_path, ["alpha", "beta", "gamma"], pairs=[("alpha", "beta")],
                        extra={"probe": {"engine_requests": 60, "bus_capacity_messages": 2000,
                                         "pair_count": 50}})
    stack = stack_factory(cfg)  # type: ignore[operator]
    # The shipped SLOs minus the cross-engine p99 < 3 ms (three process wake-ups per round trip
    # put the reference engines' p99 within a few % of 3 ms on this host), and with every
    # error-severity tail objective (p99, p99.9, max) at 250 ms instead of 10: what is under
    # test is the gate, and a healthy reference engine's p99 over 60 requests reached 26-40 ms
    # on this 2-core VM when the host stalled. Everything else is the shipped set.
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    for f in (REPO / "slo").glob("*.yaml"):
        if f.name != "pairs.yaml":
            doc = yaml.safe_load(f.read_text())
            for spec in doc["slos"]:
                if spec["aggregate"] in ("p99", "p999", "max") and spec["severity"] == "error" \
                        and spec["objective"].get("relative_to") is None:
                    spec["objective"]["value"] = 250
            (slo_dir / f.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    rc = main(["check", "--config", str(stack.cfg.path), "--warehouse",
               str(tmp_path / "wh.duckdb"), "--slo", str(slo_dir), "--quiet"])
    out = capsys.readouterr()
    if rc == 0:
        assert "check passed" in out.out
        return
    # On a starved machine the probe may flag its own data as untrustworthy; that, and only
    # that, may fail a healthy platform's gate.
    breaches = [line for line in out.err.splitlines() if line.startswith("  ")]
    assert breaches and all("no data: probe scheduling lateness" in b for b in breaches), out.err
