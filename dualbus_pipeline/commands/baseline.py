"""`dualbus baseline pin RUN | unpin | exclude RUN | include RUN | show`: baseline control.

The baseline of relative objectives and trends is the latest pinned run, else the median of
the last N good runs (`baseline.runs` in dualbus.yaml); excluded runs never count (docs/slos.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from dualbus_pipeline.config import load_config
from dualbus_pipeline.store import baselines
from dualbus_pipeline.store.warehouse import Warehouse


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("baseline", help="pin or exclude runs used as the baseline",
                       description="Control which runs form the baseline for relative "
                       "objectives and trend tables.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("pin", "use RUN as the baseline (latest pin wins)"),
                       ("exclude", "leave RUN out of baselines and SLO windows"),
                       ("include", "undo `exclude RUN`")):
        a = actions.add_parser(name, parents=[common], help=text, description=text)
        a.add_argument("run_id", metavar="RUN")
        a.set_defaults(func=run)
    for name, text in (("unpin", "remove the pin (back to the median of recent runs)"),
                       ("show", "print the pin, excluded runs and recent runs")):
        a = actions.add_parser(name, parents=[common], help=text, description=text)
        a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    wh = Warehouse(cfg.warehouse_path(args.warehouse))
    with wh.transaction() as con:
        if args.action == "pin":
            baselines.pin(con, args.run_id)
            print(f"baseline pinned to run {args.run_id}")
        elif args.action == "unpin":
            n = baselines.unpin(con)
            print(f"baseline unpinned ({n} pin(s) removed); using the median of the last "
                  f"{cfg.topology.baseline.runs} good runs")
        elif args.action in ("exclude", "include"):
            baselines.set_excluded(con, args.run_id, args.action == "exclude")
            print(f"run {args.run_id} {args.action}d "
                  f"{'from' if args.action == 'exclude' else 'in'} baselines and windows")
        else:
            info = baselines.show(con)
            median = f"(none: median of the last {cfg.topology.baseline.runs} good runs)"
            print(f"pinned: {info['pinned'] or median}")
            print(f"excluded: {', '.join(info['excluded']) or '(none)'}")
            for r in info["recent"]:
                flag = " excluded" if r["excluded"] else ""
                mark = " pinned" if r["run_id"] == info["pinned"] else ""
                score = "-" if r["score"] is None else f"{r['score']:g}"
                print(f"  {r['run_id']}  {r['started_at']:%Y-%m-%d %H:%M:%S}  {r['status']:<9}"
                      f"  grade {r['grade'] or '-':<2}  score {score}{flag}{mark}")
    return 0
