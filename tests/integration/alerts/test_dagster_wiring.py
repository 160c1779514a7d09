"""The schedule and sensors evaluated by Dagster's own test contexts on a real instance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    SkipReason,
    asset,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
    in_process_executor,
)

from dualbus_pipeline.defs.resources import WarehouseResource
from dualbus_pipeline.defs.schedules import make_schedule
from dualbus_pipeline.defs.sensors import (
    DEADMAN_SENSOR_NAME,
    FAILURE_SENSOR_NAME,
    make_sensors,
)
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run
from tests.integration.alerts.support import CaptureSink, record_run, rows, topology

JOB = "dualbus_run"


@asset
def probe_everything() -> None:
    raise RuntimeError("bus marketdata refused every connection")


def _defs(sink: CaptureSink, wh_path: Path, **kw: object) -> Definitions:
    topo = topology([sink.url()], **kw)  # type: ignore[arg-type]
    job = define_asset_job(JOB, selection=[probe_everything], executor_def=in_process_executor)
    return Definitions(assets=[probe_everything], jobs=[job],
                       schedules=[make_schedule(job, topo)], sensors=make_sensors(job, topo),
                       resources={"warehouse": WarehouseResource(path=str(wh_path))})


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A real, persistent (sqlite) instance: schedule contexts need an instance ref."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    inst = DagsterInstance.local_temp(tempdir=str(home))
    yield inst
    inst.dispose()


def test_definitions_load_with_schedule_and_sensors(sink: CaptureSink, tmp_path: Path) -> None:
    defs = _defs(sink, tmp_path / "wh.duckdb", schedule="5 */2 * * *")
    Definitions.validate_loadable(defs)
    sched = defs.resolve_schedule_def("dualbus_schedule")
    assert sched.cron_schedule == "5 */2 * * *"
    assert sched.execution_timezone == "UTC"
    assert sched.default_status.value == "RUNNING"
    assert {s.name for s in defs.sensors or []} == {FAILURE_SENSOR_NAME, DEADMAN_SENSOR_NAME}
    no_deadman = _defs(sink, tmp_path / "wh.duckdb", deadman=False)
    assert {s.name for s in no_deadman.sensors or []} == {FAILURE_SENSOR_NAME}


def test_schedule_skips_while_a_run_is_still_going(sink: CaptureSink, tmp_path: Path,
                                                   instance: DagsterInstance) -> None:
    sched = _defs(sink, tmp_path / "wh.duckdb").resolve_schedule_def("dualbus_schedule")
    when = datetime(2025, 3, 3, 12, 15, tzinfo=UTC)
    with build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        data = sched.evaluate_tick(ctx)
    assert data.run_requests and isinstance(data.run_requests[0], RunRequest)
    assert data.run_requests[0].tags["dualbus/scheduled_for"] == when.isoformat()

    # Runs of another job never block; a started run of our job does.
    instance.add_run(DagsterRun(job_name="other_job", run_id="other-1",
                                status=DagsterRunStatus.STARTED))
    with build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        assert sched.evaluate_tick(ctx).run_requests
    instance.add_run(DagsterRun(job_name=JOB, run_id="still-going",
                                status=DagsterRunStatus.STARTED))
    with build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        data = sched.evaluate_tick(ctx)
    assert not data.run_requests
    assert data.skip_message == ("skipped: run still-going of dualbus_run is still started; "
                                 "dualbus runs never overlap")
    # Finished runs do not block.
    instance.report_run_canceled(instance.get_run_by_id("still-going"))  # type: ignore[arg-type]
    with build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        assert sched.evaluate_tick(ctx).run_requests


def test_run_failure_sensor_alerts_and_marks_the_run_failed(
        sink: CaptureSink, tmp_path: Path, instance: DagsterInstance) -> None:
    wh_path = tmp_path / "wh.duckdb"
    defs = _defs(sink, wh_path)
    result = defs.resolve_job_def(JOB).execute_in_process(instance=instance,
                                                          raise_on_error=False)
    assert not result.success
    run_id = result.dagster_run.run_id
    wh = Warehouse(wh_path)
    begin_run(wh, run_id, "Testplat")  # what the first asset records when a run starts

    failure_sensor = defs.resolve_sensor_def(FAILURE_SENSOR_NAME)
    with build_run_status_sensor_context(
            sensor_name=FAILURE_SENSOR_NAME, dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run,
            resources={"warehouse": WarehouseResource(path=str(wh_path))}) as ctx:
        ctx.resources  # noqa: B018 - built here so this `with` tears them down
        failure_sensor(ctx)  # type: ignore[call-arg]

    assert sink.titles() == ["FIRING error: pipeline run failed on Testplat"]
    msg = sink.posts[0].json["message"]
    assert ("pipeline failed at probe_everything: RuntimeError: bus marketdata refused every "
            "connection") in msg
    assert f"Run: {run_id}" in msg
    (status, error), = rows(wh, "SELECT status, error FROM runs WHERE run_id = ?", [run_id])
    assert status == "failed" and "refused every connection" in error


def test_deadman_sensor_fires_from_the_warehouse(sink: CaptureSink, tmp_path: Path,
                                                 instance: DagsterInstance) -> None:
    wh_path = tmp_path / "wh.duckdb"
    defs = _defs(sink, wh_path, schedule="* * * * *")
    record_run(Warehouse(wh_path), "old-run", [],
               at=datetime.now(UTC) - timedelta(minutes=5))
    deadman = defs.resolve_sensor_def(DEADMAN_SENSOR_NAME)
    with build_sensor_context(instance=instance, resources={
            "warehouse": WarehouseResource(path=str(wh_path))}) as ctx:
        data = deadman.evaluate_tick(ctx)
    assert not data.run_requests
    assert data.skip_message is not None and data.skip_message.startswith(
        "dead-man firing (fired): last successful run 300s ago, allowed 120s")
    assert sink.titles() == ["FIRING error: dualbus.deadman on Testplat"]
    # A second tick stays quiet.
    with build_sensor_context(instance=instance, resources={
            "warehouse": WarehouseResource(path=str(wh_path))}) as ctx:
        assert isinstance(deadman(ctx), SkipReason)  # type: ignore[call-arg]
    assert len(sink.posts) == 1
