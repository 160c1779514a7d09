"""Sensors: the pipeline-failure alert and the dead-man switch (thin wiring over alerts/).

* `dualbus_run_failure` (run-failure sensor on the dualbus job): marks the run failed in the
  warehouse and notifies every sink through the outbox.
* `dualbus_deadman` (every minute): fires when no run completed successfully within 2x the
  schedule interval, resolves when runs resume; each tick also retries the outbox.

Both use the `warehouse` resource of the Definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunFailureSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from dualbus_pipeline.alerts import check_deadman, notify_pipeline_failure
from dualbus_pipeline.config import Topology
from dualbus_pipeline.defs.resources import WarehouseResource
from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import fail_run

if TYPE_CHECKING:  # what define_asset_job returns; not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

FAILURE_SENSOR_NAME = "dualbus_run_failure"
DEADMAN_SENSOR_NAME = "dualbus_deadman"
# A sensor tick must stay short: do not queue behind a long run holding the DuckDB lock.
SENSOR_LOCK_TIMEOUT_S = 10.0


def failure_reason(context: RunFailureSensorContext) -> str:
    """One line: the first failed step's error, else Dagster's run failure message."""
    for ev in context.get_step_failure_events():
        data = ev.step_failure_data
        if data is not None and data.error is not None:
            err = data.error
            while err.cause is not None:  # Dagster wraps the user's exception; show that one
                err = err.cause
            msg = err.message.strip().splitlines()
            return f"step {ev.step_key}: {msg[0] if msg else err.cls_name}"
    return (context.failure_event.message or "run failed").strip().splitlines()[0]


def _warehouse(resource: WarehouseResource) -> Warehouse:
    return Warehouse(resource.path, lock_timeout_s=SENSOR_LOCK_TIMEOUT_S)


def make_sensors(job: JobDefinition | UnresolvedAssetJobDefinition, topology: Topology, *,
                 deadman_interval_s: int = 60,
                 default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
                 ) -> list[SensorDefinition]:
    """The failure sensor for `job`, plus the dead-man sensor unless alerting.deadman is off."""

    @run_failure_sensor(name=FAILURE_SENSOR_NAME, monitored_jobs=[job],
                        default_status=default_status,
                        description="Alerts every sink when a dualbus run fails (the pipeline "
                        "itself, not a breached target) and marks it failed in the warehouse.")
    def dualbus_run_failure(context: RunFailureSensorContext,
                            warehouse: WarehouseResource) -> None:
        run_id = context.dagster_run.run_id
        reason = failure_reason(context)
        wh = _warehouse(warehouse)
        # Notify first: if the warehouse is the problem, the alert still goes out directly.
        summary = notify_pipeline_failure(wh, topology, run_id, reason)
        context.log.info(f"run {run_id} failed ({reason}); notified {summary.delivered} "
                         f"sink(s), {summary.pending} pending in the outbox")
        try:
            fail_run(wh, run_id, reason)
        except WarehouseError as exc:
            context.log.warning(f"could not mark run {run_id} failed in the warehouse: {exc}")

    sensors: list[SensorDefinition] = [dualbus_run_failure]
    if not topology.alerting.deadman:
        return sensors

    @sensor(name=DEADMAN_SENSOR_NAME, minimum_interval_seconds=deadman_interval_s,
            default_status=default_status,
            description="Dead-man switch: alerts when no dualbus run completed successfully "
            "within 2x the schedule interval; resolves when runs resume. Also retries "
            "undelivered notifications.")
    def dualbus_deadman(context: SensorEvaluationContext,
                        warehouse: WarehouseResource) -> SkipReason:
        try:
            status = check_deadman(_warehouse(warehouse), topology)
        except WarehouseError as exc:
            return SkipReason(f"warehouse busy or unavailable, will check next tick: {exc}")
        context.log.info(status.describe())
        return SkipReason(status.describe())

    sensors.append(dualbus_deadman)
    return sensors
