"""`dualbus run --executor multiprocess|celery`: the job run out of process.

The in-process path (commands/run.py) runs the job object it built. Other executors start
steps in other processes (multiprocess) or on Celery workers, which rebuild the job from
``dualbus_pipeline.definitions``: the paths and the executor travel to them through the
environment (DUALBUS_CONFIG, DUALBUS_SLO_DIR, DUALBUS_WAREHOUSE, DUALBUS_EXECUTOR), exactly
as they reach a code location under `dagster dev` or the daemon.

Both need a persistent Dagster instance. Multiprocess without DAGSTER_HOME gets a temporary
one (SQLite in a temporary folder, removed after the run); Celery needs DAGSTER_HOME, whose
storage (PostgreSQL: deploy/dagster.yaml) the workers share. The instance and the broker are
checked before anything is written to the warehouse: an unreachable one is one line naming
it, and the run is not recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dualbus_pipeline.config import mask_secrets
from dualbus_pipeline.errors import ConfigError, PipelineError

RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class OutOfProcessResult:
    """The parts of Dagster's execution result that `dualbus run` reads."""

    run_id: str
    success: bool
    all_events: list[Any] = field(default_factory=list)


@contextlib.contextmanager
def dagster_instance(executor: str) -> Iterator[Any]:
    """The instance for an out-of-process run (module docstring), checked reachable."""
    from dagster import DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        if executor == "celery":
            raise ConfigError(["--executor celery: DAGSTER_HOME is not set; Celery workers "
                               "must share the Dagster instance (see docs/deploy.md)"])
        with tempfile.TemporaryDirectory(prefix="dualbus-dagster-") as tmp:
            # quiet like the in-process run: steps' start-up events otherwise go to stderr
            instance = DagsterInstance.local_temp(tmp, overrides={
                "telemetry": {"enabled": False},
                "python_logs": {"python_log_level": "CRITICAL"}})
            try:
                yield instance
            finally:
                instance.dispose()
        return
    if not os.path.isdir(home):
        raise ConfigError([f"DAGSTER_HOME: {home!r} is not a directory"])
    logging.disable(logging.WARNING)  # dagster-postgres logs each retry at the root logger
    try:
        instance = DagsterInstance.get()
        instance.get_runs(limit=1)
    except Exception as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        first = first.removeprefix(f"({type(cause).__module__}.{type(cause).__name__}) ")
        raise PipelineError(f"DAGSTER_HOME {home}: the Dagster instance's storage is "
                            f"unreachable: {mask_secrets(first)}") from None
    finally:
        logging.disable(logging.NOTSET)
    try:
        yield instance
    finally:
        instance.dispose()


def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Connect to the Celery broker once; one line naming it when that fails."""
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=timeout_s) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"DUALBUS_CELERY_BROKER: broker {mask_secrets(url)} is "
                            f"unreachable: {first}") from None


def preflight(executor: str) -> None:
    """What an out-of-process executor needs, before the run is recorded."""
    if executor != "celery":
        return
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        raise ConfigError(["--executor celery: needs dagster-celery "
                           "(pip install 'dualbus[deploy]')"]) from None
    from dualbus_pipeline.defs.executors import celery_broker

    check_broker(celery_broker())


def execute_out_of_process(instance: Any, run_id: str, executor: str,
                           show: Callable[[str, str], None]) -> OutOfProcessResult:
    """Run the job with ``executor`` under ``run_id``; ``show(step, message)`` per step.
    The caller has set DUALBUS_CONFIG, DUALBUS_SLO_DIR and DUALBUS_WAREHOUSE."""
    from dagster import DagsterEventType, DagsterRunStatus
    from dagster._core.definitions.reconstruct import (
        ReconstructableJob,
        ReconstructableRepository,
    )
    from dagster._core.execution.api import execute_run_iterator

    from dualbus_pipeline.defs.build import JOB_NAME

    os.environ["DUALBUS_EXECUTOR"] = executor
    # One run per process from the CLI; a second one in the same process (tests) must not
    # reuse the first's definitions, built from other paths: forget the module and cache.
    sys.modules.pop("dualbus_pipeline.definitions", None)
    ReconstructableJob.get_definition.cache_clear()
    recon = ReconstructableRepository.for_module(
        "dualbus_pipeline.definitions", "defs", working_directory=os.getcwd(),
    ).get_reconstructable_job(JOB_NAME)
    job_def = recon.get_definition()
    dagster_run = instance.create_run_for_job(
        job_def=job_def, run_id=run_id, run_config=RUN_CONFIG,
        job_code_origin=recon.get_python_origin(), tags={"dualbus/executor": executor})
    events = []
    said: dict[str, str] = {}
    for event in execute_run_iterator(recon, dagster_run, instance):
        events.append(event)
        step = str(event.step_key)
        if event.event_type == DagsterEventType.STEP_OUTPUT:
            said.setdefault(step, _output_line(event))
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            took = getattr(event.event_specific_data, "duration_ms", None)
            show(step, (f"step {took / 1000:.2f}s" if took is not None else "done")
                 + (f"; {said[step]}" if said.get(step) else ""))
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            show(step, "FAILED")
    final = instance.get_run_by_id(run_id)
    return OutOfProcessResult(run_id=run_id, all_events=events,
                              success=final is not None
                              and final.status == DagsterRunStatus.SUCCESS)


def _output_line(event: Any) -> str:
    """What a step's output metadata says, for its progress line (a shard: where from, how
    many samples, how long it probed: the `[probed X s]` the in-process lines show too)."""
    data = getattr(event, "event_specific_data", None)
    meta = {k: getattr(v, "value", v) for k, v in (getattr(data, "metadata", None) or {}).items()}
    if "probe_seconds" not in meta:
        return ""
    if meta.get("failed") not in (None, "no"):
        return f"FAILED ({meta['failed']}): its {meta.get('targets')} targets read no data"
    return (f"{meta.get('targets')} targets from {meta.get('vantage')}, {meta.get('samples')} "
            f"samples [probed {float(meta['probe_seconds']):.2f}s]")
