"""`shards` benchmark: wall time vs engines for 1, 2 and 4 shards on this machine, and the
drift of a fixed-delay engine's p50 (docs/benchmarks.md, "Sizing").

One synthetic stack of the largest N (`synthetic_topology`, e0000 with a 1 ms delay fault in a
host process of its own, as the `scale` group starts it); for each N, the first N engines run
with `probe.shards` 1 (today's in-process `dualbus run`) and then 2 and 4 shards on the
multiprocess executor (each shard its own step and probe process, a temporary Dagster
instance), then N=13 unsharded again. Per run: wall, engine probing seconds where printed,
e0000's p50 and its drift against the lower of the two N=13 unsharded p50s, and the share of
engine summaries flagged invalid or inconclusive. Per-worker figure: engines one probe
process measures per second at the default settings (N ÷ engine-phase seconds, 1 shard), from
which docs/benchmarks.md sizes workers for 10,000 and 100,000 engines in a 60 s run.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, ChildRun, row, run_child
from bench.pipeline_bench import (
    DUALBUS,
    _free_block,
    _scale_figures,
    _subset,
    parse_steps,
    reference_config,
)
from dualbus_pipeline.config import Fault, load_config
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.synthetic import synthetic_topology

SHARDS = (1, 2, 4)


def _run(config: Path, warehouse: Path, shards: int) -> ChildRun:
    env = dict(os.environ, DAGSTER_DISABLE_TELEMETRY="1")
    env.pop("DAGSTER_HOME", None)
    args = [] if shards == 1 else ["--executor", "multiprocess"]
    res = run_child([*DUALBUS, "run", "--config", str(config), "--warehouse", str(warehouse),
                     *args], env=env, cwd=ROOT, timeout_s=1800)
    if res.returncode != 0:
        raise RuntimeError(f"dualbus run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    res.steps, probing = parse_steps(res.stdout)
    res.steps["probing"] = probing
    for line in res.stdout.splitlines():  # per phase (1 shard) or per shard: [probed X s]
        m = _PROBED_LINE.search(line)
        if m:
            res.steps[f"probed {m.group(1)}"] = float(m.group(2))
    return res


_PROBED_LINE = re.compile(r"✓ ([\w.]+)\s.*\[probed ([\d.]+)s\]")


def _with_shards(path: Path, shards: int) -> Path:
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("probe", {})["shards"] = shards
    out = path.with_name(f"{path.stem}-k{shards}.yaml")
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def bench_shards(sizes: list[int]) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="dualbus-bench-shards-"))
    base = load_config(reference_config(tmp))
    biggest = max(sizes)
    cfg = synthetic_topology(base, biggest, tmp / "stack", base_port=_free_block(biggest))
    stack = StackManager(cfg, tmp / "stack")
    out: list[dict[str, Any]] = []
    p50s: dict[tuple[int, int], float | None] = {}
    try:
        if not stack.up("healthy", faults={"e0000": Fault(delay_ms=1.0)}).ok:
            raise RuntimeError("synthetic stack did not come up")
        plan = [(n, k) for n in sizes for k in SHARDS] + [(sizes[0], 0)]  # 0: N=13 again
        for n, k in plan:
            topo = _with_shards(_subset(Path(cfg.path), n, tmp / f"topology-{n}.yaml"),
                                max(k, 1))
            wh = tmp / f"wh-{n}-{k}.duckdb"
            res = _run(topo, wh, max(k, 1))
            fig = _scale_figures(wh)
            p50s[(n, k)] = fig["e0000_p50"]
            tag = f"N={n}, {max(k, 1)} shard{'s' if k > 1 else ''}" + (" again" if not k
                                                                      else "")
            share = fig["invalid"] / fig["engines"] if fig["engines"] else None
            out += [
                row("shards", f"{tag}: dualbus run wall", round(res.wall_s, 2), "s",
                    note="in-process executor" if k <= 1 else "multiprocess executor",
                    raw={"steps": res.steps, "cpu_s": round(res.cpu_s, 2),
                         "load": [res.load_before, res.load_after]}),
                row("shards", f"{tag}: probing (1 shard: buses + engines + pairs; "
                    "else the slowest shard)", _probing(res, k), "s",
                    note=", ".join(f"{key.removeprefix('probed ')} {v:.1f}"
                                   for key, v in res.steps.items()
                                   if key.startswith("probed "))),
                row("shards", f"{tag}: e0000 (1 ms delay) p50", fig["e0000_p50"], "ms"),
                row("shards", f"{tag}: engine summaries invalid or inconclusive",
                    None if share is None else round(100 * share, 1), "%",
                    note=f"{fig['invalid']}/{fig['engines']}"),
            ]
    finally:
        stack.down()
    base13 = [v for (n, k), v in p50s.items() if n == sizes[0] and k in (0, 1) and v]
    if base13:
        ref = min(base13)
        out += [row("shards", f"e0000 p50 drift N={n}, {k} shards vs N={sizes[0]}",
                    round(v / ref, 3), "x", target=1.1,
                    note=f"vs the lower of the N={sizes[0]} unsharded p50s "
                    f"({', '.join(f'{b:.3f}' for b in base13)} ms)")
                for (n, k), v in p50s.items() if v and k >= 1 and (n, k) != (sizes[0], 1)]
    return out


def _probing(res: ChildRun, k: int) -> float | None:
    if k <= 1:
        return res.steps.get("probing")
    shards = [v for key, v in res.steps.items() if key.startswith("probed probe_shards.")]
    return max(shards) if shards else None
