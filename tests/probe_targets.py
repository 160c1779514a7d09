"""Probe targets with known behaviour: HTTP health servers, a silent listener, a §4.3 responder.

Everything here is real: an aiohttp server on a free port in a background thread (with a
precise blocking delay so "2 ms" means 2 ms), a listening socket that accepts connections
into the kernel backlog and never answers, and a minimal probe-protocol responder reading
engine streams through consumer groups on a real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from aiohttp import web

from dualbus_pipeline.stack.redis_server import free_port


def _precise_slack() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(29, ctypes.c_ulong(1), 0, 0, 0)


@dataclass
class Behaviour:
    delay_ms: float = 0.0
    error_share: float = 0.0          # this share of requests answers `error_status`
    error_status: int = 500
    status_code: int = 200            # for every other request
    body_status: str | None = "healthy"
    chunked: bool = False
    requests: int = 0


class HealthServer:
    """aiohttp /health on 127.0.0.1:<free port>, in its own thread and loop."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _health(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        k = b.requests
        b.requests += 1
        if b.delay_ms >= 10:
            await asyncio.sleep(b.delay_ms / 1000)  # long: concurrent requests overlap
        elif b.delay_ms:
            time.sleep(b.delay_ms / 1000)  # short: blocking, asyncio timers are ms-coarse
        # Deterministic error share: request k fails when floor((k+1)*s) > floor(k*s).
        failing = int((k + 1) * b.error_share) > int(k * b.error_share)
        status = b.error_status if failing else b.status_code
        payload = b'{"status": "%s"}' % (b.body_status or "").encode() if b.body_status \
            else b"ok"
        if b.chunked:
            resp = web.StreamResponse(status=status)
            resp.enable_chunked_encoding()
            resp.content_type = "application/json"
            await resp.prepare(request)
            await resp.write(payload[:5])
            await resp.write(payload[5:])
            await resp.write_eof()
            return resp
        return web.Response(status=status, body=payload, content_type="application/json")

    def _run(self) -> None:
        _precise_slack()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> HealthServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("health server did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextlib.contextmanager
def health_server(**kwargs: Any) -> Iterator[HealthServer]:
    srv = HealthServer(Behaviour(**kwargs)).start()
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never sends a byte."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    return free_port()


@dataclass
class Responder:
    """A minimal §4.3 engine: consumes its stream in a group, forwards or replies, XACKs."""

    url: str
    stream: str
    group: str
    name: str
    delay_ms: float = 0.0
    handled: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Responder:
        r = redis.Redis.from_url(self.url)
        with contextlib.suppress(redis.ResponseError):
            r.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        r.close()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        _precise_slack()
        r = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            while not self._stop.is_set():
                try:
                    resp = r.xreadgroup(self.group, self.name, {self.stream: ">"}, count=100,
                                        block=50)
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.05)
                    continue
                for _stream, entries in resp or []:
                    for mid, fields in entries:
                        self._handle(r, fields)
                        r.xack(self.stream, self.group, mid)
        finally:
            r.close()

    def _handle(self, r: redis.Redis, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"message_type") != b"dualbus.probe":
            return
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        forward_to = fields.get(b"forward_to")
        if forward_to:
            r.xadd(forward_to, {k: v for k, v in fields.items() if k != b"forward_to"})
        else:
            r.xadd(fields[b"reply_to"], {b"correlation_id": fields[b"correlation_id"],
                                         b"sent_ns": fields[b"sent_ns"],
                                         b"replied_by": self.name.encode()})
        self.handled += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
