"""Build the Dagster Definitions from a topology, SLO dir and warehouse (CLI and UI share it)."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetsDefinition, AssetSelection, Definitions, define_asset_job

from dualbus_pipeline.config import Topology, load_config, shipped_dir
from dualbus_pipeline.defs.assets import ALL_ASSETS, PROBE_ASSETS
from dualbus_pipeline.defs.executors import executor_def
from dualbus_pipeline.defs.resources import (
    BusesResource,
    EnginesResource,
    ReportResource,
    SloResource,
    TopologyResource,
    WarehouseResource,
    load_config_cached,
)

JOB_NAME = "dualbus_run"


def resolve_templates_dir(templates_dir: str | Path | None = None) -> Path:
    return Path(templates_dir or os.environ.get("DUALBUS_TEMPLATES") or shipped_dir("templates"))


def build_definitions(config_path: str | Path | None = None, slo_dir: str | Path | None = None,
                      warehouse: str | Path | None = None,
                      templates_dir: str | Path | None = None,
                      executor: str | None = None) -> Definitions:
    """The definitions `dualbus run` and `dagster dev` share. ``executor``: in_process
    (default), multiprocess or celery; else DUALBUS_EXECUTOR (defs/executors.py)."""
    from dualbus_pipeline.defs.checks import make_slo_checks
    from dualbus_pipeline.defs.schedules import make_schedule
    from dualbus_pipeline.defs.sensors import make_sensors
    from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir

    raw_path = config_path or os.environ.get("DUALBUS_CONFIG") or None
    # With an explicit path, the run's assets reuse this parse (resources.load_config_cached).
    cfg = load_config(None) if raw_path is None else load_config_cached(str(raw_path))
    slo_path = resolve_slo_dir(str(slo_dir or os.environ.get("DUALBUS_SLO_DIR") or "") or None,
                               cfg)
    slos = load_slo_dir(slo_path)
    wh_path = cfg.warehouse_path(warehouse or os.environ.get("DUALBUS_WAREHOUSE") or None)
    tpl = resolve_templates_dir(templates_dir)
    config_file = str(cfg.path)

    job = define_asset_job(JOB_NAME, selection=AssetSelection.all(),
                           description="One dualbus run: probes → SLOs → trends → report → "
                           "alerts.",
                           executor_def=executor_def(executor, shard_steps(cfg.topology)),
                           # deploy/dagster.yaml's run queue limits this tag to one run
                           tags={"dualbus/pipeline": JOB_NAME})
    return Definitions(
        assets=graph_assets(cfg.topology),
        asset_checks=make_slo_checks(slos),
        jobs=[job],
        schedules=[make_schedule(job, cfg.topology)],
        sensors=make_sensors(job, cfg.topology),
        resources={
            "topology": TopologyResource(config_path=config_file),
            "buses": BusesResource(config_path=config_file),
            "engines": EnginesResource(config_path=config_file),
            "warehouse": WarehouseResource(path=str(wh_path)),
            "slo": SloResource(slo_dir=str(slo_path)),
            "report": ReportResource(templates_dir=str(tpl)),
        },
    )



def graph_assets(topology: Topology) -> list[AssetsDefinition]:
    """Today's graph, or with the three probe assets materialized by shards (defs/shards.py)."""
    from dualbus_pipeline.sharding import is_sharded, plan_shards

    if not is_sharded(topology):
        return list(ALL_ASSETS)
    from dualbus_pipeline.defs.shards import make_probe_shards

    rest = [a for a in ALL_ASSETS if a not in PROBE_ASSETS]
    return [make_probe_shards(plan_shards(topology)), *rest]


def shard_steps(topology: Topology) -> int:
    """How many shard steps a run has (0 unsharded): they may all run at once."""
    from dualbus_pipeline.sharding import is_sharded, plan_shards

    return len(plan_shards(topology)) if is_sharded(topology) else 0
