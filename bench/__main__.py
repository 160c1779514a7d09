"""`python -m bench [GROUP ...] [--quick] [--rounds N]` (= `python3 tasks.py bench`).

Groups: inrun (what `dualbus run` stores vs a same-rate control client, the probe alone,
wrk and redis-benchmark, on both stack flavours), verdicts (consecutive `dualbus check` on the
healthy stack, idle and with a busy core, and the seed scenario), fidelity (the probes alone vs
redis-benchmark / wrk), run (one `dualbus run` on the reference stack), scale (13 and 100
synthetic engines, and 100 at a raised budget), warehouse (1M-sample ingest; evaluation +
trends + report over 10 / 1,000 / 10,000 stored runs), growth (the scale and warehouse figures
as one table), shards (wall time vs engines for 1, 2 and 4 shards, the multiprocess executor
for 2 and 4, and the drift of a fixed-delay engine's p50: the sizing figures).
No group = all. `--quick` is a smoke run with tiny sizes. `--no-halt` keeps idle vCPUs
polling for the whole bench (needs root): the fast-loopback case. Prints a table of
figures and ratios and writes CSV + JSON to bench/results/. Benchmarks, not tests: nothing here
fails on a missed target (exit 0 unless a benchmark could not run).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from bench.common import cpus_never_halt, loadavg, table, write_results

GROUPS = ("inrun", "verdicts", "fidelity", "run", "scale", "warehouse", "growth", "shards")


def growth_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run time and memory vs engines and vs stored runs, picked from the scale and warehouse
    rows (growth re-uses them; it measures nothing by itself)."""
    keep = ("dualbus run wall", "peak RSS", "evaluation + trends + report",
            "peak RSS of that process")
    out = []
    for r in rows:
        if r["group"] in ("scale", "warehouse") and any(k in r["metric"] for k in keep):
            out.append({**r, "group": "growth", "target": None, "met": None, "raw": {}})
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="*", metavar="GROUP",
                    help=f"any of {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions where medians are taken")
    ap.add_argument("--runs", type=int, default=20, help="consecutive runs (verdicts)")
    ap.add_argument("--flavour", choices=("aiohttp", "fastapi"), action="append",
                    help="reference-stack flavour(s) for inrun (default: both)")
    ap.add_argument("--no-halt", action="store_true",
                    help="idle vCPUs poll instead of halting (/dev/cpu_dma_latency 0; root)")
    args = ap.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    groups = args.groups or list(GROUPS)
    if "growth" in groups:
        groups += [g for g in ("scale", "warehouse") if g not in groups]
    with contextlib.ExitStack() as held:
        if args.no_halt:
            try:
                held.enter_context(cpus_never_halt())
            except OSError as exc:
                print(f"--no-halt: cannot hold /dev/cpu_dma_latency at 0 ({exc}); run as root",
                      file=sys.stderr)
                return 2
        return _run(groups, args)


def _run(groups: list[str], args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    load0 = loadavg()
    if "inrun" in groups:
        from bench.verdict_bench import FLAVOURS, bench_inrun

        rows += bench_inrun(args.rounds, args.quick, tuple(args.flavour or FLAVOURS))
    if "verdicts" in groups:
        from bench.verdict_bench import bench_verdicts

        rows += bench_verdicts(args.runs, args.quick)
    if "fidelity" in groups:
        from bench.probe_fidelity import measure

        rows += measure(1 if args.quick else args.rounds, args.quick)
    if "run" in groups:
        from bench.pipeline_bench import bench_run

        rows += bench_run(args.rounds, args.quick)
    if "scale" in groups:
        from bench.pipeline_bench import bench_scale

        # at the gentle default budget 1,000 engines take ~25 min of probing (docs/probes.md):
        # the scale rows stop at 100, and the raised-budget row shows the lever
        rows += bench_scale([13, 40] if args.quick else [13, 100], fast_rate=1000.0)
    if "warehouse" in groups:
        from bench.warehouse_bench import bench_warehouse

        rows += bench_warehouse(args.quick, rounds=args.rounds)
    if "growth" in groups:
        rows += growth_rows(rows)
    if "shards" in groups:
        from bench.shard_bench import bench_shards

        rows += bench_shards([13, 26] if args.quick else [13, 50])
    print(table(rows))
    paths = write_results("bench", rows, {"groups": groups, "quick": args.quick,
                                          "rounds": args.rounds, "no_halt": args.no_halt,
                                          "loadavg": [load0, loadavg()]})
    print(f"\nload average (1 min) before/after: {load0} / {loadavg()}")
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
