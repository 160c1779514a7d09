"""`dualbus run` names the engine that answers healthy on HTTP but reads nothing from its bus.

A topology unlike the shipped one: buses `west` and `east`, engine `clearing` consumes its own
stream on west and a settlement stream on east (`streams:`), engine `ledger` (reference stack
fault `consume: false`) answers /health but never reads its stream. The redis-server here is
7.0, which lists a consumer only once an entry reached it: the first run cannot tell ledger's
idle group from an unread one (OK, said so); its pair probe leaves messages in ledger's stream,
and the second run names ledger in its breaches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import redis

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import load_config
from dualbus_pipeline.stack.manager import StackManager
from tests.integration.test_pipeline import SMALL_PROBE
from tests.stack_fixtures import make_topology


def _latest(tmp_path: Path) -> dict[str, object]:
    newest = max((tmp_path / "reports").glob("*/results.json"), key=os.path.getmtime)
    return dict(json.loads(newest.read_text()))


def test_an_engine_healthy_on_http_that_reads_nothing_is_named(
        tmp_path: Path, stack_factory: Callable[..., StackManager]) -> None:
    config = make_topology(
        tmp_path, ["clearing", "ledger"], buses=("west", "east"),
        pairs=[("ledger", "clearing")], platform="Clearinghouse",
        faults={"ledger": {"consume": False}}, extra=SMALL_PROBE)
    doc = config.read_text()
    config.write_text(doc.replace(
        "name: clearing\n", "name: clearing\n  streams:\n  - {bus: west, stream: "
        "clearing-stream, group: clearing-group}\n  - {bus: east, stream: settlement, "
        "group: clearing-settle}\n", 1))
    cfg = load_config(str(config))
    assert [s.bus for s in cfg.topology.engine("clearing").consumed] == ["west", "east"]
    stack_factory(config)
    east = redis.Redis.from_url(cfg.topology.buses[1].url)
    east.xgroup_create("settlement", "clearing-settle", id="$", mkstream=True)
    east.xadd("settlement", {"trade": 1})
    got = east.xreadgroup("clearing-settle", "clearing-1", {"settlement": ">"}, count=10)
    east.xack("settlement", "clearing-settle", *[mid for mid, _ in got[0][1]])
    wh = tmp_path / "wh.duckdb"
    run = ["run", "--config", str(config), "--warehouse", str(wh), "--quiet"]

    assert main(run) == 0
    first = _latest(tmp_path)
    engines = {e["name"]: e for e in first["engines"]}  # type: ignore[attr-defined]
    assert engines["ledger"]["status"] == "operational"
    assert engines["ledger"]["consumer"]["status"] == "OK"  # Redis 7.0: cannot tell yet
    assert engines["clearing"]["consumer"] == {"status": "OK", "consumed": True,
                                               "reason": None, "streams": 2}

    assert main(run) == 0
    second = _latest(tmp_path)
    engines = {e["name"]: e for e in second["engines"]}  # type: ignore[attr-defined]
    ledger = engines["ledger"]
    assert ledger["status"] == "operational"  # /health is fine ...
    assert ledger["consumer"]["status"] == "STOP" and not ledger["consumer"]["consumed"]
    breaches = {(s["name"], s["target"]): s["reason"] for s in second["slos"]  # type: ignore
                if s["outcome"] == "breach"}
    reason = breaches[("engine_stream_consumed", "ledger")]  # ... and the run names it
    assert "Streams: ledger-stream (ledger-group) STOP: group ledger-group has no consumer" \
        in reason
    assert ("engine_stream_consumed", "clearing") not in breaches
    md = next(p for p in (tmp_path / "reports").glob("*/report.md")
              if second["run_id"] in str(p)).read_text()
    assert "| ledger | operational on HTTP, **not consuming** (STOP) |" in md
    assert "Restart or fix the stream consumer of 1 engine(s)" in md
