"""`run` and `scale` benchmarks: real `dualbus run` processes against a real reference stack.

* run: the shipped topology (13 engines × 100 requests, 2 buses, 4 pairs, seed scenario) on
  free ports; wall time and the CLI process's own peak RSS (wait4), per-asset seconds from the
  progress lines, probing seconds from the probe assets ("[probed X s]": each phase as timed
  in the probe process); pipeline overhead = wall − probing. Rounds alternate `dualbus run`
  and `dualbus probe` (the probes alone, no Dagster anywhere), so the run's engine p50, PING
  p50 and pair p50 are compared with the probes alone under the same machine conditions.
* scale: one synthetic stack of the largest N (`StackManager` + `synthetic_topology`, 250
  engines per host process, striped; e0000 with a 1 ms delay fault in a process of its own);
  topologies with the first N engines (13, 100, 1,000) run in turn, then the largest N at a
  5,000/s send budget and with 30 requests per engine, then the first N again (the drift
  baseline is the lower of its two e0000 p50s). Reports wall, RSS, engine-phase
  seconds, the CPU seconds each run cost (dualbus from wait4, the stack's processes from
  /proc) and per engine request, e0000's p50 (must not drift with N), the share of engine
  summaries flagged invalid (probe lateness), report size and chart count.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import yaml

from bench.common import ROOT, ChildRun, cpu_seconds, row, run_child
from dualbus_pipeline.config import Fault, load_config
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import free_ports
from dualbus_pipeline.stack.synthetic import synthetic_topology

STEP_RE = re.compile(r"✓ (\w+)\s+([\d.]+)s\s+(.*)$")
PROBED_RE = re.compile(r"\[probed ([\d.]+)s\]")
PROBE_STEPS = ("bus_measurements", "engine_measurements", "pair_measurements")
_SCRIPT = Path(sys.executable).parent / "dualbus"
DUALBUS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dualbus_pipeline.cli"]


def parse_steps(out: str) -> tuple[dict[str, float], float]:
    steps: dict[str, float] = {}
    probing = 0.0
    for line in out.splitlines():
        m = STEP_RE.search(line)
        if m:
            steps[m.group(1)] = float(m.group(2))
            p = PROBED_RE.search(m.group(3))
            if p and m.group(1) in PROBE_STEPS:
                probing += float(p.group(1))
    return steps, probing


def dualbus_run(config: Path, warehouse: Path) -> ChildRun:
    env = dict(os.environ, DAGSTER_DISABLE_TELEMETRY="1")
    env.pop("DAGSTER_HOME", None)
    res = run_child([*DUALBUS, "run", "--config", str(config), "--warehouse", str(warehouse)],
                    env=env, cwd=ROOT, timeout_s=900)
    if res.returncode != 0:
        raise RuntimeError(f"dualbus run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    res.steps, probing = parse_steps(res.stdout)
    res.steps["probing"] = probing
    return res


def reference_config(tmp: Path) -> Path:
    """The shipped dualbus.yaml with every port moved to a free one (so a stack on the
    shipped ports, or a Redis on 6379, is never touched)."""
    text = (ROOT / "dualbus.yaml").read_text()
    used: list[int] = []

    def port(_m: re.Match[str]) -> str:  # distinct: two single free-port picks can coincide
        used.extend(free_ports(1, avoid=used))
        return str(used[-1])

    text = re.sub(r"\$\{DUALBUS_REDIS_HOST:-127\.0\.0\.1\}", "127.0.0.1", text)
    text = re.sub(r"\$\{DUALBUS_(MARKETDATA|ENGINE_LOGIC)_PORT:-\d+\}", port, text)
    text = re.sub(r"(?<=http://127\.0\.0\.1:)\d+", port, text)
    text = re.sub(r"^warehouse: .*$", f"warehouse: {tmp / 'wh.duckdb'}", text, flags=re.M)
    text += f"\nstack:\n  state_dir: {tmp / 'stack'}\n"
    path = tmp / "dualbus.yaml"
    path.write_text(text)
    return path


MODES = ("run",)


def bench_run(rounds: int, quick: bool) -> list[dict[str, Any]]:
    """Rounds alternate `dualbus run` in each start-up mode and `dualbus probe` (the probes
    alone), so every figure has its comparison taken under the same machine conditions."""
    tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-run-"))
    config = reference_config(tmp)
    stack = StackManager(load_config(config), tmp / "stack")
    runs: dict[str, list[ChildRun]] = {m: [] for m in MODES}
    figures: dict[str, list[dict[str, float | None]]] = {m: [] for m in (*MODES, "alone")}
    try:
        status = stack.up("seed")
        if not status.ok:
            raise RuntimeError(f"reference stack did not come up:\n{status.table()}")
        for _ in range(1 if quick else max(5, rounds)):  # odd: a true median
            for mode in MODES:
                wh = tmp / f"wh-{mode}.duckdb"
                runs[mode].append(dualbus_run(config, wh))
                figures[mode].append(_run_figures(wh))
            res = run_child([*DUALBUS, "probe", "--json", "--config", str(config)], cwd=ROOT,
                            timeout_s=300)
            figures["alone"].append(_probe_figures(json.loads(res.stdout)))
    finally:
        stack.down()
    out: list[dict[str, Any]] = []
    for mode in MODES:
        out += _run_rows(mode, runs[mode], main=mode == MODES[0])
    n = len(figures["alone"])
    for key, label, unit in (("engine_p50", "engine p50 (median over engines)", "ms"),
                             ("invalid", "engine summaries invalid or inconclusive", "n"),
                             ("ping_p50", "bus PING p50", "ms"),
                             ("pair_p50", "pair round trip p50", "ms")):
        peer = _median_known(r[key] for r in figures["alone"])
        for mode in MODES:
            mine = _median_known(r[key] for r in figures[mode])
            out.append(row("run", f"{mode}: {label}, vs probes alone",
                           None if mine is None else round(mine, 4), unit,
                           peer=None if peer is None else (round(peer, 4) or None),
                           peer_tool="dualbus probe",
                           note=f"median of {n} alternating rounds",
                           raw={mode: [r[key] for r in figures[mode]],
                                "alone": [r[key] for r in figures["alone"]]}))
    return out


def _run_rows(mode: str, runs: list[ChildRun], *, main: bool) -> list[dict[str, Any]]:
    med = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    raw = {"rounds": [{"wall_s": round(r.wall_s, 3), "peak_rss_mb": round(r.peak_rss_mb, 1),
                       "tree_peak_rss_mb": round(r.tree_peak_rss_mb, 1), "steps": r.steps,
                       "steal_s": round(r.steal_s, 2),
                       "load": [r.load_before, r.load_after]} for r in runs]}
    steps = med.steps
    label = "dualbus run"
    out = [
        row("run", f"{label}: wall, reference stack (median)", round(med.wall_s, 2), "s",
            raw=raw, note=f"{len(runs)} runs; mostly probing, whose length is set by the "
            "probe settings (dualbus validate prints it)"),
        row("run", f"{label}: peak RSS incl. probe process (max)",
            round(max(r.tree_peak_rss_mb for r in runs), 1), "MB", target=300.0,
            note=f"CLI process alone {max(r.peak_rss_mb for r in runs):.0f} MB"),
        row("run", f"{label}: probing (bus + engine + pair)", round(steps["probing"], 2), "s"),
        row("run", f"{label}: pipeline overhead = wall − probing",
            round(med.wall_s - steps["probing"], 2), "s", target=4.0,
            note="Dagster starts only after the probes (docs/decisions.md)"),
    ]
    if main:
        for name in ("bus_measurements", "engine_measurements", "pair_measurements",
                     "slo_results", "trend_tables", "graded_report", "alert_dispatch"):
            if name in steps:
                out.append(row("run", f"  step {name}", steps[name], "s",
                               note="from probe start: probing, any wait, the job start"
                               if name == "bus_measurements" else ""))
    return out


def _median_known(values: Iterable[float | None]) -> float | None:
    """Median of the values that were measured (a round that measured nothing says so on
    stderr, `_probe_figures`); None if none were."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _run_figures(warehouse: Path) -> dict[str, float | None]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        (rid,) = con.execute("SELECT run_id FROM runs WHERE status = 'completed' "
                             "ORDER BY started_at DESC LIMIT 1").fetchone() or (None,)
        eng = con.execute("SELECT p50, valid FROM summaries WHERE run_id = ? AND "
                          "scope = 'engine' AND p50 IS NOT NULL", [rid]).fetchall()
        ping, pair = con.execute(
            "SELECT median(p50) FILTER (WHERE scope = 'bus' AND metric = 'ping'), "
            "median(p50) FILTER (WHERE scope = 'pair') FROM summaries WHERE run_id = ?",
            [rid]).fetchone() or (None, None)
    finally:
        con.close()
    return _figures([(p, v) for p, v in eng], ping, pair)


