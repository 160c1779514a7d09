"""`dualbus discover` on two real Redis buses laid out nothing like the shipped platform.

The topology the buses hold is built here; the file discover writes must reproduce it
(engines, bus/stream/group, streams: on two buses), mark its inferences, keep passwords out,
validate once its placeholders are filled, and the buses must not have changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import load_config
from dualbus_pipeline.discover import discover, parse_targets
from dualbus_pipeline.errors import ConfigError
from dualbus_pipeline.probes.resp import RespConnection
from dualbus_pipeline.stack.redis_server import RedisProcess, free_port

PASSWORD = "pa:ss/w@rd%1"
ENCODED = quote(PASSWORD, safe="")
READS = {"auth", "select", "dbsize", "scan", "xlen", "xinfo|groups", "xinfo|consumers",
         "info", "client|setinfo"}  # info: the test's own INFO commandstats


def consumer(r: redis.Redis, stream: str, group: str, *names: str) -> None:
    r.xgroup_create(stream, group, id="0", mkstream=True)
    for n in names:
        r.xgroup_createconsumer(stream, group, n)


@pytest.fixture
def buses(redis_factory: Callable[..., RedisProcess]) -> dict[str, Any]:
    md = redis_factory(password=PASSWORD)
    logic = redis_factory()
    r1 = redis.Redis(port=md.port, password=PASSWORD)
    r2 = redis.Redis(port=logic.port)
    for i in range(3):
        r1.xadd("orders.in", {"i": i})
        r1.xadd("audit.trail", {"i": i})
    consumer(r1, "orders.in", "matcher-group", "matcher-1", "matcher-2")
    consumer(r1, "orders.out", "router-cg", "router-a1")
    consumer(r1, "dualbus:probe:x", "dualbus-probe-g", "probe")
    r1.set("settings:colour", "blue")  # not a stream: SCAN TYPE stream leaves it out
    consumer(r2, "fx.quotes", "matcher-group", "matcher-3")
    consumer(r2, "signals", "workers", "hedger-eu-1")
    consumer(r2, "signals", "risk_group")
    return {"md": md, "logic": logic, "r": {"md": r1, "logic": r2},
            "urls": [f"redis://:{ENCODED}@127.0.0.1:{md.port}/0",
                     f"redis://127.0.0.1:{logic.port}/0"]}


def state(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type, and for streams their length, groups and consumers."""
    out: dict[str, Any] = {}
    for key in sorted(r.scan_iter(count=1000)):
        kind = r.type(key)
        if kind == b"stream":
            groups = [{k: g[k] for k in ("name", "consumers", "pending", "last-delivered-id")}
                      for g in r.xinfo_groups(key)]
            members = [sorted(c["name"] for c in r.xinfo_consumers(key, g["name"]))
                       for g in groups]
            out[key] = (kind, r.xlen(key), groups, members)
        else:
            out[key] = (kind,)
    return out


def counters(r: redis.Redis) -> tuple[dict[str, int], int]:
    """Calls per command (INFO commandstats) and the server's count of writes since start."""
    stats = {k.removeprefix("cmdstat_"): v["calls"]
             for k, v in r.info("commandstats").items()}
    return stats, int(r.info("persistence")["rdb_changes_since_last_save"])


