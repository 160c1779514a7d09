"""Breach alerts: the state machine, the notification contract, Apprise delivery via an outbox.

Pure: no Dagster imports; SQL only through `dualbus_pipeline.store.alerts`. `defs/` wires
these into the `alert_dispatch` asset, the schedule and the sensors (docs/alerts.md).
"""

from dualbus_pipeline.alerts.deadman import DeadmanStatus, check_deadman
from dualbus_pipeline.alerts.dispatch import (
    DispatchSummary,
    SinkTest,
    dispatch_alerts,
    send_test,
)
from dualbus_pipeline.alerts.pipeline import Completion, notify_pipeline_failure, run_completed

__all__ = ["Completion", "DeadmanStatus", "DispatchSummary", "SinkTest", "check_deadman",
           "dispatch_alerts", "notify_pipeline_failure", "run_completed", "send_test"]
