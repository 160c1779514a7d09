"""Sharded probing as Dagster steps: one op per planned shard (sharding.py), then a hand-off
op; together they materialize the three probe assets, so checks, `slo_results` and the rest
of the graph are the same as unsharded.

Each shard op measures its targets through the probe process and leaves Parquet files
(shard_runner.py); it never raises for a failed measurement, so one broken shard cannot skip
the loading step. A shard whose vantage names a Celery queue carries the
``dagster-celery/queue`` tag: only workers listening there (e.g. in that data centre) run it.

No `from __future__ import annotations` here: Dagster reads the ops' `context` annotation.
"""

from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetOut,
    AssetsDefinition,
    In,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    graph_multi_asset,
    op,
)

from dualbus_pipeline import progress
from dualbus_pipeline.defs.resources import TopologyResource, WarehouseResource
from dualbus_pipeline.sharding import Shard
from dualbus_pipeline.store.handoff import ShardManifest

PROBES = "probes"
CELERY_QUEUE_TAG = "dagster-celery/queue"


@dataclass(frozen=True)
class ShardedRun:
    """What the probe assets hand `slo_results` in a sharded run: every shard's manifest and
    the hand-off root to load them from."""

    root: str
    manifests: list[ShardManifest]

    @property
    def cpu_s(self) -> float:
        return sum(m.cpu_s for m in self.manifests)


def handoff_root(topology: TopologyResource, warehouse: WarehouseResource) -> str:
    """``probe.handoff``, else the reports folder next to the warehouse (the run's folder)."""
    return topology.topology().probe.handoff or str(warehouse.warehouse().reports_dir)


def make_shard_op(shard: Shard) -> OpDefinition:
    tags = {CELERY_QUEUE_TAG: shard.queue} if shard.queue else None

    @op(name=f"probe_{shard.name}", tags=tags, out=Out(ShardManifest),
        description=f"Probes shard {shard.name!r}: {len(shard.buses)} buses, "
        f"{len(shard.engines)} engines, {len(shard.pairs)} pairs"
        + (f" from vantage {shard.vantage!r}" if shard.vantage else "") + "; writes Parquet.")
    def probe_shard(context: OpExecutionContext, topology: TopologyResource,
                    warehouse: WarehouseResource) -> Output[ShardManifest]:
        from dualbus_pipeline.shard_runner import run_shard

        m = run_shard(topology.topology(), context.run.run_id, shard,
                      handoff_root(topology, warehouse))
        line = (f"{shard.targets} targets from {m.vantage}, {m.samples} samples "
                f"[probed {m.seconds:.2f}s]" if m.error is None else
                f"FAILED ({m.error}): its {shard.targets} targets read no data")
        progress.emit(f"probe_{shard.name}", line)
        return Output(m, metadata={"vantage": m.vantage, "samples": m.samples,
                                   "targets": shard.targets, "probe_seconds": round(m.seconds, 3),
                                   "failed": m.error or "no"})

    return probe_shard


def make_probe_shards(shards: list[Shard]) -> AssetsDefinition:
    """The three probe assets, materialized by one op per shard and a hand-off op."""
    shard_ops = [make_shard_op(s) for s in shards]
    names = [s.name for s in shards]

    @op(name="shard_handoff", ins={n: In(ShardManifest) for n in names},
        out={"buses": Out(ShardedRun), "engines": Out(ShardedRun), "pairs": Out(ShardedRun)},
        description="Gathers the shards' manifests for the one step that loads them.")
    def shard_handoff(context: OpExecutionContext, topology: TopologyResource,
                      warehouse: WarehouseResource, **manifests: Any) -> Any:
        run = ShardedRun(handoff_root(topology, warehouse), [manifests[n] for n in names])
        failed = [m.shard for m in run.manifests if m.error]
        meta: dict[str, Any] = {"shards": len(names), "failed_shards": ", ".join(failed) or "none",
                "vantages": ", ".join(sorted({m.vantage for m in run.manifests})),
                "samples": sum(m.samples for m in run.manifests)}
        progress.emit("shard_handoff", f"{len(names) - len(failed)}/{len(names)} shards "
                      f"delivered, {meta['samples']} samples"
                      + (f"; failed: {meta['failed_shards']}" if failed else ""))
        for name in ("buses", "engines", "pairs"):
            yield Output(run, output_name=name, metadata=meta)

    @graph_multi_asset(
        name="probe_shards",
        outs={"bus_measurements": AssetOut(group_name=PROBES, kinds={"redis", "python"},
                                           description="Bus probes, measured by the shards."),
              "engine_measurements": AssetOut(group_name=PROBES, kinds={"python"},
                                              description="Engine probes, by the shards."),
              "pair_measurements": AssetOut(group_name=PROBES, kinds={"redis", "python"},
                                            description="Pair round trips, by the shards.")})
    def probe_shards() -> Any:
        delivered = {s.name: shard_op() for s, shard_op in zip(shards, shard_ops, strict=True)}
        buses, engines, pairs = shard_handoff(**delivered)
        return {"bus_measurements": buses, "engine_measurements": engines,
                "pair_measurements": pairs}

    return probe_shards
