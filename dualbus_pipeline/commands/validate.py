"""`dualbus validate`: check the topology and (once SLOs land) the SLO files; exit 2 on problems."""

from __future__ import annotations

import argparse
from typing import Any

from dualbus_pipeline.config import Topology, load_config
from dualbus_pipeline.errors import InputError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("validate", parents=[common], help="check dualbus.yaml and slo/*.yaml",
                       description="Validate the topology file and the SLO files. Prints one "
                       "line per problem as FILE[:LINE]: dotted.path: message; exit 2 if any.")
    p.add_argument("--slo", metavar="DIR", default=None, help="SLO directory (default: slo/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    cfg = None
    try:
        cfg = load_config(args.config)
    except InputError as exc:
        problems += exc.problems
    slo_count = None
    try:
        from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir
    except ImportError:
        pass
    else:
        try:
            specs = load_slo_dir(resolve_slo_dir(args.slo, cfg))
            slo_count = len(specs)
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    assert cfg is not None
    t = cfg.topology
    print(f"{cfg.path}: ok — platform {t.platform!r}: {len(t.buses)} buses, "
          f"{len(t.engines)} engines, {len(t.pairs)} pairs")
    if slo_count is not None:
        print(f"SLOs: ok — {slo_count} SLOs")
    from dualbus_pipeline.probes.engine import engine_phase_line

    print(engine_phase_line(t.probe, len(t.engines)))
    for line in shard_lines(t):
        print(line)
    return 0


def shard_lines(t: Topology) -> list[str]:
    """A sharded topology: what each shard probes and its engine phase (docs/deploy.md)."""
    from dualbus_pipeline.probes.engine import engine_phase_s
    from dualbus_pipeline.sharding import is_sharded, plan_shards

    if not is_sharded(t):
        return []
    shards = plan_shards(t)
    how = "one per vantage" if t.vantages else "probe.shards, round-robin"
    lines = [f"shards: {len(shards)} ({how}), each its own step and probe process"]
    for s in shards[:8]:
        lines.append(f"  {s.name}: engines {len(s.engines)}, buses {len(s.buses)}, "
                     f"pairs {len(s.pairs)}; engine phase ≈ "
                     f"{engine_phase_s(t.probe, len(s.engines)):.1f} s"
                     + (f"; Celery queue {s.queue}" if s.queue else ""))
    if len(shards) > 8:
        lines.append(f"  … and {len(shards) - 8} more")
    return lines
