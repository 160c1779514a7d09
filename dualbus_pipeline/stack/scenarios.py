"""Named fault scenarios for the reference stack and how they combine with `stack.faults`.

A scenario names engines of the shipped platform; it only applies to the engines a topology
actually has, so any scenario runs against any topology without failing.
"""

from __future__ import annotations

from collections.abc import Mapping

from dualbus_pipeline.config import Fault, Topology
from dualbus_pipeline.errors import StackError

# The seed report's picture (seed/dual_messagebus_performance_report.md): websocket
# unreachable, vpin unhealthy, strategy (1.14 ms) and backtesting (0.82 ms) slower than
# their ~0.3 ms peers.
SCENARIOS: dict[str, dict[str, Fault]] = {
    "healthy": {},
    "seed": {
        "websocket": Fault(down=True),
        "vpin": Fault(unhealthy=True),
        "strategy": Fault(delay_ms=0.8),
        "backtesting": Fault(delay_ms=0.5),
    },
    # Healthy on HTTP, every engine: but ml reads nothing from its bus (its group has no
    # consumer), the case /health alone cannot see (docs/probes.md, stream-consumer health).
    "silent-consumer": {
        "ml": Fault(consume=False),
    },
}


def scenario_faults(name: str, topology: Topology) -> dict[str, Fault]:
    """The scenario's faults restricted to the engines `topology` declares."""
    try:
        faults = SCENARIOS[name]
    except KeyError:
        raise StackError(f"unknown scenario {name!r} (choose from: "
                         f"{', '.join(sorted(SCENARIOS))})") from None
    present = {e.name for e in topology.engines}
    return {engine: fault for engine, fault in faults.items() if engine in present}


def effective_faults(topology: Topology, scenario: str = "healthy",
                     faults: Mapping[str, Fault] | None = None) -> dict[str, Fault]:
    """Scenario faults, overridden per engine by the config's `stack.faults`, then by `faults`."""
    out = scenario_faults(scenario, topology)
    out.update(topology.stack.faults)
    present = {e.name for e in topology.engines}
    for engine, fault in (faults or {}).items():
        if engine not in present:
            raise StackError(f"fault for unknown engine {engine!r} (engines: "
                             f"{', '.join(sorted(present)) or 'none'})")
        out[engine] = fault
    return {engine: fault for engine, fault in out.items() if fault != Fault()}


def describe_fault(fault: Fault) -> str:
    """A short human summary like 'unhealthy, +0.8 ms, 30% errors'."""
    parts: list[str] = []
    if fault.down:
        parts.append("down")
    if fault.unhealthy:
        parts.append("unhealthy")
    if fault.delay_ms:
        parts.append(f"+{fault.delay_ms:g} ms")
    if fault.error_ratio:
        parts.append(f"{fault.error_ratio:.0%} errors")
    if not fault.probe_protocol:
        parts.append("probe protocol off")
    if not fault.consume:
        parts.append("reads nothing from its bus")
    if fault.reply_as:
        parts.append(f"replies as {fault.reply_as!r}")
    return ", ".join(parts)
