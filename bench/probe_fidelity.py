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

Prints a table with ratios (dualbus / peer; latency: lower is better, target <= 1.5; capacity:
higher is better, target >= 1.0) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dualbus_pipeline.config import Bus, Engine, ProbeSettings
from dualbus_pipeline.probes.bus import capacity_burst, probe_bus_blocking
from dualbus_pipeline.probes.engine import probe_engine
from dualbus_pipeline.probes.resp import RespConnection
from dualbus_pipeline.stack.redis_server import free_port, port_is_open, start_redis

RESULTS = Path(__file__).resolve().parent / "results"
WRK_HINT = ("wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu) or "
            "`brew install wrk` (macOS); the engine comparison is skipped")


def _run(cmd: list[str], timeout: float = 120) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          check=True).stdout


def redis_benchmark_ping_p50(port: int, n: int) -> float:
    out = _run(["redis-benchmark", "-p", str(port), "-c", "1", "-n", str(n), "-t",
                "ping_mbulk", "-q"])
    return float(re.findall(r"p50=([\d.]+) msec", out)[-1])


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


def best_of(fn: Any, rounds: int) -> list[float]:
    return [float(fn()) for _ in range(rounds)]


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison")
    ap.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    args = ap.parse_args(argv)
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            print(f"{tool} not found: install redis (apt-get install -y redis-server)",
                  file=sys.stderr)
            return 2
    has_wrk = shutil.which("wrk") is not None
    if not has_wrk:
        print(WRK_HINT, file=sys.stderr)
    ping_n = 2000 if args.quick else 20000
    xadd_n = 50_000 if args.quick else 200_000
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
        for _ in range(args.rounds):
            peer_ping.append(redis_benchmark_ping_p50(redis_port, ping_n))
            ours_ping.append(dualbus_ping_p50(url, ping_n))
            peer_cap.append(redis_benchmark_xadd_rps(redis_port, xadd_n))
            with RespConnection.open(url, 2.0) as c:
                c.call("DEL", "bench:xadd")
            ours_cap.append(dualbus_capacity(url, xadd_n))
        rows.append(_row("bus PING p50 (ms)", "redis-benchmark -c 1 -t ping_mbulk",
                         median(ours_ping), median(peer_ping), "lower", 1.5,
                         {"ours": ours_ping, "peer": peer_ping}))
        rows.append(_row("bus capacity (msgs/s)", "redis-benchmark -c 1 -P 16 XADD",
                         median(ours_cap), median(peer_cap), "higher", 1.0,
                         {"ours": ours_cap, "peer": peer_cap}))
        if has_wrk:
            health = f"http://127.0.0.1:{http_port}"
            peer_http, hot, paced = [], [], []
            detail: dict[str, Any] = {}
            for _ in range(args.rounds):
                p50, wrk_rps = wrk_p50_ms(health + "/health", 2 if args.quick else 3)
                peer_http.append(p50)
                detail["wrk_rps"] = wrk_rps
                h = dualbus_engine(health, 2000 if args.quick else 8000, 4000.0)
                hot.append(float(h["p50_ms"]))
                detail["matched_load"] = h
                p = dualbus_engine(health, 1000, 200.0)
                paced.append(float(p["p50_ms"]))
                detail["default_pacing"] = p
            rows.append(_row("engine /health p50 (ms), matched load 4000/s",
                             "wrk -t1 -c1 --latency", median(hot), median(peer_http), "lower",
                             1.5, {"ours": hot, "peer": peer_http, **detail}))
            rows.append(_row("engine /health p50 (ms), default pacing 200/s",
                             "wrk -t1 -c1 --latency", median(paced), median(peer_http),
                             "lower", None, {"ours": paced, "peer": peer_http}))
    finally:
        http.terminate()
        http.wait(5)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(_table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"probe_fidelity-{stamp}.json"
    out.write_text(json.dumps({"at": stamp, "host": platform.node(),
                               "python": platform.python_version(), "rows": rows}, indent=2))
    print(f"\nwritten: {out}")
    return 0


def _row(metric: str, peer: str, ours: float, theirs: float, better: str,
         target: float | None, raw: dict[str, Any]) -> dict[str, Any]:
    ratio = ours / theirs if theirs else float("nan")
    met = None if target is None else (ratio <= target if better == "lower"
                                       else ratio >= target)
    return {"metric": metric, "peer": peer, "dualbus": round(ours, 4),
            "peer_value": round(theirs, 4), "ratio": round(ratio, 3), "better": better,
            "target": target, "met": met, "raw": raw}


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'metric':<46} {'dualbus':>12} {'peer':>12} {'ratio':>7} {'target':>8}  peer tool"
    lines = [head, "-" * len(head)]
    for r in rows:
        tgt = "-" if r["target"] is None else (("<=" if r["better"] == "lower" else ">=")
                                                + str(r["target"]))
        mark = "" if r["met"] is None else (" ok" if r["met"] else " MISSED")
        lines.append(f"{r['metric']:<46} {r['dualbus']:>12,.4g} {r['peer_value']:>12,.4g} "
                     f"{r['ratio']:>7.3f} {tgt:>8}{mark:<7} {r['peer']}")
    return "\n".join(lines)