def _probe_figures(doc: dict[str, Any]) -> dict[str, float | None]:
    for kind, key, metric in (("buses", "name", "ping_ms"), ("pairs", "key", "roundtrip_ms")):
        for target in doc[kind]:
            if target[metric]["p50"] is None:  # say why, and leave it out of the medians
                print(f"note: `dualbus probe` measured no {metric} p50 for {kind} "
                      f"{target.get(key)!r}: {target.get('status')}: "
                      f"{target.get('status_reason')}", file=sys.stderr, flush=True)
    pings = [b["ping_ms"]["p50"] for b in doc["buses"] if b["ping_ms"]["p50"] is not None]
    pairs = [p["roundtrip_ms"]["p50"] for p in doc["pairs"]
             if p["roundtrip_ms"]["p50"] is not None]
    return _figures([(e["latency_ms"]["p50"], e["latency_ms"]["valid"]) for e in doc["engines"]
                     if e["latency_ms"]["p50"] is not None],
                    statistics.median(pings) if pings else None,
                    statistics.median(pairs) if pairs else None)


def _figures(engines: list[tuple[float, bool]], ping: float | None,
             pair: float | None) -> dict[str, float | None]:
    return {"engine_p50": statistics.median(p for p, _ in engines) if engines else None,
            "invalid": float(sum(1 for _, valid in engines if not valid)),
            "ping_p50": ping, "pair_p50": pair}


