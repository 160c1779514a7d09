"""The drop-in probe-protocol responder (`dualbus_pipeline.responder`) against a real Redis:
an engine of its own style in a separate process answering the real pair probe, and each
rule of the responder (async, bytes/str fields, the reply_to prefix, malformed messages,
non-probe messages) through real streams and groups."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from dualbus_pipeline.probes.pair import probe_pair
from dualbus_pipeline.responder import handle_probe, handle_probe_async
from dualbus_pipeline.stack.redis_server import RedisProcess
from tests.integration.test_probes_pair import topology

REPO = Path(__file__).resolve().parents[2]

# An engine as a platform team writes one: a blocking XREADGROUP loop of its own, with
# the responder called first on every message.
ENGINE = r'''
import json, signal, sys
import redis
from dualbus_pipeline.responder import handle_probe

spec = json.loads(sys.argv[1])
stop = False
def _stop(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, _stop)
r = redis.Redis.from_url(spec["url"], decode_responses=spec["decode"], socket_timeout=5)
heavy = sorted(m for m in ("dagster", "duckdb", "pydantic", "dualbus_pipeline.probes")
               if m in sys.modules)
print("ready", json.dumps(heavy), flush=True)
own = []
while not stop:
    resp = r.xreadgroup(spec["group"], spec["name"], {spec["stream"]: ">"}, count=50,
                        block=1000)
    for _stream, entries in resp or []:
        for msg_id, fields in entries:
            if handle_probe(r, spec["stream"], spec["group"], msg_id, fields,
                            engine=spec["name"]):
                continue
            own.append(fields)  # the engine's own business
            r.xack(spec["stream"], spec["group"], msg_id)
print("own", json.dumps([{str(k): str(v) for k, v in f.items()} for f in own]), flush=True)
'''


class Engine:
    def __init__(self, script: Path, url: str, name: str, decode: bool) -> None:
        r = redis.Redis.from_url(url)
        r.xgroup_create(f"{name}-stream", f"{name}-group", id="$", mkstream=True)
        spec = {"url": url, "name": name, "stream": f"{name}-stream",
                "group": f"{name}-group", "decode": decode}
        self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(spec)],
                                     cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split(maxsplit=1)
        assert first[0] == "ready", first
        self.heavy_modules: list[str] = json.loads(first[1])
        self.own: list[dict[str, str]] = []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=15)
        for line in out.splitlines():
            if line.startswith("own "):
                self.own = json.loads(line[4:])


@pytest.fixture
def engines(redis_server: RedisProcess, tmp_path: Path) -> Iterator[list[Engine]]:
    script = tmp_path / "engine.py"
    script.write_text(ENGINE)
    # one engine with bytes fields, one with decode_responses=True
    started = [Engine(script, redis_server.url, "alpha", decode=False),
               Engine(script, redis_server.url, "beta", decode=True)]
    yield started
    for e in started:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.communicate()


def test_an_engine_of_its_own_style_answers_the_pair_probe(
        redis_server: RedisProcess, engines: list[Engine]) -> None:
    alpha, beta = engines
    assert alpha.heavy_modules == beta.heavy_modules == []  # the responder alone was loaded
    r = redis.Redis.from_url(redis_server.url)
    r.xadd("beta-stream", {"message_type": "order", "qty": "3"})  # the engine's own message
    topo = topology(redis_server.url)
    res = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "runr"))
    for e in engines:
        e.stop()
    assert res.status == "operational", res.status_reason
    assert res.summary.ok == res.summary.count == 40
    assert beta.own == [{"message_type": "order", "qty": "3"}] and alpha.own == []
    sent = len(res.samples)
    for stream in ("alpha-stream", "beta-stream"):  # every message acked, probe or not
        (group,) = r.xinfo_groups(stream)
        assert group["pending"] == 0
    assert r.xlen("beta-stream") == sent + 1  # A forwarded every probe message
    assert list(r.scan_iter(match="dualbus:probe:*")) == []


# -- the rules, one message at a time --------------------------------------------------------

REPLY = "dualbus:probe:t:reply"


def setup_streams(r: redis.Redis) -> None:
    r.xgroup_create("s", "g", id="$", mkstream=True)
    r.xadd(REPLY, {"init": "1"})


def read_one(r: Any) -> tuple[Any, Any]:
    ((_, [(msg_id, fields)]),) = r.xreadgroup("g", "c", {"s": ">"}, count=1)
    return msg_id, fields


def pending(r: redis.Redis) -> int:
    return int(r.xpending("s", "g")["pending"])


def replies(r: redis.Redis) -> list[dict[bytes, bytes]]:
    return [f for _, f in r.xrange(REPLY) if b"init" not in f]


@pytest.mark.parametrize("decode", [False, True])
def test_reply_and_forward_with_bytes_or_str_fields(redis_server: RedisProcess,
                                                    decode: bool) -> None:
    r = redis.Redis.from_url(redis_server.url, decode_responses=decode)
    raw = redis.Redis.from_url(redis_server.url)
    setup_streams(raw)
    raw.xadd("s", {"message_type": "dualbus.probe", "correlation_id": "c1", "sent_ns": "7",
                   "forward_to": "next", "reply_to": REPLY})
    msg_id, fields = read_one(r)
    assert isinstance(msg_id, str) is decode
    assert handle_probe(r, "s", "g", msg_id, fields, engine="a") is True
    assert pending(raw) == 0
    ((_, fwd),) = raw.xrange("next")
    assert fwd == {b"message_type": b"dualbus.probe", b"correlation_id": b"c1",
                   b"sent_ns": b"7", b"reply_to": REPLY.encode()}
    raw.xadd("s", fwd)  # now without forward_to: the reply
    msg_id, fields = read_one(r)
    assert handle_probe(r, "s", "g", msg_id, fields, engine="b") is True
    assert replies(raw) == [{b"correlation_id": b"c1", b"sent_ns": b"7", b"replied_by": b"b"}]
    assert pending(raw) == 0


def test_async_variant(redis_server: RedisProcess) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    setup_streams(raw)
    raw.xadd("s", {"message_type": "dualbus.probe", "correlation_id": "c2", "sent_ns": "9",
                   "reply_to": REPLY})
    raw.xadd("s", {"message_type": "tick"})

    async def go() -> list[bool]:
        r = aioredis.Redis.from_url(redis_server.url)
        try:
            resp: Any = await r.xreadgroup("g", "c", {"s": ">"}, count=10)
            return [await handle_probe_async(r, "s", "g", mid, f, engine="b")
                    for mid, f in resp[0][1]]
        finally:
            await r.aclose()

    assert asyncio.run(go()) == [True, False]
    assert replies(raw) == [{b"correlation_id": b"c2", b"sent_ns": b"9", b"replied_by": b"b"}]
    assert pending(raw) == 1  # the tick is the engine's to acknowledge


def test_a_non_probe_message_is_left_to_the_engine(redis_server: RedisProcess) -> None:
    r = redis.Redis.from_url(redis_server.url)
    setup_streams(r)
    r.xadd("s", {"message_type": "trade", "forward_to": "elsewhere", "reply_to": REPLY})
    msg_id, fields = read_one(r)
    assert handle_probe(r, "s", "g", msg_id, fields, engine="a") is False
    assert pending(r) == 1  # not acked
    assert not r.exists("elsewhere") and replies(r) == []


@pytest.mark.parametrize("fields", [
    {"reply_to": "orders"},                      # outside dualbus:probe:
    {"reply_to": "orders", "forward_to": "next"},  # refused at the first hop too
    {"reply_to": "dualbus:probes"},
    {},                                          # no reply_to at all
    {"reply_to": REPLY, "correlation_id": ""},   # no correlation id
    {"reply_to": "dualbus:probe:t:gone"},        # a reply stream that no longer exists
    {"reply_to": "dualbus:probe:t:str"},         # a key of another type
    {"reply_to": REPLY, "forward_to": "dualbus:probe:t:str"},
], ids=["outside", "outside-forward", "lookalike", "none", "no-cid", "gone", "wrongtype",
        "forward-wrongtype"])
def test_a_malformed_probe_message_is_acked_and_writes_nothing_else(
        redis_server: RedisProcess, fields: dict[str, str]) -> None:
    r = redis.Redis.from_url(redis_server.url)
    setup_streams(r)
    r.set("dualbus:probe:t:str", "x")
    for stream in ("orders", "dualbus:probes"):  # existing streams outside the prefix
        r.xadd(stream, {"o": "1"})
    before = sorted(r.keys("*"))
    r.xadd("s", {"message_type": "dualbus.probe", "correlation_id": "c3", "sent_ns": "1",
                 **fields})
    msg_id, got = read_one(r)
    assert handle_probe(r, "s", "g", msg_id, got, engine="a") is True  # never raises
    assert pending(r) == 0
    assert sorted(r.keys("*")) == before  # no key created (next, gone, ...)
    assert r.xlen("orders") == r.xlen("dualbus:probes") == 1
    assert r.get("dualbus:probe:t:str") == b"x"
    assert replies(r) == []
