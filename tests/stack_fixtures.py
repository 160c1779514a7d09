"""Reusable reference-stack fixtures: any topology, free ports, chosen faults, real processes.

    from tests.stack_fixtures import make_topology

    def test_x(tmp_path, stack_factory):
        cfg_path = make_topology(tmp_path, ["alpha", "beta"], pairs=[("alpha", "beta")])
        stack = stack_factory(cfg_path, faults={"beta": Fault(delay_ms=20)})
        alpha = stack.topology.engine("alpha")        # alpha.health_url, alpha.stream, ...
        bus = stack.topology.bus("bus")               # bus.url for redis-py

Everything a factory started is stopped at teardown (and the test fails if anything is left
listening).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dualbus_pipeline.config import Fault, LoadedConfig, load_config
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import free_ports, port_is_open

EngineDecl = str | Mapping[str, Any]


def make_topology(tmp_path: Path, engines: Sequence[EngineDecl],
                  buses: Sequence[str] = ("bus",),
                  pairs: Sequence[tuple[str, str]] = (), *,
                  health_path: str = "/health",
                  faults: Mapping[str, Mapping[str, Any]] | None = None,
                  platform: str = "Testbed", filename: str = "dualbus.yaml",
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write a topology file whose buses and engines all sit on free local ports.

    `engines` are names, or dicts overriding any engine field (`bus`, `stream`, `group`,
    `health_path`, ...). Engines default to the first bus, stream `<name>-stream`, group
    `<name>-group`. `faults` becomes the file's `stack.faults` section. The warehouse (and so
    the stack state dir) lives under `tmp_path`.
    """
    ports = free_ports(len(buses) + len(engines))
    bus_docs = [{"name": b, "url": f"redis://127.0.0.1:{ports[i]}/0"}
                for i, b in enumerate(buses)]
    engine_docs: list[dict[str, Any]] = []
    for i, decl in enumerate(engines):
        d: dict[str, Any] = {"name": decl} if isinstance(decl, str) else dict(decl)
        name = d["name"]
        doc = {"name": name, "url": f"http://127.0.0.1:{ports[len(buses) + i]}",
               "health_path": health_path, "bus": buses[0], "stream": f"{name}-stream",
               "group": f"{name}-group"}
        doc.update(d)
        engine_docs.append(doc)
    top: dict[str, Any] = {
        "platform": platform, "buses": bus_docs, "engines": engine_docs,
        "pairs": [{"from": a, "to": b} for a, b in pairs],
        "warehouse": "warehouse/dualbus.duckdb",
    }
    if faults:
        top["stack"] = {"faults": {k: dict(v) for k, v in faults.items()}}
    top.update(extra or {})
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(top, sort_keys=False))
    return path


class StackFactory:
    """Starts stacks and remembers them so `close()` stops them all."""

    def __init__(self) -> None:
        self.started: list[StackManager] = []

    def __call__(self, config: Path | LoadedConfig, scenario: str = "healthy",
                 faults: Mapping[str, Fault] | None = None,
                 state_dir: Path | None = None) -> StackManager:
        cfg = config if isinstance(config, LoadedConfig) else load_config(config)
        manager = StackManager(cfg, state_dir)
        self.started.append(manager)
        manager.up(scenario, faults)
        return manager

    def close(self) -> None:
        ports: list[int] = []
        for manager in self.started:
            ports += [b.port for b in manager.topology.buses]
            ports += [e.port for e in manager.topology.engines]
            manager.down()
        left = [p for p in ports if port_is_open("127.0.0.1", p)]
        assert not left, f"stack teardown left listeners on ports {left}"


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., StackManager]]:
    """`stack_factory(config_path_or_LoadedConfig, scenario="healthy", faults=None)` → a
    started StackManager; every stack is stopped at teardown."""
    factory = StackFactory()
    yield factory
    factory.close()