def _subset(full: Path, n: int, dest: Path, send_rate: float | None = None,
            requests: int | None = None) -> Path:
    doc = yaml.safe_load(full.read_text())
    if send_rate is not None:
        doc.setdefault("probe", {})["engine_max_send_rate_per_s"] = send_rate
    if requests is not None:
        doc.setdefault("probe", {})["engine_requests"] = requests
    doc["engines"] = doc["engines"][:n]
    names = {e["name"] for e in doc["engines"]}
    doc["pairs"] = [p for p in doc["pairs"] if p["from"] in names and p["to"] in names]
    doc["platform"] = f"bench scale {n}"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _scale_figures(warehouse: Path) -> dict[str, Any]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        (run_id,) = con.execute("SELECT run_id FROM runs WHERE status = 'completed' "
                                "ORDER BY started_at DESC LIMIT 1").fetchone() or (None,)
        p50, lat99, valid = con.execute(
            "SELECT p50, lateness_p99_ms, valid FROM summaries WHERE run_id = ? "
            "AND scope = 'engine' AND target = 'e0000'", [run_id]).fetchone() or (None,) * 3
        others = con.execute(
            "SELECT median(p50) FROM summaries WHERE run_id = ? AND scope = 'engine' "
            "AND target <> 'e0000'", [run_id]).fetchone()
        total, invalid, samples = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT valid), sum(count) FROM summaries "
            "WHERE run_id = ? AND scope = 'engine'", [run_id]).fetchone() or (0, 0, 0)
        report = con.execute("SELECT format, length(content) FROM reports WHERE run_id = ?",
                             [run_id]).fetchall()
        html = con.execute("SELECT content FROM reports WHERE run_id = ? AND format = 'html'",
                           [run_id]).fetchone()
    finally:
        con.close()
    return {"run_id": run_id, "e0000_p50": p50, "e0000_lateness_p99": lat99,
            "e0000_valid": valid,
            "others_p50": others[0] if others else None, "engines": total,
            "invalid": invalid, "engine_samples": int(samples or 0),
            "report_bytes": dict(report),
            "charts": (html[0].count("<svg") if html else 0)}


