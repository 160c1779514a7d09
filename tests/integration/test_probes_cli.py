"""`dualbus probe` end to end: real bus, real health server, JSON and table output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.stack.redis_server import RedisProcess
from tests.probe_targets import health_server


def write_config(tmp_path: Path, bus_url: str, engine_url: str) -> Path:
    path = tmp_path / "dualbus.yaml"
    path.write_text(yaml.safe_dump({
        "platform": "Foreign",
        "buses": [{"name": "b", "url": bus_url}],
        "engines": [{"name": "e", "url": engine_url, "bus": "b", "stream": "e-s",
                     "group": "e-g"}],
        "probe": {"engine_requests": 40, "bus_ping_count": 40, "bus_delivery_count": 40,
                  "bus_capacity_messages": 2000},
        "warehouse": str(tmp_path / "never.duckdb"),
    }))
    return path


def test_probe_json_and_table(tmp_path: Path, redis_server: RedisProcess,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with health_server(delay_ms=2, error_share=0.25) as srv:
        cfg = write_config(tmp_path, redis_server.url, srv.url)
        assert main(["probe", "--config", str(cfg), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert main(["probe", "--config", str(cfg), "--only", "engines"]) == 0
        table = capsys.readouterr().out
    assert doc["platform"] == "Foreign"
    assert doc["buses"][0]["status"] == "operational"
    e = doc["engines"][0]
    assert e["status"] == "unhealthy" or e["status"] == "degraded"
    assert e["success_ratio"] == pytest.approx(0.75, abs=0.03)
    assert 2.0 <= e["latency_ms"]["p50"] <= 4.0  # 2 ms injected + the loopback path
    assert "ENGINE" in table and "BUS" not in table
    assert not (tmp_path / "never.duckdb").exists()
