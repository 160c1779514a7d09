"""Shared fixtures: real Redis servers and pathological HTTP engines on free ports (never an
in-memory stand-in)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualbus_pipeline.stack.redis_server import RedisProcess, free_port, start_redis
from tests.fault_servers import FaultServers

pytest_plugins = ["tests.stack_fixtures"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Start real Redis servers on free ports; all are stopped at teardown."""
    started: list[RedisProcess] = []

    def start(port: int | None = None, **kwargs: object) -> RedisProcess:
        p = port or free_port()
        proc = start_redis(p, tmp_path / f"redis-{p}", **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


@pytest.fixture
def fault_server(request: pytest.FixtureRequest) -> Iterator[int]:
    """A pathological HTTP engine of the kind given by indirect parametrization
    (``{"kind": "split", "gap_s": 0.03}``: tests/fault_servers.py), on a free port."""
    port = free_port()
    servers = FaultServers({port: request.param}).start()
    try:
        yield port
    finally:
        servers.stop()
