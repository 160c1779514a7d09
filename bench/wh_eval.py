"""Child process of the warehouse benchmark: one new run over an existing warehouse.

`python -m bench.wh_eval WAREHOUSE` stores a new reference-shaped run (13 engines × 100
requests, 2 buses, 4 pairs) and times, separately, what the pipeline does after probing:
load (store_measurements), SLO evaluation, trend tables, report (build + render + store).
Prints one JSON line. Run as a child so the parent can read its own peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from bench.synthetic_results import results
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.report.pipeline import build_and_store_report
from dualbus_pipeline.slospec.evaluate import evaluate_run
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, mark_evaluated, store_measurements
from dualbus_pipeline.store.trends import refresh_trends


def main(argv: list[str]) -> int:
    wh = Warehouse(Path(argv[0]))
    run_id = f"bench-{uuid.uuid4()}"
    buses, engines, pairs = results(13, 100, seed=7)
    slos = load_slo_dir(shipped_dir("slo"))
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    begin_run(wh, run_id, "Nautilus (bench)")
    with wh.transaction() as con:
        t1 = time.perf_counter()
        store_measurements(con, run_id, buses, engines, pairs)
        t2 = time.perf_counter()
        ev = evaluate_run(con, run_id, slos, baseline_runs=5)
        mark_evaluated(con, run_id, settings={}, overall=ev.overall)
    t3 = time.perf_counter()
    with wh.transaction() as con:
        refresh_trends(con, run_id)
    t4 = time.perf_counter()
    out = build_and_store_report(wh, run_id, shipped_dir("templates"))
    t5 = time.perf_counter()
    t = {"begin_s": t1 - t0, "store_s": t2 - t1, "evaluate_s": t3 - t2, "trends_s": t4 - t3,
         "report_s": t5 - t4, "eval_trends_report_s": t5 - t2,
         "report_html_kb": len(out.rendered["html"]) / 1024}
    print(json.dumps({k: round(v, 4) for k, v in t.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
