"""One shard's work: probe its targets in a probe process under a deadline, then leave its
tables as Parquet for the loading step (store/handoff.py).

Never raises for a failed measurement: a probe process that dies, is killed or overruns
``probe.shard_timeout_s`` turns the targets it had not delivered into results that read
"no data: shard failed (<why>)" (probes/failed.py), so the other shards' results stay
usable and no target goes missing. A shard step that finds an earlier attempt's
``running.json`` was redelivered after the worker process running it died: it does not
probe again (the run's time has passed) and its targets read "shard failed (worker lost
mid-shard …)". Touches no warehouse: a shard may run on another host.
"""

from __future__ import annotations

import os
import socket
import time

from dualbus_pipeline.config import Topology
from dualbus_pipeline.errors import ProbeError
from dualbus_pipeline.probes.failed import failed_results
from dualbus_pipeline.probes.session import PHASES, Phase, ProbeSession
from dualbus_pipeline.sharding import Shard, phase_topologies
from dualbus_pipeline.store.handoff import (
    ShardManifest,
    mark_started,
    started_before,
    write_shard,
)
from dualbus_pipeline.store.tables import default_vantage, measurement_tables


def run_shard(topology: Topology, run_id: str, shard: Shard, root: str) -> ShardManifest:
    """Measure ``shard``'s targets and write its tables under ``root``; the manifest says
    what was written and, when the shard failed, why."""
    vantage = shard.vantage or default_vantage()
    tops = phase_topologies(topology, shard)
    wanted = {"buses": shard.buses, "engines": shard.engines, "pairs": shard.pairs}
    phases: tuple[Phase, ...] = tuple(p for p in PHASES if wanted[p])
    t0 = time.perf_counter()
    results: dict[str, list[object]] = {p: [] for p in PHASES}
    failed: dict[Phase, str] = {}
    cpu = 0.0
    lost = started_before(root, run_id, shard.name) if phases else None
    if lost is not None:
        failed = dict.fromkeys(phases, "worker lost mid-shard: the step process "
                               f"{lost.get('step_pid', '?')} on {lost.get('host', '?')} died")
    elif phases:
        with ProbeSession() as session:
            mark_started(root, run_id, shard.name, {
                "host": socket.gethostname(), "step_pid": os.getpid(),
                "probe_pid": session.pid, "vantage": vantage})
            session.start(tops, run_id, phases)
            timeout = topology.probe.shard_timeout_s
            finished = session.wait(timeout)
            for phase in phases:
                if not (finished or session.measured(phase)):
                    failed[phase] = f"timed out after {timeout:g} s (probe.shard_timeout_s)"
                    continue
                try:
                    got = session.result(phase)
                except ProbeError as exc:
                    failed[phase] = _why(str(exc), session.returncode)
                    continue
                results[phase], cpu = got.results, cpu + got.cpu_s
    for phase, why in failed.items():
        results[phase] = failed_results(tops[phase], phase, why)
    tables = measurement_tables(run_id, results["buses"], results["engines"],  # type: ignore[arg-type]
                                results["pairs"], vantage)  # type: ignore[arg-type]
    error = "; ".join(f"{p}: {w}" for p, w in failed.items()) or None
    return write_shard(root, run_id, shard.name, vantage, tables,
                       seconds=time.perf_counter() - t0, cpu_s=cpu, error=error)


def _why(message: str, returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"probe process killed by signal {-returncode}"
    return message.split("; see its messages above")[0]
