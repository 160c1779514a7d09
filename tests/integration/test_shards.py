"""Sharded runs for real (issue 22): 4 shards on Dagster's multiprocess executor, and 4
vantage shards on real Celery workers (one vantage routed to a worker of its own queue) with
the Dagster instance on PostgreSQL, against a real reference stack.

What must hold whatever the executor: the results have the shape of the unsharded
in-process run (same SLOs, targets and keys), every sample is stored exactly once, a shard
whose probe process, or whose Celery worker process, is killed leaves its targets "no data:
shard failed" while the run completes, no Parquet file outlives its run or lands outside
the run's folder, and the default `dualbus run` needs no service at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from dualbus_pipeline.config import load_config
from dualbus_pipeline.sharding import plan_shards
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import free_port
from tests.deploy_fixtures import celery_workers, postgres_dagster_home, redis_broker
from tests.integration.test_pipeline import SMALL_PROBE
from tests.stack_fixtures import StackFactory, make_topology

REPO = Path(__file__).resolve().parents[2]
ENGINES = [f"e{i}" for i in range(8)]
PAIRS = [("e0", "e1"), ("e2", "e3")]
# each shard probes for ~2 s (40 requests at 20/s per engine): long enough to be killed
# mid-shard, short enough for the suite
PROBE = {**SMALL_PROBE["probe"], "engine_rate_per_s": 20, "engine_solo_requests": 0}
NO_SERVICE = {"DUALBUS_CELERY_BROKER": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StackManager]]:
    """The stack and its topology (unsharded); `sharded()` writes 4-shard variants."""
    root = tmp_path_factory.mktemp("shards")
    path = make_topology(root, ENGINES, buses=("md", "el"), pairs=PAIRS,
                         extra={"probe": PROBE})
    factory = StackFactory()
    stack = factory(path)
    yield root, stack
    factory.close()


def sharded(root: Path, name: str, **probe: Any) -> Path:
    doc = yaml.safe_load((root / "dualbus.yaml").read_text())
    doc["probe"] = {**doc["probe"], "shards": 4, **probe}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# Four shards by vantage, east's routed to the Celery workers of its own queue (one worker
# per data centre); engines two per vantage, buses md (west) and el (east), pairs with their
# from engine.
VANTAGES = ["west", "north", "south", "east"]
EAST_QUEUE = "dualbus-east"


def by_vantage(root: Path, name: str) -> Path:
    doc = yaml.safe_load((root / "dualbus.yaml").read_text())
    doc["vantages"] = [{"name": v} for v in VANTAGES[:3]] + [
        {"name": "east", "queue": EAST_QUEUE}]
    for i, engine in enumerate(doc["engines"]):
        engine["vantage"] = VANTAGES[i // 2]
    doc["buses"][1]["vantage"] = "east"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(config: Path, warehouse: Path, *args: str, env: Mapping[str, str] | None = None,
            wait: bool = True) -> Any:
    full = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",
                                                            "DUALBUS_EXECUTOR")}
    full.update(env or {})
    cmd = [sys.executable, "-m", "dualbus_pipeline.cli", "run", "--quiet", "--config",
           str(config), "--warehouse", str(warehouse), "--slo", str(REPO / "slo"), *args]
    if not wait:
        return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=300)


def wait_for_marker(proc: subprocess.Popen[str], where: Path, pattern: str) -> Path:
    """The ``running.json`` a shard writes once its probe process started."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(where.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} under {where}: {proc.communicate()}")


def results(warehouse: Path) -> dict[str, Any]:
    """The run's results.json, once the run is `completed` in the warehouse."""
    [path] = (warehouse.parent / "reports").glob("*/results.json")
    got = dict(json.loads(path.read_text()))
    assert count(warehouse, f"SELECT count(*) FROM runs WHERE run_id = '{got['run_id']}' "
                            "AND status = 'completed'") == 1
    return got


