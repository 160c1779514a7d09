"""`dualbus demo`: the reference stack with the seed's faults, one pipeline run, the report."""

from __future__ import annotations

import argparse
from typing import Any

from dualbus_pipeline.config import LoadedConfig, load_config
from dualbus_pipeline.stack.manager import StackManager, StackStatus, default_state_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="reference stack (seed faults) + one run + "
                       "the report path", description="Start the reference stack with the seed "
                       "scenario (websocket down, vpin unhealthy, strategy and backtesting "
                       "slower), run the pipeline once, print the report path, then stop the "
                       "stack unless --keep-stack.")
    p.add_argument("--keep-stack", action="store_true",
                   help="leave the stack running afterwards (stop it with `dualbus stack down`)")
    p.set_defaults(func=run)


def start_demo_stack(cfg: LoadedConfig, warehouse: str | None = None
                     ) -> tuple[StackManager, StackStatus]:
    """Bring the stack up with the seed scenario; return the manager (for `stop_demo_stack`)."""
    manager = StackManager(cfg, default_state_dir(cfg, warehouse))
    return manager, manager.up("seed")


def stop_demo_stack(manager: StackManager) -> None:
    manager.down()


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline.commands.run import execute

    cfg = load_config(args.config)
    manager, status = start_demo_stack(cfg, args.warehouse)
    try:
        print(status.table())
        out = execute(str(cfg.path), None, args.warehouse)
        print(f"run {out.run_id} completed in {out.seconds:.1f}s")
        print(f"report: {out.report_html}")
        print(f"        {out.report_html.with_name('report.md')}")
        print(f"        {out.report_html.with_name('results.json')}")
    finally:
        if args.keep_stack:
            print("stack left running; stop it with `dualbus stack down`")
        else:
            stop_demo_stack(manager)
            print("stack stopped")
    return 0
