"""One engine host process of the reference stack: `python -m dualbus_pipeline.stack.engine SPEC`.

Owns the behaviour of a reference engine: an aiohttp `GET <health_path>` endpoint and a
consumer-group loop on the engine's stream implementing the dualbus probe protocol
(product.md §4.3), with the injected faults of §9. A host process runs one or more engines
(SPEC is a JSON file, see `HostSpec`); by default the manager gives each engine its own
process so one engine can be killed on its own.

Deliberately light on imports (no pydantic, no config): a thousand engines start faster.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import select
import selectors
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("dualbus.stack.engine")

PROBE_TYPE = b"dualbus.probe"
MAX_BUS_CONNECTIONS = 4
# An idle consumer wakes once per block. Engines of one host start together, and with one
# fixed block they stayed in step: 1,000 engines meant 1,000 XREADGROUP timeouts landing in
# the same few milliseconds every second (run queue 26 on 2 cores, 20-120 ms stalls of the
# probe measuring them). A longer block, drawn afresh each time, spreads them out.
READ_BLOCK_MS = 5000
READ_BLOCK_JITTER = 0.5  # each block is READ_BLOCK_MS × uniform(1 - j, 1 + j)
READ_COUNT = 100
BACKOFF_START_S = 0.05
BACKOFF_MAX_S = 2.0
GROUP_SETUP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FaultSpec:
    down: bool = False
    unhealthy: bool = False
    delay_ms: float = 0.0
    error_ratio: float = 0.0
    probe_protocol: bool = True
    consume: bool = True
    reply_as: str | None = None


@dataclass(frozen=True)
class EngineSpec:
    name: str
    bind: str
    port: int
    health_path: str
    bus_url: str
    stream: str
    group: str
    fault: FaultSpec = field(default_factory=FaultSpec)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EngineSpec:
        fault = FaultSpec(**d.get("fault", {}))
        return cls(name=d["name"], bind=d["bind"], port=int(d["port"]),
                   health_path=d["health_path"], bus_url=d["bus_url"], stream=d["stream"],
                   group=d["group"], fault=fault)


@dataclass(frozen=True)
class HostSpec:
    host_id: str
    engines: list[EngineSpec]
    stream_maxlen: int = 10_000

    @classmethod
    def load(cls, path: Path) -> HostSpec:
        d = json.loads(path.read_text())
        return cls(host_id=d["host_id"],
                   engines=[EngineSpec.from_json(e) for e in d["engines"]],
                   stream_maxlen=int(d.get("stream_maxlen", 10_000)))


FINE_SPIN_S = 0.0002  # on a host loop with microsecond timers (delay faults), spin only this
COARSE_SPIN_S = 0.0015  # on a default loop (epoll: whole milliseconds), spin this much


class MicrosecondEpoll(selectors.EpollSelector):
    """epoll whose timed waits keep their microseconds: ``epoll_wait`` rounds a timeout up to
    whole milliseconds, so a host with a delay fault waits in ``select(2)`` on the epoll
    descriptor (readable when any watched socket is) and then reads the events without
    blocking. Used only by hosts with a delay fault (``host_loop``)."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            select.select([self.fileno()], [], [], timeout)
            timeout = 0
        return super().select(timeout)


class MicrosecondLoop(asyncio.SelectorEventLoop):
    """An event loop on ``MicrosecondEpoll``: its timers fire within microseconds."""

    def __init__(self) -> None:
        super().__init__(MicrosecondEpoll())


LOOP_ENV = "DUALBUS_STACK_LOOP"  # "asyncio" keeps hosts without a delay fault off uvloop