def test_discover_writes_the_topology_it_read_and_writes_nothing_on_the_buses(
        buses: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    clients: dict[str, redis.Redis] = buses["r"]
    before = {n: state(r) for n, r in clients.items()}
    counted = {n: counters(r) for n, r in clients.items()}
    out = tmp_path / "dualbus.yaml"
    assert main(["discover", *buses["urls"], "--bus-names", "md,logic", "--platform", "Exchange",
                 "-o", str(out)]) == 0
    seen = capsys.readouterr()

    for name, r in clients.items():  # read-only: no write counted, only read commands sent
        calls, writes = counters(r)
        old_calls, old_writes = counted[name]
        assert writes == old_writes, name
        sent = {c for c, n in calls.items() if n > old_calls.get(c, 0)}
        assert {"scan", "xinfo|groups", "xinfo|consumers"} <= sent <= READS, (name, sent)
        assert state(r) == before[name], name

    assert seen.out == ""  # the YAML went to the file; notes and progress to stderr
    assert "bus md: 3 streams, 2 consumer groups" in seen.err
    text = out.read_text()
    for secret in (PASSWORD, ENCODED, "w@rd"):
        assert secret not in text and secret not in seen.err
    assert "dualbus:probe" not in text.replace("dualbus:probe:* key(s)", "")
    assert "settings:colour" not in text

    doc = yaml.safe_load(text)
    assert doc["platform"] == "Exchange"
    assert doc["buses"] == [
        {"name": "md", "url": f"redis://:${{BUS_MD_PASSWORD}}@127.0.0.1:{buses['md'].port}/0"},
        {"name": "logic", "url": f"redis://127.0.0.1:{buses['logic'].port}/0"}]
    engines = {e["name"]: e for e in doc["engines"]}
    assert list(engines) == ["hedger_eu", "matcher", "risk", "router"]
    assert {n: (e["bus"], e["stream"], e["group"]) for n, e in engines.items()} == {
        "hedger_eu": ("logic", "signals", "workers"),
        "matcher": ("md", "orders.in", "matcher-group"),
        "risk": ("logic", "signals", "risk_group"),
        "router": ("md", "orders.out", "router-cg")}
    assert engines["matcher"]["streams"] == [
        {"bus": "md", "stream": "orders.in", "group": "matcher-group"},
        {"bus": "logic", "stream": "fx.quotes", "group": "matcher-group"}]
    assert all("streams" not in e for n, e in engines.items() if n != "matcher")
    assert engines["router"]["url"] == "${ENGINE_ROUTER_URL}"

    assert ("# inferred from group 'matcher-group' (3 consumers: matcher-1, matcher-2, "
            "matcher-3); sure") in text
    assert "# inferred from group 'router-cg' (1 consumer: router-a1); sure" in text
    assert "# inferred from group 'risk_group' (no consumers); likely" in text
    assert ("# inferred from the consumers' names (1 consumer: hedger-eu-1); group 'workers' "
            "names no service; check") in text
    assert "# Streams nobody consumes as a group" in text
    assert '#   md: "audit.trail" (3 entries)' in text
    assert "export BUS_MD_PASSWORD" in text

    with pytest.raises(ConfigError) as exc:  # unfilled: validate names every placeholder
        load_config(out)
    problems = exc.value.problems
    unset = sorted(line.split("environment variable ")[1].split(" ")[0]
                   for line in problems if "environment variable" in line)
    # config.py also reports the emptied URL itself ("must be a http:// …"), quoting ${…}
    assert all("${BUS_MD_PASSWORD}" in line or "${ENGINE_" in line for line in problems)
    assert unset == ["'BUS_MD_PASSWORD'", "'ENGINE_HEDGER_EU_URL'", "'ENGINE_MATCHER_URL'",
                     "'ENGINE_RISK_URL'", "'ENGINE_ROUTER_URL'"]
    assert not any(PASSWORD in line for line in exc.value.problems)

    monkeypatch.setenv("BUS_MD_PASSWORD", ENCODED)
    for port, name in enumerate(engines, 9101):
        monkeypatch.setenv(f"ENGINE_{name.upper()}_URL", f"http://127.0.0.1:{port}")
    cfg = load_config(out).topology
    assert [(e.name, [(s.bus, s.stream, s.group) for s in e.consumed]) for e in cfg.engines] \
        == [("hedger_eu", [("logic", "signals", "workers")]),
            ("matcher", [("md", "orders.in", "matcher-group"),
                         ("logic", "fx.quotes", "matcher-group")]),
            ("risk", [("logic", "signals", "risk_group")]),
            ("router", [("md", "orders.out", "router-cg")])]
    with RespConnection.open(cfg.bus("md").url, 2.0) as conn:  # the filled URL logs in
        assert conn.call("PING") == b"PONG"
    capsys.readouterr()
    assert main(["validate", "--config", str(out)]) == 0
    assert "ok — platform 'Exchange': 2 buses, 4 engines" in capsys.readouterr().out


def test_health_url_template_fills_names_and_leaves_the_port_to_fill(
        buses: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = discover(parse_targets(buses["urls"], "md,logic"))
    out = tmp_path / "dualbus.yaml"
    out.write_text(found.render("Exchange", "http://{name}.svc:{port}/healthz"))
    doc = yaml.safe_load(out.read_text())
    assert {e["name"]: (e["url"], e["health_path"]) for e in doc["engines"]} == {
        n: (f"http://{n}.svc:${{ENGINE_{n.upper()}_PORT}}", "/healthz")
        for n in ("hedger_eu", "matcher", "risk", "router")}
    assert "from --health-url-template; the port is unknown: export ENGINE_RISK_PORT" in \
        out.read_text()
    monkeypatch.setenv("BUS_MD_PASSWORD", ENCODED)
    for n in ("hedger_eu", "matcher", "risk", "router"):
        monkeypatch.setenv(f"ENGINE_{n.upper()}_PORT", "8000")
    cfg = load_config(out).topology
    assert cfg.engine("matcher").health_url == "http://matcher.svc:8000/healthz"

    full = yaml.safe_load(found.render("Exchange", "https://{name}:8443/health"))
    assert full["engines"][1]["url"] == "https://matcher:8443"


def test_unreachable_bus_exits_1_with_one_masked_line_and_writes_nothing(
        buses: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "out"
    where.mkdir()
    out = where / "dualbus.yaml"
    closed = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0"
    assert main(["discover", buses["urls"][1], closed, "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dualbus: bus 'bus2' ({closed.replace(ENCODED, '***')}): cannot connect: "
                   "refused"]
    assert list(where.iterdir()) == []  # no file, no temporary left behind

    wrong = buses["urls"][0].replace(ENCODED, "not-it")
    assert main(["discover", wrong, "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "auth failed" in err[0] and "not-it" not in err[0]
    assert list(where.iterdir()) == []


def test_scan_caps_are_honoured_and_said(redis_factory: Callable[..., RedisProcess],
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bus = redis_factory()
    r = redis.Redis(port=bus.port)
    for i in range(30):
        r.xadd(f"s{i:02d}", {"i": i})
    out = tmp_path / "a.yaml"
    assert main(["discover", bus.url, "--max-streams", "10", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert ("bus bus1: kept the first 10 of 30 streams found (--max-streams): the rest are not "
            "listed") in err
    text = out.read_text()
    assert "# INCOMPLETE: kept the first 10 of 30" in text
    assert [line.split('"')[1] for line in text.splitlines() if line.startswith("#   bus1:")] \
        == [f"s{i:02d}" for i in range(10)]

    r.mset({f"k{i}": i for i in range(5000)})  # more keys than one SCAN call covers
    out = tmp_path / "b.yaml"
    assert main(["discover", bus.url, "--max-keys", "1000", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert "bus bus1: stopped after ~1,000 keys scanned (--max-keys 1,000) of 5,030" in err
    assert "# INCOMPLETE: stopped after ~1,000 keys" in out.read_text()


DISCOVER_ACL = ("resetkeys", "resetchannels", "-@all", "+scan", "+dbsize", "+xlen",
                "+xinfo|groups", "+xinfo|consumers", "%R~*")  # docs/configuration.md


def test_a_read_only_acl_user_is_enough(buses: dict[str, Any], tmp_path: Path) -> None:
    r: redis.Redis = buses["r"]["logic"]
    r.execute_command("ACL", "SETUSER", "discover", "on", ">sesame", *DISCOVER_ACL)
    r.execute_command("ACL", "LOG", "RESET")
    url = f"redis://discover:sesame@127.0.0.1:{buses['logic'].port}/0"
    found = discover(parse_targets([url]))
    assert [s.name for s in found.scans[0].streams] == ["fx.quotes", "signals"]
    assert r.execute_command("ACL", "LOG") == []  # nothing refused
    doc = yaml.safe_load(found.render("P"))
    assert doc["buses"][0]["url"] == \
        f"redis://discover:${{BUS_BUS1_PASSWORD}}@127.0.0.1:{buses['logic'].port}/0"
    with pytest.raises(redis.exceptions.NoPermissionError):  # and it cannot write
        redis.Redis.from_url(url).xadd("signals", {"x": 1})
