"""`dualbus demo`: the reference stack with the seed's faults (the pipeline run lands later)."""

from __future__ import annotations

import argparse
from typing import Any

from dualbus_pipeline.config import LoadedConfig, load_config
from dualbus_pipeline.stack.manager import StackManager, StackStatus, default_state_dir


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="start the reference stack (seed faults) "
                       "and show it", description="Start the reference stack with the seed "
                       "scenario (websocket down, vpin unhealthy, strategy and backtesting "
                       "slower), print its status, then stop it unless --keep-stack.")
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
    cfg = load_config(args.config)
    manager, status = start_demo_stack(cfg, args.warehouse)
    try:
        print(status.table())
    finally:
        if args.keep_stack:
            print("stack left running; stop it with `dualbus stack down`")
        else:
            stop_demo_stack(manager)
            print("stack stopped")
    return 0
