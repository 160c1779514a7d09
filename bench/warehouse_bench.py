"""Warehouse benchmarks: bulk ingest of 1M samples, and the after-probing work of one run
(SLO evaluation + trend tables + report) over a warehouse holding 10 / 1,000 / 10,000 runs
(history from bench/gen_history.py)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, row, run_child
from bench.gen_history import generate
from bench.synthetic_results import results
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, store_measurements


def ingest(samples: int, rounds: int = 3) -> dict[str, Any]:
    """store_measurements of `samples` engine samples into a fresh warehouse, `rounds` times
    (same data, new file each time); median seconds."""
    engines = max(1, samples // 1000)
    buses, engs, pairs = results(engines, samples // engines, buses=0, pairs=0)
    times: list[float] = []
    n = 0
    for _ in range(rounds):
        tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-ingest-"))
        try:
            wh = Warehouse(tmp / "w.duckdb")
            wh.migrate()
            begin_run(wh, "ingest", "bench")
            t0 = time.perf_counter()
            with wh.transaction() as con:
                n = store_measurements(con, "ingest", buses, engs, pairs)
            times.append(time.perf_counter() - t0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"samples": n, "seconds": sorted(times)[len(times) // 2], "rounds": times}


def history_eval(runs: int, rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-history-"))
    try:
        gen = generate(tmp / "w.duckdb", runs)
        outs = []
        for _ in range(rounds):
            res = run_child([sys.executable, "-m", "bench.wh_eval", str(tmp / "w.duckdb")],
                            cwd=ROOT)
            if res.returncode != 0:
                raise RuntimeError(f"wh_eval failed: {res.stderr}")
            figures = json.loads(res.stdout.strip().splitlines()[-1])
            figures["peak_rss_mb"] = round(res.peak_rss_mb, 1)
            figures["process_wall_s"] = round(res.wall_s, 3)
            outs.append(figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = sorted(outs, key=lambda f: f["eval_trends_report_s"])[len(outs) // 2]
    return {"generate": gen, "rounds": outs, "median": med}


def bench_warehouse(quick: bool, history_sizes: list[int] | None = None,
                    rounds: int = 3) -> list[dict[str, Any]]:
    n = 20_000 if quick else 1_000_000
    ing = ingest(n, 1 if quick else rounds)
    out = [row("warehouse", f"ingest {ing['samples']:,} samples (store_measurements)",
               round(ing["seconds"], 3), "s", target=1.0 if n >= 1_000_000 else None,
               note=f"median; {ing['samples'] / ing['seconds']:,.0f} samples/s",
               raw={"rounds": ing["rounds"]})]
    sizes = history_sizes or ([10, 50] if quick else [10, 1000, 10_000])
    for runs in sizes:
        h = history_eval(runs, 1 if quick else rounds)
        m = h["median"]
        out.append(row("warehouse", f"{runs:,} runs: evaluation + trends + report",
                       m["eval_trends_report_s"], "s",
                       target=2.0 if runs >= 10_000 else None, raw=h,
                       note=f"eval {m['evaluate_s']}s, trends {m['trends_s']}s, "
                       f"report {m['report_s']}s"))
        out.append(row("warehouse", f"{runs:,} runs: peak RSS of that process",
                       m["peak_rss_mb"], "MB",
                       note=f"history generated in {h['generate']['total_s']}s, "
                       f"{h['generate']['file_mb']} MB"))
    return out
