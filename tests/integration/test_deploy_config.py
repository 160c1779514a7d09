"""deploy/dagster.yaml as docs/deploy.md uses it: copied into DAGSTER_HOME with the
DAGSTER_PG_* variables set, it makes a Dagster instance on the machine's PostgreSQL (in a
database the test creates and drops) with run, event-log and schedule storage there, a run
queue that admits one dualbus run at a time, and run monitoring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy_fixtures import PG_DSN, postgres_database

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json
from dagster import DagsterInstance
from dualbus_pipeline.defs.build import JOB_NAME, build_definitions
i = DagsterInstance.get()
job = build_definitions().resolve_job_def(JOB_NAME)
c = i.run_coordinator
print(json.dumps({
    "storage": [type(x).__name__ for x in (i.run_storage, i.event_log_storage,
                                           i.schedule_storage)],
    "coordinator": type(c).__name__,
    "limits": [dict(x) for x in c.get_run_queue_config().tag_concurrency_limits],
    "monitoring": i.run_monitoring_enabled,
    "job_tags": dict(job.tags),
}))
"""


def test_the_shipped_instance_config_runs_on_postgres(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    pg = urlsplit(PG_DSN)
    with postgres_database() as db:
        env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": pg.hostname or "",
               "DAGSTER_PG_PORT": str(pg.port or 5432), "DAGSTER_PG_DB": db,
               "DAGSTER_PG_USER": pg.username or "postgres", "DAGSTER_PG_PASSWORD": "",
               "DAGSTER_ARTIFACTS_DIR": str(tmp_path / "storage"),
               "DUALBUS_CONFIG": str(REPO / "dualbus.yaml"),
               "DUALBUS_WAREHOUSE": str(tmp_path / "w.duckdb")}
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["storage"] == ["PostgresRunStorage", "PostgresEventLogStorage",
                              "PostgresScheduleStorage"]
    assert got["coordinator"] == "QueuedRunCoordinator"
    assert {"key": "dualbus/pipeline", "value": "dualbus_run", "limit": 1} in got["limits"]
    assert got["monitoring"] is True
    assert got["job_tags"]["dualbus/pipeline"] == "dualbus_run"  # what the limit keys on


def test_the_shipped_celery_yaml_is_what_the_workers_and_the_executor_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/celery.yaml read as `dagster-celery worker start -y` reads it: it validates,
    resolves the broker and backend from the environment, and carries the executor's
    CELERY_SETTINGS (a worker without them loses a shard's task when its process dies)."""
    from dagster_celery.cli import get_validated_config

    from dualbus_pipeline.defs.executors import CELERY_SETTINGS

    monkeypatch.setenv("DUALBUS_CELERY_BROKER", "amqp://u:p@mq.example:5672//")
    monkeypatch.setenv("DUALBUS_CELERY_BACKEND", "rpc://")
    got = get_validated_config(str(REPO / "deploy" / "celery.yaml"))
    assert got["broker"] == "amqp://u:p@mq.example:5672//"
    assert got["backend"] == "rpc://"
    assert got["config_source"] == CELERY_SETTINGS
