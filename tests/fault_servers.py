"""Pathological HTTP "engines" for the fault matrix, served by a real separate process.

    servers = FaultServers({port: "blackhole", port2: {"kind": "slow", "delay_s": 1}}).start()
    ...
    servers.stop()

or ``python -m tests.fault_servers '<json spec>'`` (prints ``ready`` once every port listens).
Raw asyncio streams, no framework, so each behaviour is exactly what the test says:

| kind | behaviour |
|---|---|
| ok | ``200 {"status": "healthy"}``, keep-alive |
| blackhole | accepts, reads the request, never answers |
| slow | answers ``200`` after ``delay_s`` |
| http503 | ``503 {"status": "unhealthy"}`` |
| error_share | ``500 {"status": "error"}`` on exactly ``ratio`` of the requests (spread evenly) |
| garbage | a non-HTTP reply (``GARBAGE...\\r\\n\\r\\n``), then closes |
| garbage_body | ``200`` whose body is binary junk (not JSON) |
| huge | ``200`` with ``Content-Length`` of ``size_mb`` MB, streamed until the client hangs up |
| midclose | status line, headers and half the declared body, then closes the connection |
| flap | up for ``up_s``, then listener closed and connections dropped for ``down_s``, repeat |
| idle_close | ``200`` keep-alive, then closes the connection ``idle_s`` after each answer |
| split | ``200`` in two writes: headers and half the body, the rest ``gap_s`` later |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

_OK = b'{"status": "healthy"}'


def _response(status: int, body: bytes, reason: str = "OK") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return False
    return True


class _Server:
    def __init__(self, port: int, spec: Mapping[str, Any]) -> None:
        self.port = port
        self.spec = spec
        self.kind = str(spec["kind"])
        self.count = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                 reuse_address=True)
        if self.kind == "flap":
            asyncio.get_running_loop().create_task(self.flap())

    async def flap(self) -> None:
        up_s, down_s = float(self.spec.get("up_s", 0.1)), float(self.spec.get("down_s", 0.1))
        while True:
            await asyncio.sleep(up_s)
            assert self.server is not None
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            await self.server.wait_closed()
            await asyncio.sleep(down_s)
            self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                     reuse_address=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while await _read_request(reader):
                if not await self.answer(writer):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.transport.abort()

    async def answer(self, w: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection."""
        self.count += 1
        n = self.count
        kind = self.kind
        if kind == "blackhole":
            await asyncio.sleep(3600)
            return False
        if kind == "slow":
            await asyncio.sleep(float(self.spec.get("delay_s", 1.0)))
            w.write(_response(200, _OK))
        elif kind == "http503":
            w.write(_response(503, b'{"status": "unhealthy"}', "Service Unavailable"))
        elif kind == "error_share":
            r = float(self.spec["ratio"])
            bad = int(n * r) > int((n - 1) * r)
            w.write(_response(500, b'{"status": "error"}', "Internal Server Error") if bad
                    else _response(200, _OK))
        elif kind == "garbage":
            w.write(b"GARBAGE\x00\xff\xfe not http at all\r\n\r\n")
            await w.drain()
            return False
        elif kind == "garbage_body":
            w.write(_response(200, b"\x00\xff\x13junk{{{not json" * 4))
        elif kind == "huge":
            size = int(float(self.spec.get("size_mb", 50)) * 1024 * 1024)
            w.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\n\r\n").encode())
            chunk = b"x" * (1024 * 1024)
            sent = 0
            while sent < size:
                w.write(chunk[:size - sent])
                sent += min(len(chunk), size - sent)
                await w.drain()
        elif kind == "midclose":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n" + b'{"status": "hea')
            await w.drain()
            return False
        elif kind == "split":
            whole = _response(200, _OK)
            cut = len(whole) - len(_OK) // 2
            w.write(whole[:cut])
            await w.drain()
            await asyncio.sleep(float(self.spec.get("gap_s", 0.01)))
            w.write(whole[cut:])
        elif kind == "idle_close":
            w.write(_response(200, _OK))
            await w.drain()
            await asyncio.sleep(float(self.spec.get("idle_s", 0.01)))
            return False
        else:  # ok, flap
            w.write(_response(200, _OK))
        await w.drain()
        return True


async def _serve(spec: Mapping[int, Mapping[str, Any]]) -> None:
    servers = [_Server(port, s) for port, s in spec.items()]
    for s in servers:
        await s.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def _normalize(spec: Mapping[int, str | Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(p): ({"kind": s} if isinstance(s, str) else dict(s)) for p, s in spec.items()}


class FaultServers:
    """The servers of `spec` ({port: kind or {kind, ...}}) in one child process."""

    def __init__(self, spec: Mapping[int, str | Mapping[str, Any]]) -> None:
        self.spec = _normalize(spec)
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> FaultServers:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_servers", json.dumps(self.spec)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"fault servers did not start (got {line!r})")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_normalize(json.loads(sys.argv[1]))))
