"""What the reference stack should run for a topology: which buses and engines it manages,
and how engines are laid out over host processes. Pure functions of the topology and faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from dualbus_pipeline.config import Bus, Engine, Fault, Topology

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
STREAM_MAXLEN = 10_000


def bind_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def manages_bus(bus: Bus) -> bool:
    """Only plain-Redis buses on this machine are started by the stack."""
    return urlsplit(bus.url).scheme == "redis" and bus.host in LOCAL_HOSTS


def manages_engine(eng: Engine) -> bool:
    return urlsplit(eng.url).scheme == "http" and eng.host in LOCAL_HOSTS


def bus_password(bus: Bus) -> str | None:
    pw = urlsplit(bus.url).password
    return unquote(pw) if pw else None


def wanted_servers(topology: Topology) -> dict[str, tuple[int, str, str | None, list[str]]]:
    """One Redis server per distinct local port: id -> (port, host, password, bus names)."""
    out: dict[str, tuple[int, str, str | None, list[str]]] = {}
    for bus in topology.buses:
        if not manages_bus(bus):
            continue
        sid = f"redis-{bus.port}"
        if sid in out:
            out[sid][3].append(bus.name)
        else:
            out[sid] = (bus.port, bind_host(bus.host), bus_password(bus), [bus.name])
    return out


def wanted_hosts(topology: Topology, faults: Mapping[str, Fault]) -> dict[str, dict[str, Any]]:
    """Engine host specs (the JSON `stack.engine` reads), without down-faulted engines."""
    per_host = topology.stack.engines_per_host
    engines = [e for e in topology.engines
               if manages_engine(e) and not faults.get(e.name, Fault()).down]
    out: dict[str, dict[str, Any]] = {}
    # An engine with a fault gets a process of its own: a slow engine's delay (a precise
    # spin) or an error storm must not slow the healthy engines that share its event loop;
    # a measured neighbour would drift with the number of engines per host.
    alone = [e for e in engines if faults.get(e.name, Fault()) != Fault()] \
        if per_host > 1 else []
    shared = [e for e in engines if e not in alone]
    groups = [[e] for e in alone]
    # The others are striped over the host processes (engine i on host i mod H), not
    # packed in blocks: a probe walks engines in order, so neighbours in the list are in
    # flight together and should not all queue in one host's event loop.
    hosts = -(-len(shared) // per_host)  # ceil
    groups += [shared[k::hosts] for k in range(hosts)]
    for k, group in enumerate(groups):
        hid = f"engine-{group[0].name}" if len(group) == 1 and (
            per_host == 1 or group[0] in alone) else f"host-{k:03d}"
        out[hid] = {
            "host_id": hid,
            "stream_maxlen": STREAM_MAXLEN,
            "engines": [{
                "name": e.name, "bind": bind_host(e.host), "port": e.port,
                "health_path": e.health_path, "bus_url": topology.bus(e.bus).url,
                "stream": e.stream, "group": e.group,
                "fault": faults.get(e.name, Fault()).model_dump(),
            } for e in group],
        }
    return out
