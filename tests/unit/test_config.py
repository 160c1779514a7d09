"""Topology config: a good file loads; each mistake gives its exact one-line message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import load_config
from dualbus_pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "platform": "Orbital",
    "buses": [{"name": "quotes", "url": "redis://127.0.0.1:7001/0"},
              {"name": "orders", "url": "redis://127.0.0.1:7002/0"}],
    "engines": [
        {"name": "pricer", "url": "http://127.0.0.1:9101", "health_path": "/healthz",
         "bus": "orders", "stream": "orb.pricer.in", "group": "pricer-g"},
        {"name": "hedger", "url": "http://127.0.0.1:9102", "bus": "orders",
         "stream": "orb.hedger.in", "group": "hedger-g"},
    ],
    "pairs": [{"from": "pricer", "to": "hedger"}],
}


def write(tmp_path: Path, data: object, name: str = "dualbus.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def problems_for(tmp_path: Path, data: object) -> list[str]:
    p = write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    return [line.removeprefix(f"{p}: ") for line in exc.value.problems]


def mutate(path: str, value: object) -> dict:  # type: ignore[type-arg]
    import copy

    data = copy.deepcopy(GOOD)
    node: object = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]  # type: ignore[attr-defined]
    else:
        node[last] = value  # type: ignore[index]
    return data


_DELETE = object()


def test_good_file_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    t = cfg.topology
    assert [e.name for e in t.engines] == ["pricer", "hedger"]
    assert t.engine("pricer").health_url == "http://127.0.0.1:9101/healthz"
    assert t.engine("hedger").health_path == "/health"
    assert t.pairs[0].from_ == "pricer"
    assert t.probe.engine_requests == 100


def test_shipped_config_is_the_seed_platform() -> None:
    t = load_config(REPO / "dualbus.yaml").topology
    ports = {e.name: e.port for e in t.engines}
    assert ports == {"analytics": 8100, "backtesting": 8110, "risk": 8200, "factor": 8300,
                     "ml": 8400, "features": 8500, "websocket": 8600, "strategy": 8700,
                     "marketdata": 8800, "portfolio": 8900, "collateral": 9000,
                     "vpin": 10000, "enhanced_vpin": 10001}
    assert {b.name: b.port for b in t.buses} == {"marketdata": 6380, "engine_logic": 6381}
    assert t.engine("risk").stream == "nautilus-risk-streams"
    assert t.engine("risk").group == "risk-group"
    assert [p.key for p in t.pairs] == ["analytics->risk", "ml->strategy",
                                        "factor->portfolio", "risk->collateral"]


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("engines.0.url", "ftp://x:1", "engines[0].url: must be a http:// or https:// URL "
     "(got 'ftp://x:1')"),
    ("engines.0.url", "http://localhost", "engines[0].url: URL needs an explicit port "
     "(for example http://localhost:8200) (got 'http://localhost')"),
    ("buses.0.url", "http://127.0.0.1:7001", "buses[0].url: must be a redis:// or rediss:// "
     "URL (got 'http://127.0.0.1:7001')"),
    ("engines.1.name", "Hedger!", "engines[1].name: String should match pattern "
     "'^[a-z0-9_]+$' (got 'Hedger!')"),
    ("engines.0.health_path", "health", "engines[0].health_path: must start with '/' "
     "(got 'health')"),
    ("engines.0.colour", "blue", "engines[0].colour: unknown key (allowed: bus, group, "
     "health, health_path, name, stream, streams, title, url, vantage) (got 'blue')"),
    ("engines.0.stream", _DELETE, "engines[0].stream: required key is missing"),
    ("probe", {"engine_rate_per_s": 9000}, "probe: engine_rate_per_s=9000.0 exceeds the "
     "safety cap max_rate_per_s=5000.0; raise the cap deliberately"),
    ("scoring", {"pass_score": 70, "warning_score": 80}, "scoring: warning_score=80.0 must "
     "not exceed pass_score=70.0"),
    ("schedule", "every minute", "schedule: must be a 5-field cron expression like "
     "'*/15 * * * *' (got 'every minute')"),
])
def test_one_field_mutations(tmp_path: Path, path: str, value: object, expected: str) -> None:
    assert problems_for(tmp_path, mutate(path, value)) == [expected]


def test_an_engine_may_consume_several_streams_on_several_buses(tmp_path: Path) -> None:
    import copy

    data = copy.deepcopy(GOOD)
    hedger = data["engines"][1]
    for key in ("bus", "stream", "group"):
        del hedger[key]  # `streams:` alone: the first is the engine's own stream
    hedger["streams"] = [{"bus": "quotes", "stream": "orb.hedger.in", "group": "hedger-g"},
                         {"bus": "orders", "stream": "orb.pricer.in", "group": "hedger-g"}]
    data["pairs"] = []
    t = load_config(write(tmp_path, data)).topology
    e = t.engine("hedger")
    assert (e.bus, e.stream, e.group) == ("quotes", "orb.hedger.in", "hedger-g")
    assert [(r.bus, r.stream) for r in e.consumed] == [("quotes", "orb.hedger.in"),
                                                       ("orders", "orb.pricer.in")]
    # the single form stays valid and consumes the engine's own stream
    assert [(r.bus, r.stream, r.group) for r in t.engine("pricer").consumed] == [
        ("orders", "orb.pricer.in", "pricer-g")]
    hedger["streams"][1] = {"bus": "nowhere", "stream": "dualbus:probe:x", "group": "g"}
    assert problems_for(tmp_path, data) == [
        "engines[1].streams[1].stream: the dualbus:probe: namespace is reserved for probe "
        "keys (got 'dualbus:probe:x')"]
    hedger["streams"][1]["stream"] = "orb.audit"
    assert problems_for(tmp_path, data) == [
        "engines[1].streams[1].bus: unknown bus 'nowhere' (declared buses: orders, quotes)"]


def test_cross_checks_collected_together(tmp_path: Path) -> None:
    data = mutate("engines.1.bus", "nowhere")
    data["engines"][1]["name"] = "pricer"
    data["pairs"] = [{"from": "pricer", "to": "ghost"}]
    got = problems_for(tmp_path, data)
    assert got == [
        "engines[1].name: duplicate name 'pricer' (names must be unique)",
        "engines[1].bus: unknown bus 'nowhere' (declared buses: orders, quotes)",
        "pairs[0].to: unknown engine 'ghost'",
    ]


def test_env_expansion_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORB_HOST", "10.1.2.3")
    data = mutate("buses.0.url", "redis://${ORB_HOST}:${ORB_PORT:-7009}/0")
    t = load_config(write(tmp_path, data)).topology
    assert t.buses[0].url == "redis://10.1.2.3:7009/0"


def test_missing_env_var_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORB_PW", raising=False)
    got = problems_for(tmp_path, mutate("buses.0.url", "redis://:${ORB_PW}@h:1/0"))
    assert len(got) == 1
    assert "buses[0].url: environment variable 'ORB_PW' is not set" in got[0]


def test_secret_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORB_PW", "s3cr3t-value")
    # a bad scheme forces an error message about the field that holds the secret
    p = write(tmp_path, mutate("buses.0.url", "http://:${ORB_PW}@h:1/0"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    text = str(exc.value)
    assert "s3cr3t-value" not in text
    assert "${ORB_PW}" in text
    # a literal password is masked too
    p = write(tmp_path, mutate("buses.0.url", "http://:literalpw@h:1/0"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "literalpw" not in str(exc.value) and ":***@" in str(exc.value)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "dualbus.yaml"
    p.write_text("platform: x\nbuses: [\n  {name: a\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.problems[0].startswith(f"{p}:")
    assert "invalid YAML" in exc.value.problems[0]


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "dualbus.yaml"
    p.write_text(yaml.safe_dump(GOOD) + "platform: again\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert any("platform: duplicate key" in line for line in exc.value.problems)


def test_unsafe_yaml_tags_rejected(tmp_path: Path) -> None:
    p = tmp_path / "dualbus.yaml"
    p.write_text("platform: !!python/object/apply:os.system ['echo pwned']\nbuses: []\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "invalid YAML" in exc.value.problems[0]


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, GOOD)
    assert main(["validate", "--config", str(good), "--slo", str(REPO / "slo")]) == 0
    bad = write(tmp_path, mutate("engines.0.url", "nope"), "bad.yaml")
    assert main(["validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"{bad}: engines[0].url: must be a http:// or https:// URL")
    assert "Traceback" not in "\n".join(err)


def with_engines(n: int) -> dict[str, object]:
    """GOOD with n engines on the orders bus and no pairs."""
    return dict(GOOD, engines=[
        {"name": f"e{i}", "url": f"http://127.0.0.1:{20000 + i}", "bus": "orders",
         "stream": f"s{i}", "group": f"g{i}"} for i in range(n)], pairs=[])


def test_validate_states_the_engine_phase_and_when_it_is_long(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dualbus_pipeline.config import ProbeSettings
    from dualbus_pipeline.probes.engine import engine_phase_s

    # in flight = budget ÷ rate (default 100/s ÷ 100/s = 1: one engine at a time, so no
    # window alone is needed); an engine lasts requests + 1 periods (101 × 10 ms)
    assert engine_phase_s(ProbeSettings(), 1) == pytest.approx(1.01)
    assert engine_phase_s(ProbeSettings(), 13) == pytest.approx(13 * 1.01)
    assert engine_phase_s(ProbeSettings(), 1000) == pytest.approx(1010)
    # raised to five at 20/s each: a window of 10 requests alone per engine first (0.5 s)
    five = ProbeSettings(engine_rate_per_s=20)
    assert engine_phase_s(five, 10) == pytest.approx(5.0 + 2 * 5.05)
    assert engine_phase_s(five, 13) == pytest.approx(6.5 + 3 * 5.05)
    assert engine_phase_s(five.model_copy(update={"engine_solo_requests": 0}), 13) == \
        pytest.approx(3 * 5.05)
    capped = ProbeSettings(engine_max_send_rate_per_s=100_000, engine_concurrency=8)
    assert engine_phase_s(capped, 20) == pytest.approx(20 * 0.1 + 3 * 1.01)
    assert engine_phase_s(ProbeSettings(), 0) == 0.0

    good = write(tmp_path, GOOD)
    assert main(["validate", "--config", str(good), "--slo", str(REPO / "slo")]) == 0
    out = capsys.readouterr().out
    assert "engine phase ≈ 2.0 s: 2 engines × 100 requests at 100/s, 1 in flight" in out
    assert "alone per engine" not in out and "higher send budget" not in out
    many = with_engines(700)
    big = write(tmp_path, many, "big.yaml")
    assert main(["validate", "--config", str(big), "--slo", str(REPO / "slo")]) == 0
    out = capsys.readouterr().out
    assert "engine phase ≈ 707.0 s: 700 engines" in out and "higher send budget" in out
    assert "fewer probe.engine_requests" in out


def test_run_banner_notes_a_long_engine_phase_only(tmp_path: Path) -> None:
    from dualbus_pipeline.commands.run import banner

    short = load_config(write(tmp_path, GOOD)).topology
    lines = banner(short, tmp_path / "w.duckdb")
    assert lines == [f"dualbus: running 'Orbital' (2 buses, 2 engines, 1 pairs) → "
                     f"{tmp_path / 'w.duckdb'}"]
    many = with_engines(700)
    long = load_config(write(tmp_path, many, "big.yaml")).topology
    lines = banner(long, tmp_path / "w.duckdb")
    assert len(lines) == 2 and "700 engines" in lines[0]
    assert lines[1].startswith("  note: engine phase ≈ 707.0 s") and \
        "higher send budget" in lines[1]


def test_unset_variable_is_the_one_line_for_its_field(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine URL that is only an unset variable expands to '' and fails the URL check
    too; the user is told once, about the variable, and other fields still get their line."""
    monkeypatch.delenv("ORB_ENGINE_URL", raising=False)
    data = mutate("engines.0.url", "${ORB_ENGINE_URL}")
    data["engines"][1]["url"] = "ftp://nowhere"
    got = problems_for(tmp_path, data)
    assert len(got) == 2, got
    assert "engines[0].url: environment variable 'ORB_ENGINE_URL' is not set" in got[0]
    assert "engines[1].url: must be a http:// or https:// URL" in got[1]
