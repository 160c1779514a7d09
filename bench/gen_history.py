"""Generate a warehouse holding N past runs, fast: `python -m bench.gen_history WAREHOUSE N`.

How: one *template* run goes through the real code path (synthetic probe results for the
reference shape — 13 engines × 100 requests, 2 buses, 4 pairs — stored with
`store_measurements`, SLOs evaluated with the shipped `slo/`, trends refreshed, run completed).
Then every run-keyed table is replicated N−1 times inside DuckDB from an Arrow table of
(run_id, started_at, factor): run i starts 15 min before run i−1 and its latency figures are
scaled by a small deterministic factor, so trends and baselines have something to chew on.
Samples are replicated too unless `--no-samples` (10,000 runs × 2,900 samples = 29M rows).

10,000 runs with samples take ~10–20 s on the 2-core dev machine; the file is ~0.5 GB.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench.synthetic_results import results
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.slospec.evaluate import evaluate_run
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements
from dualbus_pipeline.store.trends import refresh_trends

TEMPLATE = "hist-template"
# table -> columns scaled by the run's factor (latency-like figures)
RUN_TABLES: dict[str, tuple[str, ...]] = {
    "targets": (),
    "summaries": ("mean", "p50", "p90", "p99", "p999", "max", "min", "service_p50",
                  "service_p99"),
    "bus_info": (),
    "stream_stats": (),
    "slo_results": (),
    "trend_points": (),
    "engine_samples": ("latency_ms", "service_ms"),
    "bus_samples": ("latency_ms", "service_ms"),
    "pair_samples": ("latency_ms", "service_ms"),
}
SAMPLE_TABLES = ("engine_samples", "bus_samples", "pair_samples")


def store_template(wh: Warehouse, run_id: str, started_at: datetime | None = None,
                   engines: int = 13, requests: int = 100) -> int:
    """One complete run through the real store/evaluate/trend path; returns samples stored."""
    buses, engs, pairs = results(engines, requests)
    begin_run(wh, run_id, "Nautilus (bench history)")
    slos = load_slo_dir(shipped_dir("slo"))
    with wh.transaction() as con:
        if started_at is not None:
            con.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", [started_at, run_id])
        n = store_measurements(con, run_id, buses, engs, pairs)
        ev = evaluate_run(con, run_id, slos, baseline_runs=5)
        mark_evaluated(con, run_id, settings={}, overall=ev.overall)
    with wh.transaction() as con:
        refresh_trends(con, run_id)
    return n


def generate(path: Path, runs: int, *, samples: bool = True) -> dict[str, float]:
    t0 = time.perf_counter()
    wh = Warehouse(path)
    wh.migrate()
    newest = datetime.now(UTC) - timedelta(hours=1)
    store_template(wh, TEMPLATE, newest - timedelta(minutes=15) * runs)
    t_template = time.perf_counter() - t0
    ids = pa.table({
        "i": pa.array(range(1, runs), pa.int32()),
        "new_id": pa.array([f"hist-{i:06d}" for i in range(1, runs)], pa.string()),
        "started": pa.array([newest - timedelta(minutes=15) * (runs - i)
                             for i in range(1, runs)], pa.timestamp("us", tz="UTC")),
        "factor": pa.array([1.0 + 0.05 * math.sin(i / 7.0) for i in range(1, runs)],
                           pa.float64()),
    })
    with wh.transaction() as con:
        con.register("_hist_ids", ids)
        cols = [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
        sel = ", ".join("h.new_id" if c == "run_id" else "h.started" if c == "started_at"
                        else "h.started + INTERVAL 5 SECOND" if c == "finished_at"
                        else f"r.{c}" for c in cols)
        con.execute(f"INSERT INTO runs ({', '.join(cols)}) SELECT {sel} FROM runs r, "
                    f"_hist_ids h WHERE r.run_id = '{TEMPLATE}'")
        for table, scaled in RUN_TABLES.items():
            if table in SAMPLE_TABLES and not samples:
                continue
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            sel = ", ".join("h.new_id" if c == "run_id" else "h.started" if c == "started_at"
                            else f"t.{c} * h.factor" if c in scaled else f"t.{c}"
                            for c in cols)
            con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {sel} FROM {table} t, "
                        f"_hist_ids h WHERE t.run_id = '{TEMPLATE}'")
        con.unregister("_hist_ids")
    with wh.connect() as con:
        con.execute("CHECKPOINT")
    return {"runs": runs, "template_s": round(t_template, 3),
            "total_s": round(time.perf_counter() - t0, 3),
            "file_mb": round(path.stat().st_size / 2**20, 1)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gen_history",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("runs", type=int)
    ap.add_argument("--no-samples", action="store_true", help="skip raw sample history")
    args = ap.parse_args(argv)
    if args.warehouse.exists():
        print(f"{args.warehouse} exists; refusing to add history to it", file=sys.stderr)
        return 2
    print(generate(args.warehouse, args.runs, samples=not args.no_samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
