"""`StackManager`: bring the reference stack up, down, and report its status.

Owns the state directory (default `<warehouse dir>/stack/`):

    run/<id>.json        one record per process we started: pid, start token, marker, ports
    run/<id>.spec.json   an engine host's spec (what `stack.engine` or `fastapi_engine` reads)
    logs/<id>.log        an engine host's stdout/stderr
    buses/<port>/        a Redis server's dir and log (no persistence)
    stack.json           the scenario, faults and flavour of the last `up`
    topology.yaml        the synthetic topology of `stack up --engines N`

`up` converges: components already running as wanted are left alone, ours that are no longer
wanted (or whose faults or flavour changed) are restarted or stopped, and a port held by
anything that is not ours is refused before anything starts. `down` stops only processes whose
PID, start time and command line match what we recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from dualbus_pipeline.config import Engine, Fault, LoadedConfig
from dualbus_pipeline.errors import StackError
from dualbus_pipeline.stack import procs
from dualbus_pipeline.stack.layout import (
    DEFAULT_FLAVOUR,
    ENGINE_MODULES,
    Flavour,
    bind_host,
    bus_password,
    check_flavour,
    host_flavour,
    manages_bus,
    manages_engine,
    wanted_hosts,
    wanted_servers,
)
from dualbus_pipeline.stack.records import ProcessRecord, RunRecords, spec_hash
from dualbus_pipeline.stack.redis_server import ping, port_is_open, start_redis
from dualbus_pipeline.stack.scenarios import describe_fault, effective_faults

READY_TIMEOUT_S = 30.0
HTTP_CHECK_TIMEOUT_S = 2.0

T = TypeVar("T")


def default_state_dir(cfg: LoadedConfig, warehouse: str | Path | None = None) -> Path:
    """`stack.state_dir` (relative to the config file), else `<warehouse dir>/stack`."""
    configured = cfg.topology.stack.state_dir
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else cfg.base_dir / p
    return cfg.warehouse_path(warehouse).parent / "stack"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: Literal["bus", "engine"]
    port: int
    pid: int | None
    up: bool
    detail: str
    # False for an engine whose fault is `down`, or an external component we do not run.
    expected_up: bool = True
    http_status: int | None = None


@dataclass(frozen=True)
class StackStatus:
    state_dir: Path
    components: list[ComponentStatus]
    scenario: str | None = None
    # Processes of ours in the state dir that this topology does not declare.
    extra: list[str] = field(default_factory=list)
    flavour: str | None = None  # of the last `up`; None once the stack is down

    @property
    def buses(self) -> list[ComponentStatus]:
        return [c for c in self.components if c.kind == "bus"]

    @property
    def engines(self) -> list[ComponentStatus]:
        return [c for c in self.components if c.kind == "engine"]

    @property
    def ok(self) -> bool:
        """Every component that should answer does."""
        return all(c.up for c in self.components if c.expected_up)

    def component(self, name: str, kind: Literal["bus", "engine"] = "engine") -> ComponentStatus:
        for c in self.components:
            if c.name == name and c.kind == kind:
                return c
        raise KeyError(f"{kind} {name}")

    def table(self) -> str:
        rows = [("KIND", "NAME", "PORT", "PID", "STATE", "DETAIL")]
        for c in self.components:
            rows.append((c.kind, c.name, str(c.port), str(c.pid or "-"),
                         "up" if c.up else "down", c.detail))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(v.ljust(widths[i]) if i < 5 else v for i, v in enumerate(r)).rstrip()
                 for r in rows]
        up = sum(c.up for c in self.components)
        about = [f"scenario {self.scenario}"] if self.scenario else []
        about += [f"flavour {self.flavour}"] if self.flavour else []
        lines.append(f"{up}/{len(self.components)} components up"
                     + (f" ({', '.join(about)})" if about else "")
                     + f"; state dir {self.state_dir}")
        if self.extra:
            lines.append(f"also running from another topology: {', '.join(self.extra)}")
        return "\n".join(lines)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class StackManager:
    """Up/down/status of the reference stack for one topology and one state directory."""

    def __init__(self, cfg: LoadedConfig, state_dir: Path | None = None, *,
                 ready_timeout: float = READY_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.topology = cfg.topology
        self.state_dir = (state_dir or default_state_dir(cfg)).resolve()
        self.ready_timeout = ready_timeout
        self.run_dir = self.state_dir / "run"
        self.records = RunRecords(self.run_dir)
        self.log_dir = self.state_dir / "logs"

    # -- public ------------------------------------------------------------------------------

    def up(self, scenario: str = "healthy", faults: Mapping[str, Fault] | None = None, *,
           flavour: str = DEFAULT_FLAVOUR) -> StackStatus:
        """Start (or converge to) the stack with `scenario` faults, overridden by the config's
        `stack.faults` and then by `faults`, its engines of `flavour` (aiohttp or fastapi,
        docs/stack.md); return once everything answers."""
        flav = check_flavour(flavour)
        eff = effective_faults(self.topology, scenario, faults)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        servers = wanted_servers(self.topology)
        hosts = wanted_hosts(self.topology, eff, flav)
        records = self.records.live()

        stale = [r for r in records.values()
                 if (r.kind == "bus" and r.id not in servers)
                 or (r.kind == "engines" and (r.id not in hosts
                                              or r.spec_hash != spec_hash(hosts[r.id])))]
        self.records.stop(stale)
        for r in stale:
            del records[r.id]

        to_start_servers = {sid: v for sid, v in servers.items() if sid not in records}
        to_start_hosts = {hid: v for hid, v in hosts.items() if hid not in records}
        self._preflight(to_start_servers, to_start_hosts, eff, records)
        self._write_state(scenario, eff, flav)

        started: list[ProcessRecord] = []
        try:
            for sid, (port, host, password, buses) in to_start_servers.items():
                started.append(self._start_server(sid, port, host, password, buses))
            for hid, spec in to_start_hosts.items():
                started.append(self._spawn_host(hid, spec))
            self._wait_ready(hosts, eff)
        except BaseException:
            self.records.stop(started)
            raise
        return self.status()

    def down(self) -> None:
        """Stop every process this state dir records as ours; leave no listener behind."""
        records = list(self.records.live().values())
        # Engines first so they do not log a burst of reconnects to dying buses.
        self.records.stop([r for r in records if r.kind == "engines"])
        self.records.stop([r for r in records if r.kind == "bus"])
        ports = [(p, r.kind) for r in records for p in r.ports]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(port_is_open("127.0.0.1", p)
                                                  for p, _ in ports):
            time.sleep(0.05)
        still = [str(p) for p, _ in ports if port_is_open("127.0.0.1", p)]
        if still:
            raise StackError(f"stack down: port(s) {', '.join(still)} still listening after "
                             "stopping our processes; something else holds them")
        state = self.state_dir / "stack.json"
        state.unlink(missing_ok=True)

    def kill(self, engine: str) -> None:
        """Stop the process of one engine (it must not share its process with others)."""
        if engine not in {e.name for e in self.topology.engines}:
            raise StackError(f"unknown engine {engine!r}")
        for r in self.records.live().values():
            if r.kind == "engines" and engine in r.names:
                if len(r.names) > 1:
                    raise StackError(
                        f"engine {engine!r} shares process {r.pid} with {len(r.names) - 1} "
                        "other engine(s) (stack.engines_per_host > 1); it cannot be killed alone")
                self.records.stop([r])
                return
        raise StackError(f"engine {engine!r} is not running (nothing to kill)")

    def status(self) -> StackStatus:
        records = self.records.live()
        state = self._read_state()
        faults = {k: Fault.model_validate(v) for k, v in state.get("faults", {}).items()}
        by_port = {p: r for r in records.values() if r.kind == "bus" for p in r.ports}
        by_engine = {n: r for r in records.values() if r.kind == "engines" for n in r.names}
        comps: list[ComponentStatus] = []
        for bus in self.topology.buses:
            rec = by_port.get(bus.port) if manages_bus(bus) else None
            answered = ping(bind_host(bus.host), bus.port, bus_password(bus))
            managed = manages_bus(bus)
            detail = "PONG" if answered else ("not running" if rec is None else "no PONG")
            if not managed:
                detail = f"external (not managed): {detail}"
            comps.append(ComponentStatus(bus.name, "bus", bus.port, rec.pid if rec else None,
                                         answered, detail, expected_up=managed))
        checks = _run_sync(self._check_engines(self.topology.engines, faults))
        for eng in self.topology.engines:
            rec = by_engine.get(eng.name)
            fault = faults.get(eng.name, Fault())
            code, body_status = checks[eng.name]
            suffix = f" [fault: {describe_fault(fault)}]" if fault != Fault() else ""
            if code is not None:
                detail = f"{code} {body_status or ''}".strip()
            elif fault.down:
                detail = "not listening"
            elif rec is not None:
                detail = "process running, not answering"
            else:
                detail = "not running"
            if not manages_engine(eng):
                detail = f"external (not managed): {detail}"
            comps.append(ComponentStatus(
                eng.name, "engine", eng.port, rec.pid if rec else None, code is not None,
                detail + suffix, expected_up=manages_engine(eng) and not fault.down,
                http_status=code))
        known = {e.name for e in self.topology.engines}
        extra = sorted(r.id for r in records.values()
                       if r.kind == "engines" and not set(r.names) & known)
        return StackStatus(self.state_dir, comps, state.get("scenario"), extra,
                           state.get("flavour"))

    # -- state -------------------------------------------------------------------------------

    def _write_state(self, scenario: str, faults: Mapping[str, Fault],
                     flavour: Flavour) -> None:
        (self.state_dir / "stack.json").write_text(json.dumps({
            "scenario": scenario, "flavour": flavour, "config": str(self.cfg.path),
            "faults": {k: v.model_dump() for k, v in faults.items()},
        }, indent=1))

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- starting ----------------------------------------------------------------------------

    def _preflight(self, servers: Mapping[str, tuple[int, str, str | None, list[str]]],
                   hosts: Mapping[str, dict[str, Any]], faults: Mapping[str, Fault],
                   records: Mapping[str, ProcessRecord]) -> None:
        """Refuse before starting anything if a port we need is held by something not ours."""
        taken: list[str] = []
        for port, host, _pw, names in servers.values():
            if port_is_open(host, port):
                taken.append(f"port {port} (bus {', '.join(names)})")
        for spec in hosts.values():
            for e in spec["engines"]:
                if port_is_open(e["bind"], e["port"]):
                    taken.append(f"port {e['port']} (engine {e['name']})")
        ours = {p for r in records.values() for p in r.ports}
        for eng in self.topology.engines:
            f = faults.get(eng.name, Fault())
            if (f.down and manages_engine(eng) and eng.port not in ours
                    and port_is_open(bind_host(eng.host), eng.port)):
                taken.append(f"port {eng.port} (engine {eng.name}, which must be down)")
        if taken:
            raise StackError(
                f"{'; '.join(taken)} already in use by a process this stack did not start "
                f"(state dir {self.state_dir}); stop it or change the port in {self.cfg.path}")

    def _start_server(self, sid: str, port: int, host: str, password: str | None,
                      buses: list[str]) -> ProcessRecord:
        try:
            rp = start_redis(port, self.state_dir / "buses" / str(port), host=host,
                             password=password)
        except StackError as exc:
            raise StackError(f"bus {', '.join(buses)}: {exc}") from None
        if rp.proc is not None:
            procs.adopt(rp.proc)
        token = procs.start_token(rp.pid)
        if token is None:
            raise StackError(f"bus {', '.join(buses)}: redis server on port {port} vanished")
        rec = ProcessRecord(sid, "bus", rp.pid, token, str(port), [port], buses)
        self.records.save(rec)
        return rec

    def _spawn_host(self, hid: str, spec: dict[str, Any]) -> ProcessRecord:
        spec_path = self.records.write_spec(hid, spec)
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [pkg_root, *filter(None, [env.get("PYTHONPATH")])])
        module = ENGINE_MODULES[host_flavour(spec)]
        proc = procs.spawn([sys.executable, "-m", module, str(spec_path)],
                           self.log_dir / f"{hid}.log", cwd=self.state_dir, env=env)
        token = procs.start_token(proc.pid) or ""
        rec = ProcessRecord(hid, "engines", proc.pid, token, str(spec_path),
                      [e["port"] for e in spec["engines"]],
                      [e["name"] for e in spec["engines"]], spec_hash(spec))
        self.records.save(rec)
        return rec

    def _wait_ready(self, hosts: Mapping[str, dict[str, Any]],
                    faults: Mapping[str, Fault]) -> None:
        engines = {e["name"]: hid for hid, spec in hosts.items() for e in spec["engines"]}
        pending = [self.topology.engine(n) for n in engines]
        timeout = self.ready_timeout + 0.02 * len(pending)
        deadline = time.monotonic() + timeout
        while pending:
            records = {r.id: r for r in self.records.all()}
            for hid in {engines[e.name] for e in pending}:
                rec = records.get(hid)
                if rec is None or not procs.is_alive(rec.pid):
                    tail = procs.log_tail(self.log_dir / f"{hid}.log")
                    names = ", ".join(e["name"] for e in hosts[hid]["engines"])
                    raise StackError(f"engine {names}: process exited at start"
                                     + (f": {tail}" if tail else "")
                                     + f" (log {self.log_dir / f'{hid}.log'})")
            checks = _run_sync(self._check_engines(pending, faults))
            pending = [e for e in pending if checks[e.name][0] is None]
            if not pending:
                return
            if time.monotonic() > deadline:
                shown = ", ".join(f"{e.name} (port {e.port})" for e in pending[:5])
                more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
                raise StackError(f"engine(s) {shown}{more} did not answer GET health within "
                                 f"{timeout:.0f}s (logs in {self.log_dir})")
            time.sleep(0.1)

    # -- checking ----------------------------------------------------------------------------

    @staticmethod
    async def _check_engines(engines: list[Engine], faults: Mapping[str, Fault]
                             ) -> dict[str, tuple[int | None, str | None]]:
        """GET each engine's health path once: name -> (HTTP status or None, body status)."""
        connector = aiohttp.TCPConnector(limit=200, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(e: Engine) -> tuple[int | None, str | None]:
                delay = faults.get(e.name, Fault()).delay_ms / 1000
                timeout = aiohttp.ClientTimeout(total=HTTP_CHECK_TIMEOUT_S + delay)
                try:
                    async with session.get(e.health_url, timeout=timeout) as resp:
                        try:
                            body = await resp.json(content_type=None)
                        except (ValueError, aiohttp.ContentTypeError):
                            body = None
                        status = body.get("status") if isinstance(body, dict) else None
                        return resp.status, str(status) if status is not None else None
                except (aiohttp.ClientError, TimeoutError, OSError):
                    return None, None

            results: list[Awaitable[tuple[int | None, str | None]]] = [one(e) for e in engines]
            answers = await asyncio.gather(*results)
        return {e.name: a for e, a in zip(engines, answers, strict=True)}
