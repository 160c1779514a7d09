"""What `dualbus run` stores, against peers on the same targets at the same moment, and what
it decides on a healthy and on the seed platform (issue 19). Both reference-stack flavours.

* ``inrun`` (items 3 and 4): the shipped topology on free ports, healthy. Each round is a
  sweep of the dualbus engine probe over every engine alone, in the run's order and at its
  rate (the perturbation reference: did probing inside the run change what each engine
  shows?); one `dualbus run`; the same sweep again; then engine by engine a minimal control
  client (one blocking socket, one GET at a time, paced at the same per-engine rate, nothing
  else in flight), as many samples as the run's; then ``wrk -t1 -c1`` on each engine (the
  hot path, beside our hot-path p50: after every paced peer, so that no burst precedes one)
  and ``redis-benchmark -c 1`` and a blocking PING client on each bus. The run's figure for
  an engine is compared with the geometric mean of its two sweeps: each sweep is the same
  time from the run's measurement of every engine, so a wake-up cost that drifts steadily
  over the minute cancels. Ratios are per engine, the median over rounds, with a bootstrap
  90 % interval over rounds; the rows give their median and worst over engines, and how
  many engines' intervals lie wholly outside the target (a perturbation, as opposed to noise).
  The bench waits for `dualbus run` without polling it (`run_child(watch_memory=False)`): its
  memory poll, 200 walks of /proc a second, loaded the run and not the peers.
* ``verdicts`` (items 1 and 2): N consecutive `dualbus check` on the healthy stack, then N
  with another process keeping one core busy (a Python busy loop), then one on the seed
  scenario: failed SLOs per run (breach or no data), inconclusive verdicts, grades, the
  check's exit code, and on the seed run which SLOs failed against the expected set.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from bench.common import ROOT, row, run_child
from bench.pipeline_bench import DUALBUS, reference_config
from bench.probe_fidelity import (
    blocking_ping_p50,
    ensure_wrk,
    redis_benchmark_ping_p50,
    wrk_p50_ms,
)
from dualbus_pipeline.config import Engine, load_config
from dualbus_pipeline.probes.engine import probe_engine
from dualbus_pipeline.stack.manager import StackManager

FLAVOURS = ("aiohttp", "fastapi")
# The seed scenario may fail SLOs only on these targets (websocket down, vpin unhealthy, the
# system's availability) and, by design, strategy's and backtesting's optimization target;
# it must fail at least these.
SEED_TARGETS = ("websocket", "vpin", "system")
SEED_MUST = {("engine_operational", "websocket"), ("engine_operational", "vpin"),
             ("system_availability", "system"),
             ("engine_latency_p50_optimization", "strategy"),
             ("engine_latency_p50_optimization", "backtesting")}


def seed_unexpected(failed: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(s, t) for s, t in failed
            if t not in SEED_TARGETS and (s, t) not in SEED_MUST}


def control_p50(host: str, port: int, path: str, requests: int, rate: float) -> float:
    """The minimal peer: one blocking socket (TCP_NODELAY, keep-alive), one GET at a time,
    sent every 1/rate s (slept until due), each answer timed from just before the send."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    lat: list[float] = []
    with socket.create_connection((host, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        due = time.perf_counter()
        for k in range(requests + 3):  # three warm-up requests, as the probe does
            while (left := due - time.perf_counter()) > 0:
                time.sleep(left)
            t0 = time.perf_counter()
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, body = buf.partition(b"\r\n\r\n")
            m = re.search(rb"content-length: *(\d+)", head, re.I)
            while m and len(body) < int(m.group(1)):
                body += s.recv(65536)
            if k >= 3:
                lat.append((time.perf_counter() - t0) * 1e3)
            due += 1.0 / rate
    return statistics.median(lat)


def alone_sweep(engines: list[Engine], config: Path, requests: int) -> dict[str, float | None]:
    """The dualbus engine probe on each engine in turn, alone, at the run's rate: the run's
    engine phase, one engine per probe, without the run around it."""
    settings = load_config(config).topology.probe.model_copy(
        update={"engine_requests": requests, "engine_hot_requests": 0, "min_samples": 5})
    return {e.name: asyncio.run(probe_engine(e, settings)).summary.p50 for e in engines}


def median_interval(values: list[float], level: float = 0.9, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (rounds resampled with
    replacement; a fixed seed, so one bench's raw figures give one interval)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values)))
                  for _ in range(resamples))
    lo = meds[int((1 - level) / 2 * (resamples - 1))]
    hi = meds[int((1 + level) / 2 * (resamples - 1))]
    return lo, hi


def outside(interval: tuple[float, float], target: float) -> bool:
    """Whether an interval of ratios lies wholly outside [1/target, target]."""
    lo, hi = interval
    return lo > target or hi < 1 / target


def _last_run(wh: Path) -> tuple[str, dict[str, Any]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        (rid, cpu) = con.execute("SELECT run_id, probe_cpu_s FROM runs WHERE status = "
                                 "'completed' ORDER BY started_at DESC LIMIT 1").fetchone() \
            or (None, None)
        summ = con.execute("SELECT scope, target, metric, p50 FROM summaries WHERE run_id = ?",
                           [rid]).fetchall()
        slo = con.execute("SELECT slo, target, outcome, grade FROM slo_results WHERE "
                          "run_id = ?", [rid]).fetchall()
        grade = con.execute("SELECT overall_grade, overall_score FROM runs WHERE run_id = ?",
                            [rid]).fetchone()
    finally:
        con.close()
    return str(rid), {"cpu": cpu, "summaries": summ, "slo": slo,
                      "grade": grade[0] if grade else None}


@contextmanager
def stack_up(scenario: str, flavour: str) -> Iterator[tuple[Path, StackManager]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"dualbus-bench-{flavour}-"))
    config = reference_config(tmp)
    stack = StackManager(load_config(config), tmp / "stack")
    try:
        status = stack.up(scenario, flavour=flavour)
        if not status.ok:
            raise RuntimeError(f"reference stack did not come up:\n{status.table()}")
        yield config, stack
    finally:
        stack.down()
        shutil.rmtree(tmp, ignore_errors=True)


def _med(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def bench_inrun(rounds: int, quick: bool, flavours: tuple[str, ...] = FLAVOURS
                ) -> list[dict[str, Any]]:
    has_wrk = ensure_wrk()
    out: list[dict[str, Any]] = []
    for flavour in flavours:
        with stack_up("healthy", flavour) as (config, _):
            topo = load_config(config).topology
            engines = list(topo.engines)[:3] if quick else list(topo.engines)
            rate = topo.probe.engine_rate_per_s
            # the control and the probe alone take as many samples as the run's probe: a
            # p50 of 40 samples moved with the vCPU placement of that half second and
            # read 0.19-0.59 ms on one engine over 7 rounds where the run's read 0.24-0.56
            n = 20 if quick else topo.probe.engine_requests
            per: dict[str, dict[str, list[float]]] = {
                e.name: {"run": [], "control": [], "alone": [], "before": [], "after": [],
                         "wrk": [], "hot": []}
                for e in engines}
            ping: dict[str, dict[str, list[float]]] = {
                b.name: {"run": [], "peer": [], "blocking": []} for b in topo.buses}
            cpu: list[float] = []
            wh = config.parent / "wh.duckdb"
            for _ in range(1 if quick else rounds):
                before = alone_sweep(engines, config, n)
                res = run_child([*DUALBUS, "run", "--config", str(config), "--warehouse",
                                 str(wh)], cwd=ROOT, timeout_s=900, watch_memory=False)
                if res.returncode != 0:
                    raise RuntimeError(f"dualbus run failed:\n{res.stdout}\n{res.stderr}")
                _, got = _last_run(wh)
                cpu.append(float(got["cpu"] or 0))
                after = alone_sweep(engines, config, n)
                p50 = {(s, t, m): v for s, t, m, v in got["summaries"]}
                for e in engines:
                    figs = per[e.name]
                    figs["run"].append(p50.get(("engine", e.name, "latency")))
                    figs["hot"].append(p50.get(("engine", e.name, "hot")))
                    figs["before"].append(before[e.name])
                    figs["after"].append(after[e.name])
                    b, a = before[e.name], after[e.name]
                    figs["alone"].append(math.sqrt(b * a) if b and a else None)
                for e in engines:
                    per[e.name]["control"].append(
                        control_p50(e.host, e.port, e.health_path, n, rate))
                # wrk after every paced peer: a second of back-to-back load just before the
                # next engine's control kept the vCPUs awake and read later engines' controls
                # lower than the run, which had no such burst before them
                for e in engines if has_wrk else ():
                    per[e.name]["wrk"].append(wrk_p50_ms(e.health_url, 1)[0])
                for b in topo.buses:  # both back to back, the same count as the run's
                    ping[b.name]["run"].append(p50.get(("bus", b.name, "ping")))
                    ping[b.name]["peer"].append(
                        redis_benchmark_ping_p50(b.port, topo.probe.bus_ping_count))
                    ping[b.name]["blocking"].append(
                        blocking_ping_p50(b.port, topo.probe.bus_ping_count))
            out += _inrun_rows(flavour, per, ping, cpu, rate, n, has_wrk)
    return out


def _per_round(figs: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(figs[a], figs[b], strict=True) if x and y]


def _log_sd(figs: dict[str, list[float]], a: str, b: str) -> float | None:
    logs = [math.log(r) for r in _per_round(figs, a, b)]
    return statistics.stdev(logs) if len(logs) >= 3 else None


def _ratios(per: dict[str, dict[str, list[float]]], a: str, b: str) -> dict[str, float]:
    """Per engine: the median over rounds of the per-round ratio a / b."""
    return {name: statistics.median(rs) for name, figs in per.items()
            if (rs := _per_round(figs, a, b))}


def _spread(name: str, per: dict[str, dict[str, list[float]]], a: str, b: str) -> str:
    """The engine, the quartiles of its per-round ratios (how far one round moves the
    figure) and the 90 % interval of their median (how far the rounds leave it unsettled)."""
    if not name:
        return ""
    rs = sorted(_per_round(per[name], a, b))
    if len(rs) < 4:
        return name
    q1, _, q3 = statistics.quantiles(rs, n=4)
    lo, hi = median_interval(rs)
    return f"{name}; rounds' quartiles {q1:.2f}-{q3:.2f}; median's 90% interval {lo:.2f}-{hi:.2f}"


def _inrun_rows(flavour: str, per: dict[str, dict[str, list[float]]],
                ping: dict[str, dict[str, list[float]]], cpu: list[float], rate: float,
                n: int, has_wrk: bool) -> list[dict[str, Any]]:
    g = f"inrun/{flavour}"
    rows = []
    for a, b, label, target, peer_tool in (
            ("run", "control", f"engine p50 in dualbus run vs control at {rate:g}/s", 1.3,
             f"blocking socket, one GET at a time, {rate:g}/s, {n} requests, alone"),
            ("run", "alone", f"engine p50 in dualbus run vs probe alone at {rate:g}/s", 1.1,
             "dualbus engine probe on the engine alone, same rate: geometric mean of a "
             "sweep before and one after the run"),
            ("run", "after", "  the same vs probe alone after the run only", 1.1,
             "the sweep after the run (drift not cancelled)"),
            ("after", "before", "noise floor: probe alone after vs before the run", 1.1,
             "the same probe alone, the sweep before the run")):
        ratios = _ratios(per, a, b)
        name = max(ratios, key=lambda k: abs(math.log(ratios[k])), default="")
        worst = ratios.get(name)
        rows.append(row(g, label + " (median over engines)",
                        _med(_med(f[a]) for f in per.values()), "ms",
                        peer=_med(_med(f[b]) for f in per.values()), peer_tool=peer_tool,
                        ratio=_med(ratios.values()), target=target, better="within",
                        raw={"per_engine_ratio": ratios, "figures": per}))
        rows.append(row(g, "  worst engine", None, "ratio", ratio=worst, target=target,
                        better="within", peer=1.0, note=_spread(name, per, a, b)))
        if b != "control":
            away = sorted(k for k, figs in per.items() if len(rs := _per_round(figs, a, b)) >= 4
                          and outside(median_interval(rs), target))
            rows.append(row(g, f"  engines whose 90% interval lies outside ±{target:g}",
                            len(away), "n", target=0, note=", ".join(away)))
    # Two sweeps alone differ by the noise of one round; if the run adds none, run / (their
    # geometric mean) spreads sqrt(3/4) as much as after / before (independent log-noise).
    floor = _med(_log_sd(f, "after", "before") for f in per.values())
    rows.append(row(g, "spread of one round's run / alone (sd of log, median)",
                    _med(_log_sd(f, "run", "alone") for f in per.values()), "",
                    peer=None if floor is None else floor * math.sqrt(0.75),
                    peer_tool="the same spread expected from the two sweeps alone",
                    note="ratio ~1: the run adds no variance of its own"))
    if has_wrk:
        hot = _ratios(per, "hot", "wrk")
        rows.append(row(g, "engine hot-path p50 (back to back) vs wrk -t1 -c1",
                        _med(_med(f["hot"]) for f in per.values()), "ms",
                        peer=_med(_med(f["wrk"]) for f in per.values()),
                        ratio=_med(hot.values()), peer_tool="wrk -t1 -c1 --latency -d1s",
                        note="hot path; paced figures above include idle wake-ups",
                        raw={"per_engine_ratio": hot}))
    for name, figs in ping.items():
        for peer, label, tool in (
                ("peer", f"bus {name} PING p50 in dualbus run",
                 "redis-benchmark -c 1 -t ping_mbulk"),
                ("blocking", "  the same vs a blocking PING client", "one blocking socket, "
                 "PING back to back, same count")):
            rs = _per_round(figs, "run", peer) if figs.get(peer) else []
            rows.append(row(g, label, _med(figs["run"]), "ms", peer=_med(figs.get(peer, [])),
                            ratio=_med(rs), target=1.3, better="within", peer_tool=tool))
    rows.append(row(g, "probe CPU per dualbus run (median)", _med(cpu), "s",
                    note="user + system of the probe process, all phases"))
    return rows


def _failed(slo_rows: list[tuple[str, str, str, str | None]]) -> set[tuple[str, str]]:
    return {(s, t) for s, t, outcome, _ in slo_rows if outcome in ("breach", "no_data")}


def _checks(config: Path, wh: Path, n: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(n):
        res = run_child([*DUALBUS, "check", "--quiet", "--config", str(config),
                         "--warehouse", str(wh)], cwd=ROOT, timeout_s=900, watch_memory=False)
        if res.returncode not in (0, 1):
            raise RuntimeError(f"dualbus check failed to run:\n{res.stdout}\n{res.stderr}")
        rid, got = _last_run(wh)
        runs.append({"run_id": rid, "exit": res.returncode, "grade": got["grade"],
                     "failed": sorted(_failed(got["slo"])),
                     "inconclusive": sorted((s, t) for s, t, o, _ in got["slo"]
                                            if o == "inconclusive"),
                     "wall_s": round(res.wall_s, 1)})
    return runs


@contextmanager
def busy_core() -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


GRADES = ("A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F")


def bench_verdicts(runs: int, quick: bool, flavour: str = "aiohttp") -> list[dict[str, Any]]:
    n = 2 if quick else runs
    out = []
    with stack_up("healthy", flavour) as (config, _):
        wh = config.parent / "wh.duckdb"
        for label, busy in (("healthy", False), ("healthy, one core busy", True)):
            if busy:
                with busy_core():
                    got = _checks(config, wh, n)
            else:
                got = _checks(config, wh, n)
            clean = sum(1 for r in got if not r["failed"])
            good = sum(1 for r in got if r["grade"] in GRADES[:3])
            out.append(row("verdicts", f"{label}: runs with no failed SLO", clean, "runs",
                           target=n if not busy else n * 0.9, better="higher",
                           note=f"of {n} consecutive dualbus check", raw={"runs": got}))
            out.append(row("verdicts", f"{label}: breaches or no-data verdicts (all runs)",
                           sum(len(r["failed"]) for r in got), "n", target=0,
                           note=", ".join(sorted({f"{s}[{t}]" for r in got
                                                  for s, t in r["failed"]}))[:200]))
            out.append(row("verdicts", f"{label}: inconclusive verdicts (all runs)",
                           sum(len(r["inconclusive"]) for r in got), "n",
                           note=f"runs with any: {sum(1 for r in got if r['inconclusive'])}"))
            out.append(row("verdicts", f"{label}: runs graded A- or better", good, "runs",
                           target=n if not busy else None, better="higher"))
            out.append(row("verdicts", f"{label}: dualbus check exit 0", sum(
                1 for r in got if r["exit"] == 0), "runs", target=n if not busy else n * 0.9,
                better="higher"))
    with stack_up("seed", flavour) as (config, _):
        got = _checks(config, config.parent / "wh.duckdb", 1)[0]
        failed = {(s, t) for s, t in got["failed"]}
        extra, missing = seed_unexpected(failed), SEED_MUST - failed
        out.append(row("verdicts", "seed scenario: unexpected failed SLOs", len(extra), "n",
                       target=0, note=json.dumps(sorted(extra))[:200]))
        out.append(row("verdicts", "seed scenario: expected failures not reported",
                       len(missing), "n", target=0, note=json.dumps(sorted(missing))[:200]))
    return out
