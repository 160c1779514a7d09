"""The schedule from `schedule:` (cron) and `timezone:`; runs never overlap.

Each tick asks the instance for a run of the job that is still queued or going; if there is
one the tick is skipped with the reason logged (visible on the schedule's tick history in
the UI). A run worker that died leaves its run STARTED until Dagster's run monitoring marks
it failed, so enable `run_monitoring` in dagster.yaml (docs/alerts.md); meanwhile the
dead-man switch reports the missing results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
)

from dualbus_pipeline.config import Topology

if TYPE_CHECKING:  # what define_asset_job returns; not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

SCHEDULE_NAME = "dualbus_schedule"
# Statuses of a run that is still going (or about to): a new run would overlap it.
ACTIVE_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                   DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                   DagsterRunStatus.CANCELING]


def make_schedule(job: JobDefinition | UnresolvedAssetJobDefinition, topology: Topology, *,
                  name: str = SCHEDULE_NAME,
                  default_status: DefaultScheduleStatus = DefaultScheduleStatus.RUNNING,
                  ) -> ScheduleDefinition:
    """A schedule for `job` on `topology.schedule` in `topology.timezone`.

    It starts RUNNING by default so `dagster dev` (with its daemon) runs the pipeline
    without anyone pressing a button; stop it in the UI to pause."""
    job_name = job.name

    def evaluate(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        active = context.instance.get_runs(
            filters=RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=1)
        if active:
            run = active[0]
            reason = (f"skipped: run {run.run_id} of {job_name} is still "
                      f"{run.status.value.lower()}; dualbus runs never overlap")
            context.log.info(reason)
            return SkipReason(reason)
        when = context.scheduled_execution_time
        tags = {"dualbus/scheduled_for": when.isoformat()} if when else {}
        return RunRequest(tags=tags)

    return ScheduleDefinition(
        name=name, job=job, cron_schedule=topology.schedule,
        execution_timezone=topology.timezone, execution_fn=evaluate,
        default_status=default_status,
        description=f"Runs the dualbus pipeline on '{topology.schedule}' "
        f"({topology.timezone}); skips a tick while a previous run is still going.")
