"""Dagster resources: every external system behind a ConfigurableResource."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from dualbus_pipeline.config import Bus, Engine, LoadedConfig, Topology, load_config
from dualbus_pipeline.store import Warehouse


class TopologyResource(ConfigurableResource):  # type: ignore[type-arg]
    """The platform to probe, loaded from dualbus.yaml (validated at every use)."""

    config_path: str

    def loaded(self) -> LoadedConfig:
        return load_config(self.config_path)

    def topology(self) -> Topology:
        return self.loaded().topology


class BusesResource(ConfigurableResource):  # type: ignore[type-arg]
    """The Redis buses of the platform (from the topology file)."""

    config_path: str

    def buses(self) -> list[Bus]:
        return list(load_config(self.config_path).topology.buses)


class EnginesResource(ConfigurableResource):  # type: ignore[type-arg]
    """The engines of the platform (from the topology file)."""

    config_path: str

    def engines(self) -> list[Engine]:
        return list(load_config(self.config_path).topology.engines)


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """The DuckDB warehouse file; connections are opened per use, never held."""

    path: str

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path))


class SloResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the SLO YAML lives."""

    slo_dir: str


class ReportResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the Jinja2 templates live (reports are written next to the warehouse)."""

    templates_dir: str
