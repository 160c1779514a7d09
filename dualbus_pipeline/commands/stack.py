"""`dualbus stack up|down|status|kill`: the reference dual-bus stack (product.md §9)."""

from __future__ import annotations

import argparse
from typing import Any

from dualbus_pipeline.config import LoadedConfig, load_config
from dualbus_pipeline.stack.layout import DEFAULT_FLAVOUR, FLAVOURS
from dualbus_pipeline.stack.manager import StackManager, default_state_dir
from dualbus_pipeline.stack.scenarios import SCENARIOS
from dualbus_pipeline.stack.synthetic import (
    DEFAULT_BASE_PORT,
    DEFAULT_ENGINES_PER_HOST,
    synthetic_topology,
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stack", help="run the reference dual-bus stack (Redis buses + engines)",
                       description="Start, stop and inspect the reference stack: one Redis "
                       "server per bus and every engine as a real process, with injectable "
                       "faults. State (PID files, logs) lives in <warehouse dir>/stack/ unless "
                       "the config sets stack.state_dir. See docs/stack.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = actions.add_parser("up", parents=[common], help="start the stack (idempotent)",
                            description="Start the buses and engines and return once every "
                            "one answers. Running components are left alone; components whose "
                            "faults or flavour changed are restarted.")
    up.add_argument("--scenario", choices=sorted(SCENARIOS), default="healthy",
                    help="fault scenario: healthy (none), seed (websocket down, vpin "
                    "unhealthy, strategy and backtesting slower) or silent-consumer (ml "
                    "answers healthy but reads nothing from its bus); default healthy")
    up.add_argument("--flavour", choices=FLAVOURS, default=DEFAULT_FLAVOUR,
                    help="how the engines are built: aiohttp (the tuned reference engine, "
                    "several per process with stack.engines_per_host) or fastapi (FastAPI + "
                    "uvicorn + a blocking redis-py consumer thread, one process per engine, "
                    f"like a typical platform service); default {DEFAULT_FLAVOUR}")
    up.add_argument("--engines", type=int, metavar="N", default=None,
                    help="replace the engines with N synthetic ones (scale tests); writes "
                    "<state dir>/topology.yaml and prints its path")
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, metavar="PORT",
                    help=f"first port of the synthetic engines (default {DEFAULT_BASE_PORT})")
    up.add_argument("--engines-per-host", type=int, default=DEFAULT_ENGINES_PER_HOST,
                    metavar="K", help="synthetic engines per host process "
                    f"(default {DEFAULT_ENGINES_PER_HOST})")
    up.set_defaults(func=run_up)

    down = actions.add_parser("down", parents=[common], help="stop everything the stack started",
                              description="Stop exactly the processes `stack up` started "
                              "(checked against their PID files).")
    down.set_defaults(func=run_down)

    status = actions.add_parser("status", parents=[common], help="show each component up/down",
                                description="Print one line per bus and engine. Exit 0 "
                                "whatever the state.")
    status.set_defaults(func=run_status)

    kill = actions.add_parser("kill", parents=[common], help="stop one engine's process",
                              description="Stop one engine (to watch a probe see it go down).")
    kill.add_argument("engine", help="engine name")
    kill.set_defaults(func=run_kill)


def manager_for(args: argparse.Namespace) -> StackManager:
    cfg = load_config(args.config)
    return StackManager(cfg, default_state_dir(cfg, args.warehouse))


def _synthetic(args: argparse.Namespace, base: LoadedConfig) -> StackManager:
    state_dir = default_state_dir(base, args.warehouse)
    cfg = synthetic_topology(base, args.engines, state_dir, base_port=args.base_port,
                             engines_per_host=args.engines_per_host)
    return StackManager(cfg, state_dir)


def run_up(args: argparse.Namespace) -> int:
    if args.engines is not None:
        manager = _synthetic(args, load_config(args.config))
    else:
        manager = manager_for(args)
    status = manager.up(args.scenario, flavour=args.flavour)
    print(status.table())
    if args.engines is not None:
        print(f"topology: {manager.cfg.path}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    manager = manager_for(args)
    manager.down()
    print(f"stack down (state dir {manager.state_dir})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    print(manager_for(args).status().table())
    return 0


def run_kill(args: argparse.Namespace) -> int:
    manager = manager_for(args)
    manager.kill(args.engine)
    print(f"engine {args.engine} stopped")
    return 0
