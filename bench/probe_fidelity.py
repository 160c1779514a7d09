"""Probe fidelity: dualbus against redis-benchmark and wrk on the same targets, in one run.

Starts its own redis-server on a free port and an aiohttp /health server (bench/health_server),
then measures, back to back:

* bus PING p50: dualbus (lean RESP client) vs ``redis-benchmark -c 1 -t ping_mbulk``;
* bus capacity: dualbus burst (delivered msgs/s through a consumer group) vs
  ``redis-benchmark -c 1 -P 16 -n 200000 XADD`` (XADD only: no consumer at all);
* engine /health p50: dualbus engine probe vs ``wrk -t1 -c1 --latency``. wrk is a closed loop
  at full speed (both processes stay hot); dualbus paces its requests, and on an idle machine
  every paced request pays the wake-up of both processes. Both figures are reported: dualbus
  at its default pacing and at a matched load (4,000 req/s, close to wrk's own rate).

Also a control with no dualbus code: a plain blocking socket at the same 200/s pacing, which
isolates the idle-wakeup cost from the probe's own overhead. ``measure`` returns rows for
``python -m bench`` (ratios dualbus / peer; latency: lower is better, target <= 1.5;
capacity: higher is better, target >= 1.0).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import row
from dualbus_pipeline.config import Bus, Engine, ProbeSettings
from dualbus_pipeline.probes.bus import capacity_burst, probe_bus_blocking
from dualbus_pipeline.probes.engine import probe_engine
from dualbus_pipeline.probes.resp import RespConnection
from dualbus_pipeline.stack.redis_server import free_port, port_is_open, start_redis

PACED_ROUNDS = 9  # engine comparisons at the default pacing: rounds of ...
PACED_REQUESTS = 400  # ... this many requests (2 s) per client
WRK_HINT = ("wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu) or "
            "`brew install wrk` (macOS); the engine comparison is skipped")


def _run(cmd: list[str], timeout: float = 120) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          check=True).stdout


def redis_benchmark_ping_p50(port: int, n: int) -> float:
    out = _run(["redis-benchmark", "-p", str(port), "-c", "1", "-n", str(n), "-t",
                "ping_mbulk", "-q"])
    return float(re.findall(r"p50=([\d.]+) msec", out)[-1])


def blocking_ping_p50(port: int, n: int, host: str = "127.0.0.1") -> float:
    """The minimal PING peer: one blocking socket, PING back to back, each reply timed from
    just before its send (three warm-up PINGs). redis-benchmark's p50 moves in steps of
    ~8 µs at this scale (0.007 or 0.015 ms between runs of the same server); this does not."""
    lat: list[float] = []
    with socket.create_connection((host, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n + 3):
            t0 = time.perf_counter()
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            buf = b""
            while not buf.endswith(b"\r\n"):
                buf += s.recv(64)
            lat.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(lat[3:])


def redis_benchmark_xadd_rps(port: int, n: int) -> float:
    out = _run(["redis-benchmark", "-p", str(port), "-c", "1", "-P", "16", "-n", str(n), "-q",
                "XADD", "bench:xadd", "MAXLEN", "~", "250000", "*", "f", "v"])
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def wrk_p50_ms(url: str, seconds: int) -> tuple[float, float]:
    out = _run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url])
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or not rps:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    value = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return value, float(rps.group(1))


def dualbus_ping_p50(url: str, n: int) -> float:
    settings = ProbeSettings(bus_ping_count=n, bus_delivery_count=1, bus_capacity_messages=0)
    res = probe_bus_blocking(Bus(name="bench", url=url), [], settings, "bench")
    assert res.ping.p50 is not None, res.status_reason
    return res.ping.p50


def dualbus_capacity(url: str, n: int) -> float:
    settings = ProbeSettings(bus_capacity_messages=n, max_burst_messages=max(n, 200_000))
    key = "dualbus:probe:bench:capacity"
    try:
        rate, err = capacity_burst(url, key, settings)
    finally:
        with RespConnection.open(url, 2.0) as c:
            c.call("DEL", key)
    if rate is None:
        raise RuntimeError(f"capacity burst failed: {err}")
    return rate


def dualbus_engine(url: str, requests: int, rate: float) -> dict[str, Any]:
    engine = Engine(name="bench", url=url, bus="b", stream="s", group="g")
    settings = ProbeSettings(engine_requests=requests, engine_rate_per_s=rate,
                             max_rate_per_s=max(rate, 5000.0))
    res = asyncio.run(probe_engine(engine, settings))
    s = res.summary
    return {"p50_ms": s.p50, "service_p50_ms": s.service_p50, "p99_ms": s.p99,
            "lateness_p99_ms": s.lateness_p99_ms, "valid": s.valid,
            "invalid_reason": s.invalid_reason, "rate_per_s": rate, "requests": requests,
            "status": res.status}


def blocking_socket_p50(port: int, requests: int, rate: float) -> float:
    """Control measurement, no dualbus code: a plain blocking socket (TCP_NODELAY, keep-alive)
    sends GET /health every 1/rate s (sleep until due) and times each answer. Shows what a
    paced client pays on an idle host — the wake-up of both processes — against wrk's hot
    closed loop."""
    import socket

    req = (f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()
    lat: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        interval = 1.0 / rate
        due = time.perf_counter() + 0.01
        for _ in range(requests):
            while (left := due - time.perf_counter()) > 0:
                time.sleep(left)
            t0 = time.perf_counter()
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, body = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += s.recv(65536)
            lat.append((time.perf_counter() - t0) * 1e3)
            due += interval
    lat.sort()
    return lat[len(lat) // 2]


def asyncio_client_p50(port: int, requests: int, rate: float) -> float:
    """Second control, no dualbus code: the smallest asyncio client (one Protocol, the same
    sleep-then-spin pacing, TCP_NODELAY) at the same pacing. What any event-loop client pays
    over a blocking ``recv``: the selector's wake-up and one pass of the loop per answer."""
    import socket

    req = (f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()

    async def run() -> float:
        loop = asyncio.get_running_loop()
        lat: list[float] = []
        state: dict[str, Any] = {}

        class Client(asyncio.Protocol):
            buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                head, sep, body = self.buf.partition(b"\r\n\r\n")
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if sep and m and len(body) >= int(m.group(1)):
                    lat.append((time.perf_counter_ns() - state["t0"]) / 1e6)
                    self.buf = b""
                    state["done"].set_result(None)

        transport, _ = await loop.create_connection(Client, "127.0.0.1", port)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                      socket.TCP_NODELAY, 1)
        due = time.perf_counter() + 0.01
        for _ in range(requests):
            while (left := due - time.perf_counter()) > 0.0015:
                await asyncio.sleep(left - 0.001)
            while time.perf_counter() < due:
                pass
            state["done"] = loop.create_future()
            state["t0"] = time.perf_counter_ns()
            transport.write(req)
            await state["done"]
            due += 1.0 / rate
        transport.close()
        lat.sort()
        return lat[len(lat) // 2]

    return asyncio.run(run())


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def measure(rounds: int, quick: bool) -> list[dict[str, Any]]:
    """All fidelity comparisons; rows in bench.common format (ratio = dualbus / peer)."""
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            print(f"{tool} not found: install redis (apt-get install -y redis-server); "
                  "fidelity skipped", file=sys.stderr)
            return []
    has_wrk = ensure_wrk()
    ping_n = 2000 if quick else 20000
    xadd_n = 50_000 if quick else 200_000
    tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-"))
    redis_port, http_port = free_port(), free_port()
    server = start_redis(redis_port, tmp / "redis")
    http = subprocess.Popen([sys.executable, "-m", "bench.health_server", str(http_port)],
                            cwd=Path(__file__).resolve().parent.parent)
    rows: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 10
        while not port_is_open("127.0.0.1", http_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        url = server.url
        # Alternate peer and dualbus each round so drift hits both alike; report medians.
        peer_ping, ours_ping, peer_cap, ours_cap = [], [], [], []
        for _ in range(rounds):
            peer_ping.append(redis_benchmark_ping_p50(redis_port, ping_n))
            ours_ping.append(dualbus_ping_p50(url, ping_n))
            peer_cap.append(redis_benchmark_xadd_rps(redis_port, xadd_n))
            with RespConnection.open(url, 2.0) as c:
                c.call("DEL", "bench:xadd")
            ours_cap.append(dualbus_capacity(url, xadd_n))
        rows.append(row("fidelity", "bus PING p50", median(ours_ping), "ms",
                        peer=median(peer_ping), target=1.5,
                        peer_tool="redis-benchmark -c 1 -t ping_mbulk",
                        raw={"ours": ours_ping, "peer": peer_ping}))
        rows.append(row("fidelity", "bus capacity (delivered msgs/s)", median(ours_cap),
                        "msg/s", peer=median(peer_cap), target=1.0, better="higher",
                        peer_tool="redis-benchmark -c 1 -P 16 XADD",
                        raw={"ours": ours_cap, "peer": peer_cap}))
        if has_wrk:
            health = f"http://127.0.0.1:{http_port}"
            peer_http, hot, paced, control = [], [], [], []
            detail: dict[str, Any] = {}
            for _ in range(rounds):
                p50, wrk_rps = wrk_p50_ms(health + "/health", 2 if quick else 3)
                peer_http.append(p50)
                detail["wrk_rps"] = wrk_rps
                h = dualbus_engine(health, 2000 if quick else 8000, 4000.0)
                hot.append(float(h["p50_ms"]))
                detail["matched_load"] = h
            # Paced figures swing ±40 % from one minute to the next on a VM (idle wake-ups):
            # many short rounds, each client right after the other, and the median of the
            # per-round ratios, so that drift hits both sides of every ratio alike.
            loop_ctl: list[float] = []
            for _ in range(3 if quick else PACED_ROUNDS):
                p = dualbus_engine(health, PACED_REQUESTS, 200.0)
                paced.append(float(p["p50_ms"]))
                detail["default_pacing"] = p
                control.append(blocking_socket_p50(http_port, PACED_REQUESTS, 200.0))
                loop_ctl.append(asyncio_client_p50(http_port, PACED_REQUESTS, 200.0))
            wrk = "wrk -t1 -c1 --latency"
            paired = f"median of {len(paced)} paired rounds' ratios"
            rows.append(row("fidelity", "engine /health p50, matched load 4000/s", median(hot),
                            "ms", peer=median(peer_http), target=1.5, peer_tool=wrk,
                            raw={"ours": hot, "peer": peer_http, **detail}))
            rows.append(row("fidelity", "engine /health p50, default pacing 200/s",
                            median(paced), "ms", peer=median(peer_http), peer_tool=wrk,
                            note="paced vs hot closed loop: idle wake-ups (see controls)",
                            raw={"ours": paced, "peer": peer_http}))
            rows.append(row("fidelity", "engine /health p50, 200/s vs blocking-socket control",
                            median(paced), "ms", peer=median(control), target=1.5,
                            ratio=median([a / b for a, b in zip(paced, control, strict=True)]),
                            peer_tool="plain blocking socket, same 200/s pacing",
                            note=paired, raw={"ours": paced, "control": control}))
            rows.append(row("fidelity", "engine /health p50, 200/s vs minimal asyncio client",
                            median(paced), "ms", peer=median(loop_ctl),
                            ratio=median([a / b for a, b in zip(paced, loop_ctl, strict=True)]),
                            peer_tool="30-line asyncio Protocol client, same pacing",
                            note=paired, raw={"ours": paced, "asyncio": loop_ctl}))
            rows.append(row("fidelity", "  control: blocking socket p50 at 200/s vs wrk",
                            median(control), "ms", peer=median(peer_http), peer_tool=wrk,
                            note="no dualbus code: the idle-wakeup cost itself"))
            rows.append(row("fidelity", "  control: asyncio client vs blocking socket",
                            median(loop_ctl), "ms", peer=median(control),
                            ratio=median([a / b for a, b in zip(loop_ctl, control,
                                                                strict=True)]),
                            note=f"no dualbus code: an event loop's own cost; {paired}"))
    finally:
        http.terminate()
        http.wait(5)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def ensure_wrk() -> bool:
    """wrk on PATH, else try `apt-get install -y wrk` when root on Debian/Ubuntu; say so."""
    if shutil.which("wrk"):
        return True
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("wrk not found: installing it with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env,
                       capture_output=True)
    if shutil.which("wrk"):
        return True
    print(WRK_HINT, file=sys.stderr)
    return False