FEW_REQUESTS = 30  # the per-engine sample count of the "fewer samples" scale row


def bench_scale(sizes: list[int], fast_rate: float | None = 5000.0,
                few_requests: int | None = FEW_REQUESTS) -> list[dict[str, Any]]:
    """Each N at the default settings (2,000 sends/s, 100 requests per engine), then the
    largest N again two ways that shorten its engine phase: ``engine_max_send_rate_per_s:
    fast_rate`` (the budget a user probing 1,000 engines from a host with two free cores would
    set) and ``engine_requests: few_requests`` at the default budget — each with the drift of
    the fixed-delay engine's p50, so the time bought is shown with what it costs. Every run
    also reports the CPU seconds it cost (dualbus and the stack), and each larger run the CPU
    per engine request at its settings: what the machine must spend on the engine phase, at
    best (the `scale` group in docs/benchmarks.md)."""
    tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-scale-"))
    base = load_config(reference_config(tmp))
    biggest = max(sizes)
    base_port = _free_block(biggest)
    cfg = synthetic_topology(base, biggest, tmp / "stack", base_port=base_port)
    stack = StackManager(cfg, tmp / "stack")
    out: list[dict[str, Any]] = []
    costs: list[tuple[str, float, float, int]] = []  # tag, dualbus CPU s, stack CPU s, samples
    try:
        status = stack.up("healthy", faults={"e0000": Fault(delay_ms=1.0)})
        if not status.ok:
            raise RuntimeError("synthetic stack did not come up")
        stack_pids = [c.pid for c in status.buses + status.engines if c.pid]
        plan: list[tuple[int, float | None, int | None]] = [(n, None, None) for n in sizes]
        if fast_rate is not None:
            plan.append((biggest, fast_rate, None))
        if few_requests is not None:
            plan.append((biggest, None, few_requests))
        plan.append((sizes[0], None, None))  # the baseline again, after everything
        for k, (n, rate, requests) in enumerate(plan):
            tag = (f"N={n}" + ("" if rate is None else f" @{rate:g}/s")
                   + ("" if requests is None else f" ×{requests} requests")
                   + (" again" if k == len(plan) - 1 else ""))
            topo = _subset(Path(cfg.path), n, tmp / f"topology-{n}-{rate}-{requests}.yaml",
                           rate, requests)
            wh = tmp / f"wh-{n}-{rate}-{requests}.duckdb"
            stack_cpu0 = cpu_seconds(stack_pids)
            res = dualbus_run(topo, wh)
            stack_cpu = cpu_seconds(stack_pids) - stack_cpu0
            fig = _scale_figures(wh)
            out += _scale_rows(tag, n, res, fig, stack_cpu)
            costs.append((tag, res.cpu_s, stack_cpu, fig["engine_samples"]))
    finally:
        stack.down()
    out += _marginal_cpu_rows(costs)
    out += _drift_rows(out, sizes[0], biggest)
    return out


def _drift_rows(rows: list[dict[str, Any]], first: int, biggest: int) -> list[dict[str, Any]]:
    """The fixed-delay engine's p50 at the largest N over its p50 at the first N, for each way
    the largest N ran. The first N runs first and last; the lower of its two p50s is the
    baseline, so a baseline round that a noisy host disturbed cannot pass a drift as none."""
    p50s = {r["metric"].split(":")[0]: r["value"] for r in rows
            if r["metric"].endswith("e0000 (1 ms delay) p50") and r["value"]}
    baselines = [v for tag, v in p50s.items() if tag in (f"N={first}", f"N={first} again")]
    if not baselines:
        return []
    base = min(baselines)
    return [row("scale", f"e0000 p50 drift {tag} vs N={first}", round(value / base, 3), "x",
                target=1.2, note="ratio of the fixed-delay engine's p50 to the lower of its "
                f"two N={first} p50s ({', '.join(f'{b:.3f}' for b in baselines)} ms)")
            for tag, value in p50s.items() if tag.startswith(f"N={biggest}")]


