"""Dagster resources: every external system behind a ConfigurableResource."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from dagster import ConfigurableResource

from dualbus_pipeline.config import Bus, Engine, LoadedConfig, Topology, load_config
from dualbus_pipeline.store import Warehouse


def load_config_cached(path: str) -> LoadedConfig:
    """``load_config`` once per file version: every asset and resource of a run asks for the
    topology, and parsing + validating it costs ~50 ms for 13 engines and ~1 s for 1,000.
    Keyed on the file's mtime and size and the environment (``${VAR}`` expansion), so an
    edited file or a changed variable is read and validated again."""
    try:
        st = os.stat(path)
        stamp: tuple[int, int] = (st.st_mtime_ns, st.st_size)
    except OSError:
        return load_config(path)  # let load_config report the problem
    return _load(path, stamp, tuple(sorted(os.environ.items())))


@lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[int, int], env: tuple[tuple[str, str], ...]) -> LoadedConfig:
    return load_config(path)


class TopologyResource(ConfigurableResource):  # type: ignore[type-arg]
    """The platform to probe, loaded from dualbus.yaml (validated at every use)."""

    config_path: str

    def loaded(self) -> LoadedConfig:
        return load_config_cached(self.config_path)

    def topology(self) -> Topology:
        return self.loaded().topology


class BusesResource(ConfigurableResource):  # type: ignore[type-arg]
    """The Redis buses of the platform (from the topology file)."""

    config_path: str

    def buses(self) -> list[Bus]:
        return list(load_config_cached(self.config_path).topology.buses)


class EnginesResource(ConfigurableResource):  # type: ignore[type-arg]
    """The engines of the platform (from the topology file)."""

    config_path: str

    def engines(self) -> list[Engine]:
        return list(load_config_cached(self.config_path).topology.engines)


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
