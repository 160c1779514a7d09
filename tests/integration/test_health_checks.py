"""Health checks that fit real services (probes/health.py): HTTP codes, status words,
starting engines, Gatus-style conditions and a response-time bound, each reached against a
real HTTP server in its own process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dualbus_pipeline.config import Engine, HealthCheck, ProbeSettings, load_config
from dualbus_pipeline.errors import ConfigError
from dualbus_pipeline.probes.engine import probe_engine
from dualbus_pipeline.probes.model import EngineResult
from tests.probe_targets import health_server

FAST = ProbeSettings(engine_requests=40, engine_rate_per_s=400, engine_timeout_s=1.0,
                     engine_hot_requests=0, late_bound_ms=50, retake_fraction=0.5)


def probe(url: str, **health: Any) -> EngineResult:
    e = Engine(name="svc", url=url, bus="b", stream="s", group="g",
               health=HealthCheck(**health))
    return asyncio.run(probe_engine(e, FAST))


def errors(r: EngineResult) -> set[str | None]:
    return {e for e, rep in zip(r.samples.error, r.samples.replaced, strict=True) if not rep}


def test_status_words_other_than_healthy_count_unless_a_healthy_list_is_given() -> None:
    with health_server(body_status="operational") as srv:
        assert probe(srv.url).status == "operational"  # not an unhealthy or starting word
        strict = probe(srv.url, healthy=["healthy", "ok", "UP"])
        assert strict.status == "unhealthy"
        assert errors(strict) == {"status 'operational' is not healthy (healthy: healthy, "
                                  "ok, up)"}
        assert probe(srv.url, healthy=["operational"]).status == "operational"
    with health_server(body_status="UP") as srv:  # words are case-insensitive
        assert probe(srv.url, healthy=["up"]).status == "operational"


def test_an_initializing_engine_is_starting_not_unhealthy() -> None:
    with health_server(body_status="initializing") as srv:
        r = probe(srv.url)
    assert r.status == "starting"
    assert r.status_reason == "40/40 responses said 'initializing': starting, not yet " \
        "operational"
    assert errors(r) == {"starting: initializing"}
    with health_server(body_status="booting") as srv:  # a word of the team's own
        assert probe(srv.url, starting=["booting"]).status == "starting"


def test_which_http_codes_count() -> None:
    with health_server(status_code=202) as srv:
        assert probe(srv.url).status == "operational"  # default: any 2xx
        r = probe(srv.url, ok_codes=[200])
    assert r.status == "unhealthy" and errors(r) == {"http 202"}
    with health_server(status_code=503, body_status="maintenance") as srv:
        assert probe(srv.url, ok_codes=[200, 503], healthy=["maintenance"]).status == \
            "operational"


def test_each_failed_condition_is_named_in_the_sample() -> None:
    body = json.dumps({"status": "ok", "redis": {"connected": False}, "lag": 250,
                       "checks": [{"name": "db", "ok": True}]})
    conditions = ["[STATUS] == 200", "[BODY].redis.connected == true", "$.lag < 100",
                  "[BODY].checks[0].ok == true", "[BODY].version == 2"]
    with health_server(body=body) as srv:
        r = probe(srv.url, conditions=conditions)
        assert r.status == "unhealthy"
        assert errors(r) == {"condition [BODY].redis.connected == true failed (got false); "
                             "condition $.lag < 100 failed (got 250); "
                             "condition [BODY].version == 2 failed (got missing)"}
        assert probe(srv.url, conditions=conditions[:1] + conditions[3:4]).status == \
            "operational"


def test_a_nested_status_field_and_a_response_time_bound() -> None:
    with health_server(body=json.dumps({"health": {"state": "DOWN"}})) as srv:
        r = probe(srv.url, status_field="health.state")
    assert r.status == "unhealthy" and errors(r) == {"status down"}
    with health_server(delay_ms=20) as srv:
        slow = probe(srv.url, max_response_ms=5)
        assert slow.status == "unhealthy"
        assert all(str(e).startswith("slow: ") and str(e).endswith(" ms > 5 ms")
                   for e in errors(slow))
        assert probe(srv.url, max_response_ms=900).status == "operational"


def test_the_top_level_default_merges_under_each_engine(tmp_path: Path) -> None:
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("""\
platform: Conditions
health:
  healthy: [ok, up]
  conditions: ["[BODY].ready == true"]
buses: [{name: b, url: "redis://127.0.0.1:6390/0"}]
engines:
  - {name: a, url: "http://127.0.0.1:9001", bus: b, stream: s1, group: g1}
  - name: c
    url: http://127.0.0.1:9002
    bus: b
    stream: s2
    group: g2
    health: {healthy: [operational], max_response_ms: 50}
""")
    t = load_config(cfg).topology
    a, c = t.engine("a").health, t.engine("c").health
    assert (a.healthy, a.conditions, a.max_response_ms) == (["ok", "up"],
                                                            ["[BODY].ready == true"], None)
    assert (c.healthy, c.conditions, c.max_response_ms) == (["operational"],
                                                            ["[BODY].ready == true"], 50)
    cfg.write_text(cfg.read_text().replace('"[BODY].ready == true"', '"[BODY].lag < fast"'))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [  # once, at the default, not again under every engine
        f"{cfg}: health.conditions: condition '[BODY].lag < fast': < compares numbers: "
        "'fast' is not one"]
