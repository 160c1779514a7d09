"""Probe targets with known behaviour: HTTP health servers, a silent listener, a §4.3 responder.

Everything here is real: an aiohttp server on a free port in its own process (with a
precise blocking delay so "2 ms" means 2 ms), a listening socket that accepts connections
into the kernel backlog and never answers, and a minimal probe-protocol responder reading
engine streams through consumer groups on a real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from aiohttp import web

from dualbus_pipeline.stack.redis_server import free_port

_REPO = Path(__file__).resolve().parent.parent


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
    body: str | None = None           # a whole JSON body instead of {"status": body_status}
    chunked: bool = False
    requests: int = 0
    stall_at: int = -1                # request number `stall_at` blocks the whole server ...
    stall_ms: float = 0.0             # ... this long (a one-off stall: GC, a lock, a swap-in)


class HealthServer:
    """aiohttp /health on 127.0.0.1:<free port>, in its own process.

    Its own process, not a thread of the test process: a server thread shares the probe's GIL,
    and a 2 ms blocking delay then measured as 3-10 ms depending on thread switching.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HealthServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.probe_targets", json.dumps(asdict(self.behaviour)),
             str(self.port)], cwd=_REPO, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError("health server did not start")
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()


async def _health_handler(b: Behaviour, request: web.Request) -> web.StreamResponse:
    k = b.requests
    b.requests += 1
    if k == b.stall_at:
        time.sleep(b.stall_ms / 1000)
    if b.delay_ms >= 10:
        await asyncio.sleep(b.delay_ms / 1000)  # long: concurrent requests overlap
    elif b.delay_ms:
        time.sleep(b.delay_ms / 1000)  # short: blocking, asyncio timers are ms-coarse
    # Deterministic error share: request k fails when floor((k+1)*s) > floor(k*s).
    failing = int((k + 1) * b.error_share) > int(k * b.error_share)
    status = b.error_status if failing else b.status_code
    payload = b'{"status": "%s"}' % (b.body_status or "").encode() if b.body_status \
        else b"ok"
    if b.body is not None:
        payload = b.body.encode()
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


async def _serve_health(b: Behaviour, port: int) -> None:
    app = web.Application()
    app.router.add_get("/health", functools.partial(_health_handler, b))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


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


RESPONDER_MODES = ("forward", "self", "twice", "foreign", "impostor")


@dataclass
class Responder:
    """A minimal §4.3 engine: consumes its stream in a group, forwards or replies, XACKs.

    Runs in its own process (like HealthServer): a responder thread would share the GIL with
    the probe it answers, and its hop delays would measure thread switching. ``handled`` is
    filled in by ``stop()``. ``mode`` makes it misbehave the ways a real engine can: ``self``
    replies itself instead of forwarding (a short circuit), ``twice`` replies twice,
    ``foreign`` replies with a correlation id nobody sent, ``impostor`` replies as someone
    else (``replied_by`` "mallory").
    """

    url: str
    stream: str
    group: str
    name: str
    delay_ms: float = 0.0
    mode: str = "forward"
    handled: int = 0
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Responder:
        r = redis.Redis.from_url(self.url)
        with contextlib.suppress(redis.ResponseError):
            r.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        r.close()
        assert self.mode in RESPONDER_MODES, self.mode
        spec = {"url": self.url, "stream": self.stream, "group": self.group, "name": self.name,
                "delay_ms": self.delay_ms, "mode": self.mode}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.probe_targets", "responder", json.dumps(spec)],
            cwd=_REPO, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError(f"responder {self.name} did not start")
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for line in out.decode().splitlines():
            if line.startswith("handled "):
                self.handled = int(line.split()[1])


def _respond(spec: dict[str, Any]) -> None:
    """The responder process: python -m tests.probe_targets responder JSON."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stream, group, name = spec["stream"], spec["group"], spec["name"]
    delay_ms = float(spec["delay_ms"])
    mode = spec.get("mode", "forward")
    handled = 0
    r = redis.Redis.from_url(spec["url"], socket_timeout=2)
    print("ready", flush=True)
    try:
        while not stop.is_set():
            try:
                resp = r.xreadgroup(group, name, {stream: ">"}, count=100, block=50)
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
                continue
            for _stream, entries in resp or []:
                for mid, fields in entries:
                    if fields.get(b"message_type") == b"dualbus.probe":
                        if delay_ms:
                            time.sleep(delay_ms / 1000)
                        forward_to = fields.get(b"forward_to")
                        if forward_to and mode != "self":
                            r.xadd(forward_to,
                                   {k: v for k, v in fields.items() if k != b"forward_to"})
                        else:
                            cid = fields[b"correlation_id"]
                            reply = {b"correlation_id": cid + b"-x" if mode == "foreign"
                                     else cid,
                                     b"sent_ns": fields[b"sent_ns"],
                                     b"replied_by": b"mallory" if mode == "impostor"
                                     else name.encode()}
                            # both replies of "twice" land at once (MULTI/EXEC), so a
                            # reader sees them in one XREAD however busy the host
                            pipe = r.pipeline(transaction=True)
                            for _ in range(2 if mode == "twice" else 1):
                                pipe.xadd(fields[b"reply_to"], reply)
                            pipe.execute()
                        handled += 1
                    r.xack(stream, group, mid)
    finally:
        r.close()
        print(f"handled {handled}", flush=True)


if __name__ == "__main__":
    # python -m tests.probe_targets BEHAVIOUR_JSON PORT      (a health server)
    # python -m tests.probe_targets responder SPEC_JSON      (a §4.3 responder)
    _precise_slack()
    if sys.argv[1] == "responder":
        _respond(json.loads(sys.argv[2]))
    else:
        asyncio.run(_serve_health(Behaviour(**json.loads(sys.argv[1])), int(sys.argv[2])))
