"""Which Dagster executor runs the job: in-process (default), multiprocess, or Celery.

`dualbus run --executor NAME` and, for `dagster dev`, the daemon and Celery workers, the
environment variable DUALBUS_EXECUTOR choose it (which also accepts ``k8s``: dagster-k8s's
``k8s_job_executor``, documented in docs/deploy.md and not tested here). Celery settings
come from the environment only (a broker URL may hold a password): DUALBUS_CELERY_BROKER
(default: the local RabbitMQ, ``amqp://guest:guest@127.0.0.1:5672//``) and
DUALBUS_CELERY_BACKEND (default ``rpc://``).
Both are handed to Dagster as ``{"env": ...}`` so the URL never lands in run storage.

``CELERY_SETTINGS`` must be the workers' settings too (docs/deploy.md, tests/deploy_fixtures.py):
a task is acknowledged when it ends, not when it starts, and put back on its queue when the
worker process running it dies, so a killed worker does not leave the run waiting for a
step that will never report; the redelivered shard step reads "worker lost mid-shard"
(shard_runner.py) and the run completes.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from dualbus_pipeline.errors import ConfigError

EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
CELERY_SETTINGS = {"task_acks_late": True, "task_reject_on_worker_lost": True,
                   "worker_prefetch_multiplier": 1}


def executor_name(explicit: str | None = None) -> str:
    """The executor asked for: ``explicit``, else DUALBUS_EXECUTOR, else in_process (k8s:
    only through DUALBUS_EXECUTOR, for a code location on Kubernetes)."""
    name = explicit or os.environ.get("DUALBUS_EXECUTOR") or "in_process"
    if name not in EXECUTORS and not (name == "k8s" and not explicit):
        where = "--executor" if explicit else "DUALBUS_EXECUTOR"
        raise ConfigError([f"{where}: unknown executor {name!r} (choose "
                           f"{', '.join(EXECUTORS)})"])
    return name


def celery_broker() -> str:
    return os.environ.get("DUALBUS_CELERY_BROKER") or DEFAULT_BROKER


def celery_backend() -> str:
    return os.environ.get("DUALBUS_CELERY_BACKEND") or DEFAULT_BACKEND


def executor_def(name: str | None = None, steps_at_once: int = 0) -> ExecutorDefinition:
    """``steps_at_once``: the multiprocess executor's process limit, at least the CPU count
    (its default): shards mostly wait on the network, and a limit of 2 on a 2-core host ran
    4 shards in two waves (docs/benchmarks.md, "Sizing")."""
    chosen = executor_name(name)
    if chosen == "in_process":
        return in_process_executor
    if chosen == "multiprocess":
        limit = max(steps_at_once, os.cpu_count() or 1)
        configured_mp: ExecutorDefinition = multiprocess_executor.configured(
            {"max_concurrent": limit})
        return configured_mp
    if chosen == "k8s":  # docs/deploy.md; not tested here (no Kubernetes on this machine)
        try:
            from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError(["DUALBUS_EXECUTOR: k8s needs dagster-k8s "
                               "(pip install dagster-k8s)"]) from None
        k8s: ExecutorDefinition = k8s_job_executor
        return k8s
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError(["executor celery: needs dagster-celery "
                           "(pip install 'dualbus[deploy]')"]) from None
    config: dict[str, Any] = {
        "broker": {"env": "DUALBUS_CELERY_BROKER"} if os.environ.get("DUALBUS_CELERY_BROKER")
        else DEFAULT_BROKER,
        "backend": {"env": "DUALBUS_CELERY_BACKEND"}
        if os.environ.get("DUALBUS_CELERY_BACKEND") else DEFAULT_BACKEND,
        "config_source": dict(CELERY_SETTINGS),
    }
    # dagster-celery 0.29 registers its task on the app once per step it submits; Celery 5.7
    # warns about each (DuplicateTaskNameWarning, a screenful per step on every run). The
    # task is the same function each time, so the warning tells a user nothing.
    warnings.filterwarnings("ignore", message=r"Task name 'execute_plan' is already registered")
    configured: ExecutorDefinition = celery_executor.configured(config)
    return configured
