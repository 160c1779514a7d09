"""Crash safety (issue 9 item 2): SIGKILL `dualbus run` at random points, again and again, on
one warehouse. After every kill the warehouse opens, every run whose verdicts were stored is
whole, no sample, summary or verdict exists for any other run; at the end a normal run
completes and finds the killed runs: aborted before their verdicts, partial after.

The kill points are drawn (seeded) uniformly over a whole run's measured duration, so they
land in interpreter start-up, Dagster start-up, migration, every probe asset, the one
`slo_results` transaction, trends, the report and alert dispatch.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb

from dualbus_pipeline.stack.manager import StackManager
from tests.stack_fixtures import make_topology

KILLS = 20
SEED = 9
TINY = {"probe": {"engine_requests": 20, "engine_rate_per_s": 200, "engine_timeout_s": 0.5,
                  "bus_ping_count": 20, "bus_delivery_count": 20,
                  "bus_delivery_rate_per_s": 400, "bus_capacity_messages": 1000,
                  "bus_timeout_s": 0.5, "pair_count": 10, "pair_rate_per_s": 200,
                  "pair_timeout_s": 0.5, "min_samples": 5, "engine_hot_requests": 5,
                  "pair_hot_count": 5,
                  "late_bound_ms": 50}}
ENGINES, PAIRS = 2, 1
# counted samples (re-takes are stored too, flagged `replaced`): paced + hot per engine/pair
SAMPLES = {"engine_samples": ENGINES * (20 + 5), "bus_samples": 20 + 20,
           "pair_samples": PAIRS * (10 + 5)}
# per-run tables that only a run whose verdicts were stored may have rows in
RUN_TABLES = (*SAMPLES, "summaries", "targets", "bus_info", "stream_stats", "slo_results")


def cli_run(config: Path, wh: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dualbus_pipeline.cli", "run", "--quiet", "--config",
         str(config), "--warehouse", str(wh)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"})


def check_consistent(wh: Path) -> Counter[str]:
    """Open the warehouse read-write (as the next run would) and check every invariant;
    return the runs by status."""
    con = duckdb.connect(str(wh))
    try:
        runs = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        statuses = Counter(runs.values())
        assert set(statuses) <= {"running", "evaluated", "partial", "completed", "failed",
                                 "aborted"}, statuses
        stored = {r for r, s in runs.items() if s in ("evaluated", "partial", "completed")}
        for table in RUN_TABLES:
            owners = {r for (r,) in con.execute(f"SELECT DISTINCT run_id FROM {table}")
                      .fetchall()}
            assert owners <= stored, f"{table}: rows of runs not stored {owners - stored}"
        for run_id in stored:
            for table, n in SAMPLES.items():
                got = con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ? "
                                  "AND NOT replaced", [run_id]).fetchone()
                assert got is not None and got[0] == n, (table, run_id, got)
            for table in ("summaries", "targets", "slo_results"):
                got = con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?",
                                  [run_id]).fetchone()
                assert got is not None and got[0] > 0, (table, run_id)
        return statuses
    finally:
        con.close()


def test_sigkill_loop_keeps_the_warehouse_consistent(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    path = make_topology(tmp_path, ["a", "b"], pairs=[("a", "b")], extra=TINY)
    stack_factory(path)
    wh = tmp_path / "wh.duckdb"

    # one whole run first: its duration spreads the kill points, and its data must survive
    t0 = time.monotonic()
    first = cli_run(path, wh)
    _, err = first.communicate(timeout=120)
    duration = time.monotonic() - t0
    assert first.returncode == 0, err.decode()
    assert check_consistent(wh) == Counter(completed=1)

    rng = random.Random(SEED)
    delays = sorted(rng.uniform(0.05, duration) for _ in range(KILLS))
    rng.shuffle(delays)
    finished_before_kill = 0
    for delay in delays:
        proc = cli_run(path, wh)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            finished_before_kill += 1
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        with contextlib.suppress(ProcessLookupError):  # a burst child left behind, if any
            os.killpg(proc.pid, signal.SIGKILL)
        check_consistent(wh)

    # the next normal run works and marks the killed ones aborted (or partial)
    last = cli_run(path, wh)
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err.decode()
    statuses = check_consistent(wh)
    assert statuses["running"] == statuses["evaluated"] == 0, statuses
    assert statuses["completed"] >= 2 + finished_before_kill
    assert statuses["aborted"] >= 1, statuses  # most kills land after the run row is written
    assert finished_before_kill < KILLS / 2, "the kills did not land inside runs"
    print(f"\ncrash loop: run {duration:.1f}s, {KILLS} kills, {dict(statuses)}, "
          f"{finished_before_kill} finished before their kill")
