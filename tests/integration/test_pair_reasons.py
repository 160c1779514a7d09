"""Pairs that say why they failed, through the reference stack's real engines of both
flavours: each fault reaches its own sample error and status reason (docs/probes.md, "Pair
probe"), from the engines' consumer groups read after the round trips timed out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from dualbus_pipeline.config import Fault, load_config
from dualbus_pipeline.probes.model import PairResult
from dualbus_pipeline.probes.runner import probe_pairs
from dualbus_pipeline.stack.manager import StackManager
from tests.stack_fixtures import StackFactory, make_topology

PROBE = {"pair_count": 10, "min_samples": 5, "pair_rate_per_s": 50, "pair_timeout_s": 0.5,
         "pair_hot_count": 5}
PAIRS = [("relay", "mute"), ("mute", "relay"), ("relay", "liar"), ("relay", "gone"),
         ("relay", "echo")]
FAULTS = {"mute": Fault(probe_protocol=False), "liar": Fault(reply_as="mallory"),
          "gone": Fault(down=True)}
EXPECTED = {
    "relay->mute": "no probe protocol on mute: it consumed the forwarded message but neither "
                   "forwarded nor replied",
    "mute->relay": "mute did not forward: it consumed the probe message but nothing arrived "
                   "on relay's stream 'relay-stream'",
    "relay->liar": "reply from the wrong engine: 'mallory', not liar",
    "relay->gone": "timeout",
}


@pytest.fixture(scope="module", params=["aiohttp", "fastapi"])
def pairs(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PairResult]]:
    path = make_topology(tmp_path_factory.mktemp(f"reasons-{request.param}"),
                         ["relay", "mute", "liar", "gone", "echo"], pairs=PAIRS,
                         extra={"probe": PROBE})
    factory = StackFactory()
    try:
        manager = StackManager(load_config(path))
        factory.started.append(manager)
        manager.up(faults=FAULTS, flavour=request.param)
        results = asyncio.run(probe_pairs(manager.topology, "reasons"))
        # the evidence is read, never written: no consumer group was created or moved by it
        r = redis.Redis.from_url(manager.topology.bus("bus").url)
        assert not r.exists("gone-stream") or r.xinfo_groups("gone-stream") == []
        yield {f"{p.from_}->{p.to}": p for p in results}
    finally:
        factory.close()


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_fault_has_its_own_reason(pairs: dict[str, PairResult], key: str) -> None:
    res = pairs[key]
    assert res.status == "failed" and res.summary.ok == 0
    assert set(res.samples.error) == {EXPECTED[key]}
    assert res.status_reason.startswith(
        f"{res.summary.count}/{res.summary.count} round trips failed ({EXPECTED[key]})"), \
        res.status_reason


def test_a_healthy_pair_beside_them_is_operational(pairs: dict[str, PairResult]) -> None:
    res = pairs["relay->echo"]
    assert res.status == "operational", res.status_reason
    assert res.hot is not None and res.hot.ok == res.hot.count == 5