def _scale_rows(tag: str, n: int, res: ChildRun, fig: dict[str, Any],
                stack_cpu: float) -> list[dict[str, Any]]:
    share = fig["invalid"] / fig["engines"] if fig["engines"] else None
    raw = {"steps": res.steps, "figures": fig, "load": [res.load_before, res.load_after],
           "steal_s": round(res.steal_s, 2),
           "cpu_s": {"dualbus": round(res.cpu_s, 2), "stack": round(stack_cpu, 2)}}
    flagged = "" if fig["e0000_valid"] else "; the probe flagged this summary invalid"
    cores = os.cpu_count() or 1
    cpu = res.cpu_s + stack_cpu
    return [
        row("scale", f"{tag}: dualbus run wall", round(res.wall_s, 2), "s",
            target=30.0 if n >= 1000 else None, raw=raw,
            note=f"hypervisor steal meanwhile {res.steal_s:.2f} CPU-s"),
        row("scale", f"{tag}: peak RSS", round(res.tree_peak_rss_mb, 1), "MB",
            note=f"with its probe process; CLI alone {res.peak_rss_mb:.0f} MB"),
        row("scale", f"{tag}: engine probing", res.steps.get("probing"), "s",
            note="bus + engine + pair probes"),
        row("scale", f"{tag}: CPU of the run, dualbus + stack", round(cpu, 1), "s",
            note=f"dualbus {res.cpu_s:.1f} s (CLI, Dagster, probe process), stack "
            f"{stack_cpu:.1f} s (engine hosts, Redis); ÷ {cores} cores = "
            f"{cpu / cores:.1f} s at 100 % of every core"),
        row("scale", f"{tag}: e0000 (1 ms delay) p50", fig["e0000_p50"], "ms",
            note=f"must not drift with N; probe lateness p99 "
            f"{fig['e0000_lateness_p99']} ms{flagged}"),
        row("scale", f"{tag}: other engines median p50", fig["others_p50"], "ms"),
        row("scale", f"{tag}: engine summaries invalid or inconclusive",
            None if share is None else round(100 * share, 1), "%",
            note=f"{fig['invalid']}/{fig['engines']}"),
        row("scale", f"{tag}: report html / md / json",
            round(fig["report_bytes"].get("html", 0) / 1024, 1), "KiB",
            note=f"md {fig['report_bytes'].get('md', 0) // 1024} KiB, json "
            f"{fig['report_bytes'].get('json', 0) // 1024} KiB, {fig['charts']} charts"),
    ]


def _marginal_cpu_rows(costs: list[tuple[str, float, float, int]]) -> list[dict[str, Any]]:
    """CPU per engine request beyond the first (smallest) run: the fixed costs (Dagster, bus
    and pair probes) cancel, what is left is what each request costs the probe and the stack
    together, and with it the engine phase's floor on this machine: its requests' CPU spread
    over every core, with nothing else running and no headroom left for honest latency."""
    if len(costs) < 2:
        return []
    cores = os.cpu_count() or 1
    _, d0, s0, n0 = costs[0]
    out = []
    for tag, d1, s1, n1 in costs[1:]:
        if n1 <= n0:
            continue
        dualbus, stack = 1e6 * (d1 - d0) / (n1 - n0), 1e6 * (s1 - s0) / (n1 - n0)
        floor = (dualbus + stack) * n1 / 1e6 / cores
        out.append(row("scale", f"{tag}: CPU per engine request", round(dualbus + stack),
                       "µs", note=f"dualbus {dualbus:.0f} + stack {stack:.0f} µs, marginal "
                       f"over {costs[0][0]}; {n1} requests ÷ {cores} cores = engine phase "
                       f"≥ {floor:.1f} s at 100 % of every core"))
    return out


def _free_block(n: int) -> int:
    """A base port with n consecutive free ports (bench only; racy like any free-port pick)."""
    from dualbus_pipeline.stack.redis_server import port_is_open

    for base in range(30000, 60000 - n, 1000):
        if not any(port_is_open("127.0.0.1", p) for p in range(base, base + n)):
            return base
    raise RuntimeError(f"no block of {n} free ports")


if __name__ == "__main__":
    print(json.dumps(bench_run(1, True), indent=1, default=str))
