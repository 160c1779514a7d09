"""Sensors: the pipeline-failure alert and the dead-man switch (thin wiring over alerts/).

* `dualbus_run_failure` (run-failure sensor on the dualbus job): marks the run failed or
  partial in the warehouse and advances the pipeline-failure alert (defs/failures.py).
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

from dualbus_pipeline.alerts import check_deadman
from dualbus_pipeline.config import Topology
from dualbus_pipeline.defs.failures import record_run_failure, run_failure
from dualbus_pipeline.defs.resources import WarehouseResource
from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store import Warehouse

if TYPE_CHECKING:  # what define_asset_job returns; not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

FAILURE_SENSOR_NAME = "dualbus_run_failure"
DEADMAN_SENSOR_NAME = "dualbus_deadman"
# A sensor tick must stay short: do not queue behind a long run holding the DuckDB lock.
SENSOR_LOCK_TIMEOUT_S = 10.0


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
        failure = run_failure(context.get_step_failure_events(),
                              context.failure_event.message or "run failed")
        done = record_run_failure(_warehouse(warehouse), topology, run_id, failure)
        context.log.info(f"run {run_id} failed ({failure.line}): {done}")

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
