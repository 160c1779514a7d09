"""Fixtures for the alert tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualbus_pipeline.stack.redis_server import free_port
from dualbus_pipeline.store import Warehouse
from tests.integration.alerts.support import CaptureSink


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., CaptureSink]]:
    """`sink_factory()` starts a capture server on a free port; `sink_factory(start=False)`
    only reserves the port (a sink that is down). All are stopped at teardown."""
    made: list[CaptureSink] = []

    def make(*, start: bool = True, port: int | None = None) -> CaptureSink:
        s = CaptureSink(port or free_port())
        made.append(s)
        return s.start() if start else s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def sink(sink_factory: Callable[..., CaptureSink]) -> CaptureSink:
    return sink_factory()


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "dualbus.duckdb", lock_timeout_s=5)
