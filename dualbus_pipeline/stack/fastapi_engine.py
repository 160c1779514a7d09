"""One engine of the reference stack's `fastapi` flavour:
`python -m dualbus_pipeline.stack.fastapi_engine SPEC.json`.

Owns an engine built the way a platform team typically builds a service: a FastAPI app served
by uvicorn with its default loop and HTTP settings (`GET <health_path>` → JSON), and a
blocking redis-py consumer loop in a background thread that speaks the dualbus probe
protocol (product.md §4.3) the way a platform's engine would: through the shipped drop-in
`dualbus_pipeline.responder.handle_probe`, with the injected faults of §9 around it. The
aiohttp flavour (`stack.engine`) is the tuned engine; this one is what dualbus meets on real
platforms, so the bench can tell how faithfully the probe reads both.

SPEC is the JSON of `stack.engine.HostSpec` with exactly one engine. Shares no code with the
probes (the responder is the platform's side of the protocol, not the instrument's) and none
with `stack.engine` (whose imports, aiohttp among them, a FastAPI service
would not load); deliberately no pydantic models of ours and no config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dualbus_pipeline.responder import handle_probe, is_probe

log = logging.getLogger("dualbus.stack.fastapi_engine")

READ_COUNT = 50
READ_BLOCK_MS = 1000
BACKOFF_START_S = 0.05
BACKOFF_MAX_S = 2.0
GROUP_SETUP_TIMEOUT_S = 5.0
SPIN_S = 0.0002  # the most of a delay fault that is spun rather than slept
# uvicorn's default loop is uvloop where installed: timers of whole milliseconds on a clock
# read once per loop turn. A shorter wait is rounded to 0 (a bare yield, i.e. a spin) or 1 ms.
MIN_TIMER_S = 0.001


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
    stream_maxlen: int = 10_000

    @classmethod
    def load(cls, path: Path) -> EngineSpec:
        """The one engine of a host spec; more or fewer is an error (one process per engine)."""
        d = json.loads(path.read_text())
        engines = d.get("engines", [])
        if len(engines) != 1:
            raise ValueError(f"{path}: a fastapi engine process serves exactly one engine "
                             f"(got {len(engines)})")
        e = engines[0]
        return cls(name=e["name"], bind=e["bind"], port=int(e["port"]),
                   health_path=e["health_path"], bus_url=e["bus_url"], stream=e["stream"],
                   group=e["group"], fault=FaultSpec(**e.get("fault", {})),
                   stream_maxlen=int(d.get("stream_maxlen", 10_000)))


async def accurate_sleep(seconds: float) -> None:
    """Sleep on the loop's timers, spinning (with yields, so other requests run) at most the
    last `SPIN_S`. On uvloop a wait ends up to ~0.5 ms early or ~0.8 ms late, so the delay is
    accurate to that, not to microseconds as in the aiohttp flavour."""
    end = time.perf_counter() + seconds
    while (left := end - time.perf_counter()) > SPIN_S:
        await asyncio.sleep(max(left - SPIN_S, MIN_TIMER_S))
    while time.perf_counter() < end:
        await asyncio.sleep(0)


def blocking_sleep(seconds: float) -> None:
    """The consumer thread's delay: `time.sleep` overshoots by ~0.1-0.3 ms, the spin is a
    floor for the few sleeps that would come back early."""
    end = time.perf_counter() + seconds
    if seconds > SPIN_S:
        time.sleep(seconds - SPIN_S)
    while time.perf_counter() < end:
        pass


class EngineState:
    """What the HTTP side reports about the consumer thread (plain attributes: one writer)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.bus_connected = False
        self.probes_handled = 0


def build_app(spec: EngineSpec, state: EngineState) -> FastAPI:
    app = FastAPI(title=f"{spec.name} engine")
    fault = spec.fault
    # Error diffusion rather than random draws: exactly `error_ratio` of replies fail (±1 over
    # any run of requests), from a random phase, as in the aiohttp flavour.
    error_acc = random.random()

    @app.get(spec.health_path, response_model=None)
    async def health() -> dict[str, Any] | JSONResponse:
        nonlocal error_acc
        if fault.delay_ms:
            await accurate_sleep(fault.delay_ms / 1000)
        if fault.error_ratio:
            error_acc += fault.error_ratio
            if error_acc >= 1.0:
                error_acc -= 1.0
                return JSONResponse({"status": "error", "engine": spec.name,
                                     "error": "injected fault: error_ratio"}, status_code=500)
        if fault.unhealthy:
            return JSONResponse({"status": "unhealthy", "engine": spec.name,
                                 "reason": "injected fault: unhealthy"}, status_code=503)
        return {"status": "healthy", "engine": spec.name, "stream": spec.stream,
                "bus_connected": state.bus_connected, "probes_handled": state.probes_handled,
                "uptime_s": round(time.monotonic() - state.started, 3)}

    return app


