"""Real deployment services for the sharded-run tests: a Dagster instance on the machine's
PostgreSQL in a database created for the test and dropped after it, and Celery workers
(`celery -A dagster_celery.app worker`) on a private Redis broker started on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from dualbus_pipeline.defs.executors import CELERY_SETTINGS
from dualbus_pipeline.stack.redis_server import RedisProcess, free_port, start_redis

PG_DSN = os.environ.get("DUALBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin(sql: str) -> None:
    con = psycopg2.connect(PG_DSN)
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database (its name), dropped at exit."""
    db = f"dualbus_test_{uuid.uuid4().hex[:10]}"
    _admin(f"CREATE DATABASE {db}")
    try:
        yield db
    finally:
        _admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@contextmanager
def postgres_dagster_home(base: Path) -> Iterator[Path]:
    """DAGSTER_HOME whose dagster.yaml keeps run, event-log and schedule storage in a new
    PostgreSQL database (dropped at exit)."""
    home = base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    with postgres_database() as db:
        # psycopg2, dagster-postgres' driver (SQLAlchemy 2.1 would pick psycopg 3 otherwise)
        url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://")
        (home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {url}/{db}\n"
            "telemetry:\n  enabled: false\n")
        yield home


@contextmanager
def redis_broker(base: Path) -> Iterator[RedisProcess]:
    proc = start_redis(free_port(), base / "broker")
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def celery_workers(base: Path, broker: str, env: Mapping[str, str], concurrency: int = 2,
                   queue: str = "dagster", name: str = "main"
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """One Celery worker (``concurrency`` pool processes) of dagster-celery's app on
    ``broker``, listening on ``queue``, named ``dualbus-test-<name>@<host>``, configured the
    way `dagster-celery worker start` does it (a dagster_celery_config module on
    PYTHONPATH); returns once it is ready."""
    conf = base / "celery_conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "dagster_celery_config.py").write_text(
        f"broker_url = {broker!r}\nresult_backend = {broker!r}\n"
        + "".join(f"{k} = {v!r}\n" for k, v in CELERY_SETTINGS.items()))
    log = base / f"celery-{name}.log"
    full = {**os.environ, **env,
            "PYTHONPATH": os.pathsep.join([str(conf), os.environ.get("PYTHONPATH", "")])}
    celery = Path(sys.executable).with_name("celery")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(celery), "-A", "dagster_celery.app", "worker", "--loglevel", "INFO",
             "--concurrency", str(concurrency), "-Q", queue, "-n", f"dualbus-test-{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            assert proc.poll() is None, f"celery worker exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"celery worker not ready: {log.read_text()}"
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
