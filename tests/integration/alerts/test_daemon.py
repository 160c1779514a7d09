"""The Dagster daemon launches a scheduled run for real: nobody presses a button.

A temp DAGSTER_HOME, a workspace.yaml pointing at `daemon_location.py` (schedule every
minute, default RUNNING), `dagster-daemon run` as a subprocess; a run of the job must appear
with the schedule's tag and succeed. Up to ~60 s is spent waiting for the next minute.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.conftest import REPO

APPEAR_WITHIN_S = 80.0
SUCCEED_WITHIN_S = 40.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # Create the instance's SQLite storages before the daemon's threads race to (alembic
    # "CommandError" seen when the daemon and this test initialised them at once).
    DagsterInstance.from_config(str(home)).dispose()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: tests.integration.alerts.daemon_location\n"
        f"      working_directory: {REPO}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "DUALBUS_TEST_WAREHOUSE": str(tmp_path / "wh.duckdb")}
    log = (tmp_path / "daemon.log").open("wb")
    exe = Path(sys.executable).parent / "dagster-daemon"
    proc = subprocess.Popen([str(exe), "run", "-w", str(workspace)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield home, proc
    finally:
        # The daemon spawns a code server and run workers in its session: end them all.
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers (run workers) in the group
        log.close()


@pytest.mark.slow
def test_daemon_launches_the_scheduled_run(daemon: tuple[Path, subprocess.Popen[bytes]],
                                           tmp_path: Path) -> None:
    home, proc = daemon
    instance = DagsterInstance.from_config(str(home))
    filters = RunsFilter(job_name="dualbus_run",
                         tags={"dagster/schedule_name": "dualbus_schedule"})
    try:
        deadline = time.monotonic() + APPEAR_WITHIN_S
        runs = []
        while time.monotonic() < deadline and not runs:
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            runs = instance.get_runs(filters=filters)
            time.sleep(1)
        assert runs, ("no scheduled run within 80 s; daemon log:\n"
                      + (tmp_path / "daemon.log").read_text()[-3000:])
        run_id = runs[0].run_id
        deadline = time.monotonic() + SUCCEED_WITHIN_S
        status = runs[0].status
        while time.monotonic() < deadline and status.value not in ("SUCCESS", "FAILURE"):
            time.sleep(1)
            run = instance.get_run_by_id(run_id)
            assert run is not None
            status = run.status
        assert status == DagsterRunStatus.SUCCESS
        assert "dualbus/scheduled_for" in runs[0].tags
    finally:
        instance.dispose()