class ProbeConsumer:
    """The engine's consumer-group loop on its stream, blocking, in a daemon thread."""

    def __init__(self, spec: EngineSpec, state: EngineState) -> None:
        self.spec = spec
        self.state = state
        self.consumer = f"{spec.name}-{os.getpid()}"

    def _client(self) -> redis.Redis:
        # Named so an operator (and the MONITOR safety test) can tell engine from probe traffic.
        return redis.Redis.from_url(
            self.spec.bus_url, socket_connect_timeout=2.0,
            socket_timeout=READ_BLOCK_MS / 1000 + 5.0,
            client_name=f"dualbus-engine-{self.spec.name}")

    def ensure_group(self, client: redis.Redis) -> None:
        try:
            client.xgroup_create(self.spec.stream, self.spec.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def setup_group(self) -> None:
        """Create the group before the HTTP port opens, so 'answers' means 'consumes'."""
        deadline = time.monotonic() + GROUP_SETUP_TIMEOUT_S
        while True:
            client = self._client()
            try:
                self.ensure_group(client)
                self.state.bus_connected = True
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() > deadline:
                    log.warning("%s: bus not reachable yet (%s); consumer will keep retrying",
                                self.spec.name, exc)
                    return
                time.sleep(0.1)
            finally:
                client.close()

    def run(self) -> None:
        backoff = BACKOFF_START_S
        announced = False
        while True:
            client = self._client()
            try:
                self.ensure_group(client)
                if not (announced and self.state.bus_connected):
                    announced = True
                    log.info("%s: consuming %s as %s/%s", self.spec.name, self.spec.stream,
                             self.spec.group, self.consumer)
                self.state.bus_connected = True
                backoff = BACKOFF_START_S
                self._consume(client)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the bus restarted empty: recreate the group
                    log.warning("%s: group vanished, recreating", self.spec.name)
                    time.sleep(0.01)
                    continue
                log.warning("%s: bus error: %s", self.spec.name, exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.state.bus_connected:
                    log.warning("%s: lost the bus (%s); reconnecting", self.spec.name, exc)
                self.state.bus_connected = False
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                client.close()

    def _consume(self, client: redis.Redis) -> None:
        spec = self.spec
        while True:
            resp: Any = client.xreadgroup(spec.group, self.consumer, {spec.stream: ">"},
                                          count=READ_COUNT, block=READ_BLOCK_MS)
            for _stream, entries in resp or []:
                # One message after the other, as a blocking consumer does: a delay fault
                # queues the hops of a batch behind each other.
                for msg_id, fields in entries:
                    if not self._probe(client, msg_id, fields):
                        # the engine's own message (or a probe with the protocol off):
                        # acked, otherwise ignored
                        client.xack(spec.stream, spec.group, msg_id)

    def _probe(self, client: redis.Redis, msg_id: bytes, fields: dict[bytes, bytes]) -> bool:
        """The faults around the drop-in responder; True when it handled (and acked) it."""
        fault = self.spec.fault
        if not fault.probe_protocol or not is_probe(fields):
            return False
        if fault.delay_ms:
            blocking_sleep(fault.delay_ms / 1000)
        handle_probe(client, self.spec.stream, self.spec.group, msg_id, fields,
                     engine=fault.reply_as or self.spec.name, maxlen=self.spec.stream_maxlen)
        self.state.probes_handled += 1
        return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dualbus_pipeline.stack.fastapi_engine SPEC.json",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        spec = EngineSpec.load(Path(args[0]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"fastapi engine: bad spec: {exc!r}", file=sys.stderr, flush=True)
        return 2
    log.info("engine %s: pid %d, fastapi on http://%s:%d%s", spec.name, os.getpid(),
             spec.bind, spec.port, spec.health_path)
    state = EngineState()
    consumer = ProbeConsumer(spec, state)
    consumer.setup_group()
    if spec.fault.consume:
        threading.Thread(target=consumer.run, name=f"consume-{spec.name}",
                         daemon=True).start()
    # uvicorn handles SIGTERM/SIGINT itself: graceful shutdown, then the signal is re-raised,
    # so the process ends as killed by it; the daemon consumer thread ends with it.
    server = uvicorn.Server(uvicorn.Config(build_app(spec, state), host=spec.bind,
                                           port=spec.port, access_log=False,
                                           log_level="warning"))
    server.run()
    return 0 if server.started else 3


if __name__ == "__main__":
    raise SystemExit(main())
