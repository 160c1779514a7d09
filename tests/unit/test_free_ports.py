"""free_ports: distinct free ports (two single picks can coincide; the bench once built a
topology with one port for two engines)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dualbus_pipeline.stack import redis_server
from dualbus_pipeline.stack.redis_server import free_ports, port_is_open


def test_repeated_or_avoided_picks_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    picks: Iterator[int] = iter([41000, 41000, 41001, 41000, 41002, 41003])
    monkeypatch.setattr(redis_server, "free_port", lambda host="127.0.0.1": next(picks))
    assert free_ports(3, avoid=[41002]) == [41000, 41001, 41003]


def test_real_picks_are_distinct_and_closed() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40
    assert not any(port_is_open("127.0.0.1", p) for p in ports[:5])
