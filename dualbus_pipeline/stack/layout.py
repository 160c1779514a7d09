"""What the reference stack should run for a topology: which buses and engines it manages,
and how engines are laid out over host processes. Pure functions of the topology, the faults
and the flavour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from dualbus_pipeline.config import Bus, Engine, Fault, Topology
from dualbus_pipeline.errors import StackError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
STREAM_MAXLEN = 10_000

# aiohttp: the tuned engine host (stack/engine.py); fastapi: a typical platform service, one
# process per engine (stack/fastapi_engine.py).
Flavour = Literal["aiohttp", "fastapi"]
FLAVOURS: tuple[Flavour, ...] = get_args(Flavour)
DEFAULT_FLAVOUR: Flavour = "aiohttp"
ENGINE_MODULES: dict[Flavour, str] = {
    "aiohttp": "dualbus_pipeline.stack.engine",
    "fastapi": "dualbus_pipeline.stack.fastapi_engine",
}


def check_flavour(flavour: str) -> Flavour:
    for known in FLAVOURS:
        if flavour == known:
            return known
    raise StackError(f"unknown stack flavour {flavour!r} (choose from: {', '.join(FLAVOURS)})")


def host_flavour(spec: Mapping[str, Any]) -> Flavour:
    """The flavour of a host spec written by `wanted_hosts` (no key: aiohttp)."""
    return check_flavour(str(spec.get("flavour", "aiohttp")))


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


def wanted_hosts(topology: Topology, faults: Mapping[str, Fault],
                 flavour: Flavour = DEFAULT_FLAVOUR) -> dict[str, dict[str, Any]]:
    """Engine host specs (the JSON `stack.engine` reads), without down-faulted engines.

    A fastapi engine is a service of its own: one process per engine whatever
    `engines_per_host` says. Its specs carry `"flavour": "fastapi"`, so a change of flavour
    changes their hash and `up` restarts them; aiohttp specs carry no such key and keep the
    hash they always had."""
    per_host = 1 if flavour == "fastapi" else topology.stack.engines_per_host
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
        if flavour != "aiohttp":
            out[hid]["flavour"] = flavour
    return out
