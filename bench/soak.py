"""Soak: the pipeline on a short schedule for a long time, watching for leaks and missed runs.

Not a test and not in CI. Starts the reference stack on free ports (2 buses, 6 engines,
2 pairs; never the demo's ports), then fires the same in-process pipeline `dualbus run` uses
(`commands.run.execute`) on a fixed-rate schedule — every `--interval` seconds, like a
`*/N` cron tick — for `--minutes`. Before every tick it samples, in this process:

* RSS (VmRSS from /proc/self/status) and the number of threads;
* open file descriptors (/proc/self/fd);
* connections: clients on both buses (CLIENT LIST, not counting the connection that asks),
  also those that are not the reference engines' own (engines name theirs
  `dualbus-engine-<name>`), and established TCP sockets of this process;

and counts missed runs: a tick whose run did not complete, or that could not start on time
because the previous run overran. Growth is reported as (median of the last 5 samples) −
(median of samples 3..7), skipping the first ticks' warm-up (imports, first-run caches), plus
a least-squares slope per hour over the same range.

    python -m bench.soak --minutes 30 --interval 30 > /tmp/soak.log

Writes the per-tick samples and the summary to bench/results/soak-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dualbus_pipeline.config import load_config
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import free_port

RESULTS = Path(__file__).resolve().parent / "results"
AVOID = {6379, 6380, 6381} | set(range(8100, 10002))


def _ports(n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        p = free_port()
        if p not in AVOID and p not in out:
            out.append(p)
    return out


def write_topology(base: Path) -> Path:
    names = ["quotes", "orders", "risk", "ledger", "hedger", "audit"]
    ports = _ports(2 + len(names))
    buses = [{"name": "md", "url": f"redis://127.0.0.1:{ports[0]}/0"},
             {"name": "logic", "url": f"redis://127.0.0.1:{ports[1]}/0"}]
    engines = [{"name": n, "url": f"http://127.0.0.1:{ports[2 + i]}",
                "bus": "md" if i < 2 else "logic", "stream": f"{n}-stream",
                "group": f"{n}-group"} for i, n in enumerate(names)]
    doc = {"platform": "Soak", "buses": buses, "engines": engines,
           "pairs": [{"from": "quotes", "to": "orders"}, {"from": "risk", "to": "ledger"}],
           "warehouse": "warehouse/dualbus.duckdb"}
    path = base / "dualbus.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def tcp_established() -> int:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "01" and f[9] in inodes:  # ESTABLISHED, ours
                count += 1
    return count


def _client_list(url: str) -> list[str]:
    """CLIENT LIST lines of a bus (raw RESP; includes this very connection)."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
        data = b""
        while True:  # one bulk string: $<len>\r\n<payload>\r\n
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n")
            if sep and len(rest) >= int(head[1:]) + 2:
                break
    _, _, payload = data.partition(b"\r\n")
    return [ln for ln in payload.decode(errors="replace").splitlines() if ln.startswith("id=")]


def bus_clients(url: str) -> tuple[int, int]:
    """(all clients, clients that are not a reference engine's), both without our own."""
    lines = _client_list(url)
    others = [ln for ln in lines if " name=dualbus-engine-" not in ln]
    return len(lines) - 1, len(others) - 1


def _slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 3:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) \
        / den * 3600


def summarize(samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    steady = samples[warmup:] if len(samples) > warmup + 5 else samples
    out: dict[str, Any] = {}
    for key in ("rss_kb", "fds", "threads", "tcp_established", "bus_clients",
                "bus_clients_not_engines"):
        ys = [float(s[key]) for s in steady]
        ts = [float(s["t"]) for s in steady]
        early = statistics.median(ys[:5])
        late = statistics.median(ys[-5:])
        out[key] = {"first": samples[0][key], "steady_start": early, "end": late,
                    "growth": late - early, "min": min(ys), "max": max(ys),
                    "slope_per_hour": round(_slope_per_hour(ts, ys), 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between ticks")
    ap.add_argument("--warmup", type=int, default=3, help="ticks excluded from growth")
    args = ap.parse_args(argv)

    from dualbus_pipeline.commands.run import execute
    from dualbus_pipeline.errors import DualbusError

    base = Path(tempfile.mkdtemp(prefix="dualbus-soak-"))
    cfg_path = write_topology(base)
    cfg = load_config(cfg_path)
    stack = StackManager(cfg)
    stack.up("healthy")
    bus_urls = [b.url for b in cfg.topology.buses]
    print(f"soak: stack up in {base}; {args.minutes:g} min, a run every {args.interval:g}s",
          flush=True)

    samples: list[dict[str, Any]] = []
    runs = completed = missed = late_starts = 0
    failures: list[str] = []
    durations: list[float] = []
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    tick = 0
    try:
        while True:
            due = t0 + tick * args.interval
            if due >= end:
                break
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now - due > args.interval:  # the previous run overran a whole tick
                skipped = int((now - due) // args.interval)
                missed += skipped
                late_starts += 1
                tick += skipped
                continue
            gc.collect()
            sample: dict[str, Any] = {
                "tick": tick, "t": round(time.monotonic() - t0, 1), "rss_kb": rss_kb(),
                "fds": open_fds(), "threads": threads(), "tcp_established": tcp_established()}
            counts = [bus_clients(u) for u in bus_urls]
            sample["bus_clients"] = sum(c[0] for c in counts)
            sample["bus_clients_not_engines"] = sum(c[1] for c in counts)
            started = time.monotonic()
            runs += 1
            ok = True
            try:
                execute(str(cfg_path), None, None, quiet=True)
                completed += 1
            except DualbusError as exc:
                ok = False
                missed += 1
                failures.append(f"tick {tick}: {exc}")
            sample["run_s"] = round(time.monotonic() - started, 2)
            sample["ok"] = ok
            durations.append(sample["run_s"])
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            tick += 1
    finally:
        stack.down()

    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes, "interval_s": args.interval, "ticks": tick,
        "runs_started": runs, "runs_completed": completed, "missed": missed,
        "late_starts": late_starts, "failures": failures[:20],
        "run_s": {"median": statistics.median(durations) if durations else None,
                  "max": max(durations) if durations else None},
        "growth": summarize(samples, args.warmup) if samples else {},
        "topology": "2 buses, 6 engines, 2 pairs, default probe settings",
        "python": sys.version.split()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"soak: wrote {out}")
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