def host_loop(spec: HostSpec) -> asyncio.AbstractEventLoop:
    """A host's event loop.

    With a delay fault, microsecond timers: the delay is slept, and only its last
    ``FINE_SPIN_S`` spun. Spinning a whole 1 ms delay cost a fifth of a core at 200
    requests/s, and under CPU contention (1,000 engines and their probe on two cores) the spin
    was preempted and the delay grew by the wait (`python -m bench scale`).

    Otherwise uvloop where it is installed (not on Windows) and ``DUALBUS_STACK_LOOP`` is not
    ``asyncio``: aiohttp answering paced requests cost ~12 % less CPU per request on it
    (docs/stack.md), CPU that the engines share with the probe measuring them when a thousand
    run on one machine. uvloop's timers are whole milliseconds, hence not for
    a delay fault.
    """
    fine = hasattr(selectors, "EpollSelector") and any(e.fault.delay_ms for e in spec.engines)
    if fine:
        return MicrosecondLoop()
    if os.environ.get(LOOP_ENV, "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def precise_sleep(seconds: float) -> None:
    """Sleep `seconds` with sub-millisecond accuracy: sleep on the loop's timers, spin the rest.

    Default asyncio timers round up to the selector's 1 ms granularity, which would make a
    0.5 ms and a 0.8 ms fault indistinguishable; the spin (`sleep(0)` turns) still lets the
    engine's other requests run. On a ``MicrosecondLoop`` only the last 0.2 ms is spun.
    """
    end = time.perf_counter() + seconds
    fine = isinstance(asyncio.get_running_loop(), MicrosecondLoop)
    coarse = seconds - (FINE_SPIN_S if fine else COARSE_SPIN_S)
    if coarse > 0:
        await asyncio.sleep(coarse)
    while time.perf_counter() < end:
        await asyncio.sleep(0)


def _block_ms() -> int:
    return int(READ_BLOCK_MS * random.uniform(1 - READ_BLOCK_JITTER, 1 + READ_BLOCK_JITTER))


class EngineRuntime:
    """One engine: health handler + probe-protocol consumer, with its faults."""

    def __init__(self, spec: EngineSpec, stream_maxlen: int) -> None:
        self.spec = spec
        self.fault = spec.fault
        self.maxlen = stream_maxlen
        self.started = time.monotonic()
        self.bus_connected = False
        self.consumer = f"{spec.name}-{os.getpid()}"
        # Error diffusion rather than random draws: exactly `error_ratio` of replies fail
        # (±1 over any run of requests), starting at a random phase.
        self._error_acc = random.random()
        self.probes_handled = 0

    # -- HTTP -------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request of the engine's port: ``GET``/``HEAD <health_path>``, else 404/405.

        aiohttp's low-level server, not an ``Application``: one route needs no router,
        middlewares or match info, which cost ~17 % more CPU per request under wrk and ~7 %
        more at 5,000 paced requests/s over 1,000 engines (docs/stack.md): CPU a thousand
        engines share with the probe measuring them."""
        if request.path != self.spec.health_path:
            return web.Response(status=404, text="404: Not Found")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405: Method Not Allowed",
                                headers={"Allow": "GET,HEAD"})
        return await self.health(request)

    async def health(self, request: web.BaseRequest) -> web.Response:
        if self.fault.delay_ms:
            await precise_sleep(self.fault.delay_ms / 1000)
        if self.fault.error_ratio:
            self._error_acc += self.fault.error_ratio
            if self._error_acc >= 1.0:
                self._error_acc -= 1.0
                return web.json_response(
                    {"status": "error", "engine": self.spec.name,
                     "error": "injected fault: error_ratio"}, status=500)
        if self.fault.unhealthy:
            return web.json_response(
                {"status": "unhealthy", "engine": self.spec.name,
                 "reason": "injected fault: unhealthy"}, status=503)
        return web.json_response({
            "status": "healthy",
            "engine": self.spec.name,
            "stream": self.spec.stream,
            "bus_connected": self.bus_connected,
            "probes_handled": self.probes_handled,
            "uptime_s": round(time.monotonic() - self.started, 3),
        })

    # -- bus --------------------------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        # Named so an operator (and the MONITOR safety test) can tell engine from probe traffic.
        # A bounded, blocking pool: handlers of one XREADGROUP batch run concurrently, and an
        # unbounded pool grew to the largest batch (the soak saw bus clients climb 8 → 21).
        pool = aioredis.BlockingConnectionPool.from_url(
            self.spec.bus_url, max_connections=MAX_BUS_CONNECTIONS, timeout=5.0,
            socket_connect_timeout=2.0,
            socket_timeout=READ_BLOCK_MS * (1 + READ_BLOCK_JITTER) / 1000 + 5.0,
            health_check_interval=0, client_name=f"dualbus-engine-{self.spec.name}")
        return aioredis.Redis.from_pool(pool)

    async def ensure_group(self, client: aioredis.Redis) -> None:
        try:
            # id 0: a message XADDed between MKSTREAM by someone else and our group creation
            # is still delivered; the reference buses start empty, so there is no backlog.
            await client.xgroup_create(self.spec.stream, self.spec.group, id="0",
                                       mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def setup_group(self) -> None:
        """Create the consumer group before the HTTP port opens, so 'answers' means 'consumes'."""
        deadline = time.monotonic() + GROUP_SETUP_TIMEOUT_S
        while True:
            client = self._client()
            try:
                await self.ensure_group(client)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() > deadline:
                    log.warning("%s: bus not reachable yet (%s); consumer will keep retrying",
                                self.spec.name, exc)
                    return
                await asyncio.sleep(0.1)
            finally:
                await client.aclose()

    async def consume(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            client = self._client()
            try:
                await self.ensure_group(client)
                if not self.bus_connected:
                    log.info("%s: consuming %s as %s/%s", self.spec.name, self.spec.stream,
                             self.spec.group, self.consumer)
                self.bus_connected = True
                backoff = BACKOFF_START_S
                while True:
                    resp = await client.xreadgroup(
                        self.spec.group, self.consumer, {self.spec.stream: ">"},
                        count=READ_COUNT, block=_block_ms())
                    for _stream, entries in resp or []:
                        await self._handle_batch(client, entries)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the bus restarted empty: recreate the group
                    log.warning("%s: group vanished, recreating", self.spec.name)
                    await asyncio.sleep(0.01)
                    continue
                log.warning("%s: bus error: %s", self.spec.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.bus_connected:
                    log.warning("%s: lost the bus (%s); reconnecting", self.spec.name, exc)
                self.bus_connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                await client.aclose()

    async def _handle_batch(self, client: aioredis.Redis,
                            entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        # Hops of one batch run concurrently so an injected delay slows each hop, not the bus.
        await asyncio.gather(*(self._handle(client, fields) for _id, fields in entries))
        await client.xack(self.spec.stream, self.spec.group, *[mid for mid, _ in entries])

    async def _handle(self, client: aioredis.Redis, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"message_type") != PROBE_TYPE or not self.fault.probe_protocol:
            return  # acked by the caller, otherwise ignored
        if self.fault.delay_ms:
            await precise_sleep(self.fault.delay_ms / 1000)
        forward_to = fields.get(b"forward_to")
        if forward_to:
            out = {k: v for k, v in fields.items() if k != b"forward_to"}
            await client.xadd(forward_to, out,  # type: ignore[arg-type]
                              maxlen=self.maxlen, approximate=True)
        else:
            reply_to = fields.get(b"reply_to")
            if not reply_to:
                return
            reply = {b"correlation_id": fields.get(b"correlation_id", b""),
                     b"sent_ns": fields.get(b"sent_ns", b""),
                     b"replied_by": (self.fault.reply_as or self.spec.name).encode()}
            await client.xadd(reply_to, reply,  # type: ignore[arg-type]
                              maxlen=self.maxlen, approximate=True)
        self.probes_handled += 1


async def serve(spec: HostSpec, stop: asyncio.Event) -> int:
    runtimes = [EngineRuntime(e, spec.stream_maxlen) for e in spec.engines if not e.fault.down]
    await asyncio.gather(*(rt.setup_group() for rt in runtimes))
    consumers = [asyncio.create_task(rt.consume(), name=f"consume-{rt.spec.name}")
                 for rt in runtimes if rt.spec.fault.consume]
    runners: list[web.ServerRunner] = []
    code = 0
    try:
        for rt in runtimes:
            # access_log=None on the Server itself: ServerRunner does not pass it on
            runner = web.ServerRunner(web.Server(rt.handle, access_log=None),
                                      handle_signals=False)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, rt.spec.bind, rt.spec.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                print(f"engine {rt.spec.name}: cannot listen on {rt.spec.bind}:{rt.spec.port}: "
                      f"{exc.strerror or exc}", file=sys.stderr, flush=True)
                code = 3
                return code
            log.info("%s: listening on http://%s:%d%s", rt.spec.name, rt.spec.bind,
                     rt.spec.port, rt.spec.health_path)
        # Everything imported and built so far lives as long as the process: move it out of
        # the collector's sight. A full collection walked ~44,000 such objects in 14 ms (3 µs
        # after the freeze), stalling every request of the host meanwhile: a tail latency a
        # latency-tuned service would not have. Objects made per request are still collected.
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
    return code


async def _main(spec: HostSpec) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await serve(spec, stop)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dualbus_pipeline.stack.engine SPEC.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    spec = HostSpec.load(Path(args[0]))
    log.info("host %s: pid %d, %d engine(s)", spec.host_id, os.getpid(), len(spec.engines))
    with asyncio.Runner(loop_factory=lambda: host_loop(spec)) as runner:
        return runner.run(_main(spec))


if __name__ == "__main__":
    raise SystemExit(main())
