"""A tiny Dagster code location for the daemon test: a trivial asset job with the dualbus
schedule (every minute) and sensors. Loaded by `dagster-daemon` through a workspace.yaml the
test writes; paths come from the environment the test sets."""

from __future__ import annotations

import os

from dagster import Definitions, asset, define_asset_job, in_process_executor

from dualbus_pipeline.config import AlertSink, Bus, Topology
from dualbus_pipeline.defs.resources import WarehouseResource
from dualbus_pipeline.defs.schedules import make_schedule
from dualbus_pipeline.defs.sensors import make_sensors


@asset
def heartbeat() -> int:
    return 1


job = define_asset_job("dualbus_run", selection=[heartbeat], executor_def=in_process_executor)
topology = Topology(platform="Daemonplat", buses=[Bus(name="bus", url="redis://127.0.0.1:1/0")],
                    schedule="* * * * *",
                    alerts=[AlertSink(url=os.environ.get("DUALBUS_TEST_SINK",
                                                         "json://127.0.0.1:9/hook"))])
defs = Definitions(
    assets=[heartbeat], jobs=[job], schedules=[make_schedule(job, topology)],
    sensors=make_sensors(job, topology),
    resources={"warehouse": WarehouseResource(
        path=os.environ.get("DUALBUS_TEST_WAREHOUSE", "/tmp/dualbus-daemon-test.duckdb"))})