def count(warehouse: Path, sql: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def shape(r: dict[str, Any]) -> dict[str, Any]:
    return {"keys": sorted(r), "engines": sorted(e["name"] for e in r["engines"]),
            "buses": sorted(b["name"] for b in r["buses"]),
            "pairs": sorted((p["from"], p["to"]) for p in r["pairs"]),
            "slos": sorted((s["name"], s["scope"], s["target"]) for s in r["slos"]),
            "slo_keys": sorted({k for s in r["slos"] for k in s}),
            "engine_keys": sorted({k for e in r["engines"] for k in e})}


def assert_every_sample_once(wh: Path) -> None:
    for table in ("engine_samples", "bus_samples", "pair_samples"):
        assert count(wh, f"SELECT count(*) FROM {table}") == count(
            wh, f"SELECT count(*) FROM (SELECT DISTINCT target, kind, seq FROM {table})")
    assert count(wh, "SELECT count(*) FROM engine_samples WHERE kind = 'engine_http' "
                     "AND NOT replaced") == len(ENGINES) * PROBE["engine_requests"]
    assert count(wh, "SELECT count(*) FROM bus_samples WHERE kind = 'bus_delivery' "
                     "AND NOT replaced") == 2 * PROBE["bus_delivery_count"]
    assert count(wh, "SELECT count(*) FROM pair_samples WHERE kind = 'pair_roundtrip' "
                     "AND NOT replaced") == len(PAIRS) * PROBE["pair_count"]
    assert count(wh, "SELECT count(*) FROM targets WHERE vantage IS NULL") == 0


def assert_no_data(got: dict[str, Any], lost: set[str], why: str) -> None:
    """Every per-run SLO of the lost targets is no data saying ``why`` (or waits for a
    baseline): never judged on data the run does not have, never silently missing."""
    windowed = {s.name for s in load_slo_dir(REPO / "slo") if s.window}
    # an engine's stream health is read by its bus's probe, in whichever shard has the bus
    judged = [s for s in got["slos"] if s["target"] in lost and s["name"] not in windowed
              and not (s["indicator"].startswith("stream.") and s["target"] in ENGINES)]
    assert {s["outcome"] for s in judged} <= {"no_data", "pending_baseline"}, judged
    no_data = [s for s in judged if s["outcome"] == "no_data"]
    assert {s["target"] for s in no_data} == lost
    for slo in no_data:
        assert slo["reason"].startswith("no data: ") and why in slo["reason"], slo


@pytest.fixture(scope="module")
def unsharded(base: tuple[Path, StackManager],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`dualbus run` with no options, with every service variable pointing nowhere."""
    root, _ = base
    wh = tmp_path_factory.mktemp("unsharded") / "w.duckdb"
    done = run_cli(root / "dualbus.yaml", wh, env=NO_SERVICE)
    assert done.returncode == 0, done.stderr
    assert_every_sample_once(wh)
    return results(wh)


def test_default_run_needs_no_service(unsharded: dict[str, Any]) -> None:
    assert {e["vantage"] for e in unsharded["engines"]} == {os.uname().nodename}


def test_four_shards_on_the_multiprocess_executor(base: tuple[Path, StackManager],
                                                  unsharded: dict[str, Any],
                                                  tmp_path: Path) -> None:
    root, _ = base
    wh = tmp_path / "w.duckdb"
    done = run_cli(sharded(root, "mp"), wh, "--executor", "multiprocess", env=NO_SERVICE)
    assert done.returncode == 0, done.stderr
    got = results(wh)
    assert shape(got) == shape(unsharded)
    assert_every_sample_once(wh)
    assert not [s for s in got["slos"] if "shard failed" in (s["reason"] or "")]
    assert [v["vantage"] for v in got["vantages"]] == [os.uname().nodename]
    assert not list(tmp_path.rglob("*.parquet")) and not list(root.rglob("*.parquet"))


@pytest.fixture(scope="module")
def celery(base: tuple[Path, StackManager],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Celery worker on a private Redis broker, a Dagster instance on PostgreSQL; the
    environment a run and the worker share (the code location's, in a deployment)."""
    root, _ = base
    tmp = tmp_path_factory.mktemp("celery")
    config = by_vantage(root, "celery")
    with postgres_dagster_home(tmp) as home, redis_broker(tmp) as broker:
        url = f"redis://127.0.0.1:{broker.port}/0"
        env = {"DAGSTER_HOME": str(home), "DUALBUS_CELERY_BROKER": url,
               "DUALBUS_CELERY_BACKEND": url, "DUALBUS_CONFIG": str(config),
               "DUALBUS_SLO_DIR": str(REPO / "slo"),
               "DUALBUS_WAREHOUSE": str(tmp / "w.duckdb"), "DUALBUS_EXECUTOR": "celery"}
        with celery_workers(tmp, url, env), \
                celery_workers(tmp, url, env, concurrency=1, queue=EAST_QUEUE, name="east"):
            yield env


def workers_by_step(home: Path, run_id: str) -> dict[str, str]:
    """Which Celery worker ran each step, from the run's event log in PostgreSQL."""
    from dagster import DagsterInstance

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            out = {}
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                data = getattr(event, "event_specific_data", None)
                meta = getattr(data, "metadata", None) or {}
                if event is not None and "Celery worker" in meta:
                    out[str(event.step_key)] = str(meta["Celery worker"].value)
            return out
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def test_four_vantage_shards_on_celery_workers_with_postgres(celery: dict[str, str],
                                                     unsharded: dict[str, Any]) -> None:
    wh = Path(celery["DUALBUS_WAREHOUSE"])
    done = run_cli(Path(celery["DUALBUS_CONFIG"]), wh, "--executor", "celery", env=celery)
    assert done.returncode == 0, done.stderr
    assert "DuplicateTaskNameWarning" not in done.stderr  # dagster-celery's noise, silenced
    got = results(wh)
    assert shape(got) == shape(unsharded)
    assert_every_sample_once(wh)
    assert not list(wh.parent.rglob("*.parquet"))
    # every vantage its shard, its targets, its name on them
    assert {v["vantage"]: (v["engines"], v["buses"], v["pairs"]) for v in got["vantages"]} == {
        "west": (2, 1, 1), "north": (2, 0, 1), "south": (2, 0, 0), "east": (2, 1, 0)}
    assert {e["name"]: e["vantage"] for e in got["engines"]} == {
        n: VANTAGES[i // 2] for i, n in enumerate(ENGINES)}
    # east's shard ran on the worker of its queue, the others on the default queue's
    ran = workers_by_step(Path(celery["DAGSTER_HOME"]), got["run_id"])
    assert ran["probe_shards.probe_east"].startswith("dualbus-test-east@")
    assert {w.split("@")[0] for s, w in ran.items() if s != "probe_shards.probe_east"} == {
        "dualbus-test-main"}
    assert len(ran) >= 5  # four shards and the hand-off at least
    import psycopg2  # the run is in the instance's PostgreSQL storage

    home = Path(celery["DAGSTER_HOME"])
    url = yaml.safe_load((home / "dagster.yaml").read_text())["storage"]["postgres"][
        "postgres_url"]
    con = psycopg2.connect(url.replace("+psycopg2", ""))
    try:
        cur = con.cursor()
        cur.execute("SELECT status FROM runs WHERE run_id = %s", [got["run_id"]])
        assert cur.fetchone() == ("SUCCESS",)
    finally:
        con.close()


def test_a_shard_killed_mid_run_reads_no_data_and_the_run_completes(
        celery: dict[str, str]) -> None:
    config = Path(celery["DUALBUS_CONFIG"])
    wh = Path(celery["DUALBUS_WAREHOUSE"])
    shard = plan_shards(load_config(config).topology)[1]
    proc = run_cli(config, wh, "--executor", "celery", env=celery, wait=False)
    marker = wait_for_marker(proc, wh.parent / "reports",
                             f"*/shards/{shard.name}/running.json")
    run_folder = marker.parents[1]
    os.kill(json.loads(marker.read_text())["probe_pid"], signal.SIGKILL)
    # while it runs, Parquet appears only in this run's folder
    outside = [p for p in wh.parent.rglob("*.parquet") if run_folder not in p.parents]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert not outside
    run_id = run_folder.parent.name
    got = json.loads((run_folder.parent / "results.json").read_text())
    lost = {*shard.engines, *shard.buses, *(f"{a}->{b}" for a, b in
                                            (k.split("->") for k in shard.pairs))}
    assert_no_data(got, lost, "shard failed (probe process killed by signal 9)")
    # the killed shard is one vantage's: its targets are that vantage's no-data count
    assert {v["vantage"]: v["no_data"] for v in got["vantages"]} == {
        v: (len(lost) if v == shard.vantage else 0) for v in VANTAGES}
    report = (run_folder.parent / "report.md").read_text()
    assert "### By vantage" in report and f"| {shard.vantage} | 0/2 |" in report
    kept = [e for e in got["engines"] if e["name"] not in lost]
    assert kept and all(e["requests"] == PROBE["engine_requests"] for e in kept)
    assert {e["name"] for e in got["engines"]} == set(ENGINES)  # nobody silently missing
    assert not list(wh.parent.rglob("*.parquet"))
    assert count(wh, f"SELECT count(*) FROM runs WHERE run_id = '{run_id}' "
                     "AND status = 'completed'") == 1


def test_a_celery_worker_process_killed_mid_shard_reads_no_data_and_the_run_completes(
        celery: dict[str, str]) -> None:
    """SIGKILL to the Celery pool process running a shard's step: Celery puts the task back
    on its queue (CELERY_SETTINGS), a fresh pool process takes it, finds the first attempt's
    running.json and hands in "worker lost mid-shard"; the others' results stand."""
    config = Path(celery["DUALBUS_CONFIG"])
    wh = Path(celery["DUALBUS_WAREHOUSE"])
    shard = plan_shards(load_config(config).topology)[2]
    proc = run_cli(config, wh, "--executor", "celery", env=celery, wait=False)
    marker = wait_for_marker(proc, wh.parent / "reports",
                             f"*/shards/{shard.name}/running.json")
    info = json.loads(marker.read_text())
    os.kill(info["step_pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run_folder = marker.parents[1]
    got = json.loads((run_folder.parent / "results.json").read_text())
    lost = {*shard.engines, *shard.buses, *shard.pairs}
    assert lost == set(shard.engines) and lost  # south: two engines, nothing else
    assert_no_data(got, lost, f"shard failed (worker lost mid-shard: the step process "
                              f"{info['step_pid']} on {info['host']} died)")
    assert {v["vantage"]: v["no_data"] for v in got["vantages"]} == {
        v: (len(lost) if v == shard.vantage else 0) for v in VANTAGES}
    kept = [e for e in got["engines"] if e["name"] not in lost]
    assert kept and all(e["requests"] == PROBE["engine_requests"] for e in kept)
    assert not list(wh.parent.rglob("*.parquet"))
    assert count(wh, f"SELECT count(*) FROM runs WHERE run_id = '{got['run_id']}' "
                     "AND status = 'completed'") == 1


def test_a_dead_step_process_fails_the_run_in_one_line(base: tuple[Path, StackManager],
                                                       tmp_path: Path) -> None:
    """The limit docs/deploy.md states: on the multiprocess executor (which, unlike Celery,
    does not hand a lost step to another process) the process running a shard's step killed
    fails that step, Dagster skips what follows, and the run is recorded failed with one line
    naming the step; nothing of it is loaded."""
    root, _ = base
    wh = tmp_path / "w.duckdb"
    proc = run_cli(sharded(root, "dead"), wh, "--executor", "multiprocess", env=NO_SERVICE,
                   wait=False)
    marker = wait_for_marker(proc, tmp_path, "reports/*/shards/shard_2/running.json")
    os.kill(json.loads(marker.read_text())["step_pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        "dualbus: pipeline failed at probe_shards.probe_shard_2: "
        "dagster._core.executor.child_process_executor.ChildProcessCrashException"]
    assert count(wh, "SELECT count(*) FROM runs WHERE status = 'failed'") == 1
    assert count(wh, "SELECT count(*) FROM engine_samples") == 0


def test_a_shard_over_its_time_reads_no_data_timed_out(base: tuple[Path, StackManager],
                                                       tmp_path: Path) -> None:
    root, _ = base
    wh = tmp_path / "w.duckdb"
    done = run_cli(sharded(root, "slow", shard_timeout_s=0.5), wh)  # in-process, sharded
    assert done.returncode == 0, done.stderr
    got = results(wh)
    lost = {*ENGINES, *(f"{a}->{b}" for a, b in PAIRS)}  # engines and pairs take > 2 s
    assert_no_data(got, lost, "shard failed (timed out after 0.5 s (probe.shard_timeout_s))")
    assert {e["name"] for e in got["engines"]} == set(ENGINES)


def test_unreachable_broker_or_instance_is_one_line_and_nothing_written(
        base: tuple[Path, StackManager], tmp_path: Path) -> None:
    root, _ = base
    wh = tmp_path / "w.duckdb"
    home = tmp_path / "home"
    home.mkdir()
    done = run_cli(sharded(root, "nobroker"), wh, "--executor", "celery",
                   env={**NO_SERVICE, "DAGSTER_HOME": str(home)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"dualbus: DUALBUS_CELERY_BROKER: broker amqp://guest:***@127.0.0.1:"
        f"{NO_SERVICE['DUALBUS_CELERY_BROKER'].rsplit(':', 1)[1][:-2]}// is unreachable: "
        + done.stderr.split("is unreachable: ", 1)[1].strip()]
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: postgresql+psycopg2://postgres@127.0.0.1:"
        f"{free_port()}/nowhere\n")
    done = run_cli(sharded(root, "nopg"), wh, "--executor", "multiprocess",
                   env={"DAGSTER_HOME": str(home)})
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"dualbus: DAGSTER_HOME {home}: the Dagster instance's storage "
                           "is unreachable: "), line
    assert not wh.exists()
