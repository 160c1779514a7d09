"""`dualbus run` and `dualbus check`: one pipeline run, in-process, on the Dagster graph.

Same asset graph as `dagster dev` (defs/build.py), executed with the in-process executor
(the multiprocess one costs ~5 s and ~400 MB more here). Progress is printed one line per
asset. `check` is `run` plus a gate: exit 1 when an error-severity SLO is breached.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dualbus_pipeline import progress
from dualbus_pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dualbus_pipeline.config import LoadedConfig, Topology
    from dualbus_pipeline.probes.session import ProbeSession
    from dualbus_pipeline.store import Warehouse


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, helptext in (("run", "one pipeline run (exit 0 when it completed)"),
                           ("check", "one run as a CI gate (exit 1 when the gate fails)")):
        p = sub.add_parser(name, parents=[common], help=helptext, description=helptext)
        p.add_argument("--slo", metavar="DIR", default=None,
                       help="SLO directory (default: slo/ next to the config, else shipped)")
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        p.add_argument("--executor", choices=("in_process", "multiprocess", "celery"),
                       default=None,
                       help="Dagster executor (default in_process, or DUALBUS_EXECUTOR): "
                       "multiprocess runs each step in its own process, celery on Celery "
                       "workers (docs/deploy.md)")
        if name == "check":
            p.add_argument(
                "--fail-on", choices=("error", "warning", "result"), default="error",
                help="error (default): an error-severity breach or no data fails; warning: "
                "a breach or no data of either severity fails; result: the overall result "
                "fail or no verdict fails. Inconclusive and pending-baseline results never "
                "fail the gate")
        p.set_defaults(func=run_cmd if name == "run" else check_cmd)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    warehouse: Path
    report_html: Path
    seconds: float


def execute(config: str | None, slo: str | None, warehouse: str | None, *,
            quiet: bool = False, executor: str | None = None) -> RunOutcome:
    """Validate inputs, check the warehouse is usable, probe, then materialize the graph.

    One path, in this order: the probe process (probes/session.py) is spawned first so it
    imports while the inputs are validated and the run is recorded; it then measures every
    phase with nothing else of ours running; only after the last phase does this process import
    Dagster and run the job, whose probe assets take the measured phases. Dagster's start-up
    is ~2.5 s of CPU here, and CPU work beside a probe keeps the host's CPUs awake and makes
    targets read faster than a client sees them (measured with engines probed together:
    docs/decisions.md), so it waits.
    """
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    from dualbus_pipeline.probes.session import ProbeSession

    chosen = executor or os.environ.get("DUALBUS_EXECUTOR") or "in_process"
    if chosen not in ("in_process", "multiprocess", "celery"):
        raise ConfigError([f"DUALBUS_EXECUTOR: unknown executor {chosen!r} (choose "
                           "in_process, multiprocess or celery)"])

    with ProbeSession() as session:  # first: the probe process imports meanwhile
        from dualbus_pipeline.config import load_config
        from dualbus_pipeline.sharding import is_sharded
        from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir
        from dualbus_pipeline.snapshot import begin_run_record
        from dualbus_pipeline.store import Warehouse

        cfg = load_config(config)  # bad input → exit 2 before anything is touched
        slo_dir = resolve_slo_dir(slo or os.environ.get("DUALBUS_SLO_DIR") or None, cfg)
        load_slo_dir(slo_dir)
        if chosen != "in_process" or is_sharded(cfg.topology):
            session.close()  # the steps probe: each shard or probe asset in its own session
            return _execute_steps(cfg, slo_dir, warehouse, chosen, quiet)
        wh = Warehouse(cfg.warehouse_path(warehouse))
        wh.migrate()  # a locked, corrupt or unwritable warehouse refuses here, before probing
        run_id = str(uuid.uuid4())
        started, started_at = time.perf_counter(), datetime.now(UTC)
        begin_run_record(wh, run_id, cfg, started_at=started_at)
        if not quiet:
            print("\n".join(banner(cfg.topology, wh.path)), flush=True)
        try:
            result = _probe_then_materialize(session, cfg, run_id, slo, warehouse, wh,
                                             started, quiet)
        except Exception as exc:  # the probes or Dagster's start-up broke: alert, then raise
            _record_failure(wh, cfg.topology, run_id, f"{type(exc).__name__}: {exc}")
            raise
    return _outcome(result, wh, cfg.topology, run_id, started)


def _outcome(result: Any, wh: Warehouse, topology: Topology, run_id: str,
             started: float) -> RunOutcome:
    """The run's outcome, or the failure recorded and raised (one line)."""
    if not result.success:
        from dualbus_pipeline.defs.failures import record_run_failure, run_failure

        failure = run_failure((e for e in result.all_events if e.is_step_failure),
                              "pipeline failed (see the Dagster run log)")
        record_run_failure(wh, topology, run_id, failure)
        raise PipelineError(failure.line)
    report = wh.reports_dir / result.run_id / "report.html"
    return RunOutcome(run_id=result.run_id, warehouse=wh.path, report_html=report,
                      seconds=time.perf_counter() - started)


def _execute_steps(cfg: LoadedConfig, slo_dir: Path, warehouse: str | None, executor: str,
                   quiet: bool) -> RunOutcome:
    """A run whose steps probe (sharded, or an out-of-process executor): no measurement
    first; the instance and broker are checked before the run is recorded."""
    from dualbus_pipeline.commands.executing import (
        dagster_instance,
        execute_out_of_process,
        preflight,
    )
    from dualbus_pipeline.snapshot import begin_run_record
    from dualbus_pipeline.store import Warehouse

    preflight(executor)
    wh = Warehouse(cfg.warehouse_path(warehouse))
    started = time.perf_counter()
    last = [started]

    def show(step: str, message: str) -> None:
        now = time.perf_counter()
        if not quiet:
            mark = "✗" if message == "FAILED" else "✓"
            print(f"  {mark} {step:<20} {now - last[0]:6.2f}s  {message}", flush=True)
        last[0] = now

    with _paths_in_environment(cfg, slo_dir, wh), (
            dagster_instance(executor) if executor != "in_process"
            else contextlib.nullcontext()) as instance:
        wh.migrate()  # a locked, corrupt or unwritable warehouse refuses here, before probing
        run_id = str(uuid.uuid4())
        begin_run_record(wh, run_id, cfg, started_at=datetime.now(UTC))
        if not quiet:
            print("\n".join(banner(cfg.topology, wh.path)), flush=True)
        try:
            if executor == "in_process":
                result = _materialize_in_process(cfg, str(slo_dir), wh, run_id, show)
            else:
                result = execute_out_of_process(instance, run_id, executor, show)
        except Exception as exc:
            _record_failure(wh, cfg.topology, run_id, f"{type(exc).__name__}: {exc}")
            raise
    return _outcome(result, wh, cfg.topology, run_id, started)


@contextlib.contextmanager
def _paths_in_environment(cfg: LoadedConfig, slo_dir: Path,
                          wh: Warehouse) -> Iterator[None]:
    """What steps in other processes rebuild the definitions from (commands/executing.py);
    restored afterwards."""
    keys = ("DUALBUS_CONFIG", "DUALBUS_SLO_DIR", "DUALBUS_WAREHOUSE", "DUALBUS_EXECUTOR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"DUALBUS_CONFIG": str(cfg.path),
                       "DUALBUS_SLO_DIR": str(slo_dir.resolve()),
                       "DUALBUS_WAREHOUSE": str(wh.path.resolve())})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _materialize_in_process(cfg: LoadedConfig, slo: str, wh: Warehouse, run_id: str,
                            show: Callable[[str, str], None]) -> Any:
    """A sharded run on the in-process executor: the shards one after the other."""
    from dagster import DagsterInstance

    job, instance, ephemeral = _start_dagster(str(cfg.path), slo, str(wh.path))
    try:
        with progress.listening(show), wh.held():
            return job.execute_in_process(
                instance=instance, raise_on_error=False, run_id=run_id,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    finally:
        if ephemeral:
            assert isinstance(instance, DagsterInstance)
            instance.dispose()


def _probe_then_materialize(session: ProbeSession, cfg: LoadedConfig, run_id: str,
                            slo: str | None, warehouse: str | None, wh: Warehouse, started: float,
                            quiet: bool) -> Any:
    """Measure every phase, then start Dagster and run the job on the measured phases."""
    from dualbus_pipeline.probes.session import opened_for_run

    session.start(cfg.topology, run_id)
    session.wait()
    probed = time.perf_counter()
    job, instance, ephemeral = _start_dagster(str(cfg.path), slo, warehouse)
    last = [time.perf_counter()]
    if not quiet:  # the asset lines below then time the assets alone
        print(f"  ✓ {'probes':<20} {probed - started:6.2f}s  every phase measured; "
              f"Dagster started in {last[0] - probed:.2f}s", flush=True)

    def show(step: str, message: str) -> None:
        now = time.perf_counter()
        if not quiet:
            print(f"  ✓ {step:<20} {now - last[0]:6.2f}s  {message}", flush=True)
        last[0] = now

    try:
        with progress.listening(show), opened_for_run(session), wh.held():
            return job.execute_in_process(
                instance=instance, raise_on_error=False, run_id=run_id,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    finally:
        if ephemeral:
            instance.dispose()


def _record_failure(wh: Warehouse, topology: Topology, run_id: str, line: str) -> None:
    """A run that broke outside the Dagster job: the same alert and record as inside it."""
    from dualbus_pipeline.defs.failures import RunFailure, record_run_failure

    record_run_failure(wh, topology, run_id, RunFailure(line.splitlines()[0], blocked=False))


def banner(topology: Topology, warehouse: Path) -> list[str]:
    """What `dualbus run` prints before the probes report: the platform, and when the engine
    phase will be long, how long and which setting shortens it."""
    from dualbus_pipeline.probes.engine import (
        LONG_ENGINE_PHASE_S,
        engine_phase_line,
        engine_phase_s,
    )

    t = topology
    lines = [f"dualbus: running {t.platform!r} ({len(t.buses)} buses, {len(t.engines)} "
             f"engines, {len(t.pairs)} pairs) → {warehouse}"]
    if engine_phase_s(t.probe, len(t.engines)) > LONG_ENGINE_PHASE_S:
        lines.append(f"  note: {engine_phase_line(t.probe, len(t.engines))}")
    return lines


def _start_dagster(config: str, slo: str | None, warehouse: str | None) -> tuple[Any, Any, bool]:
    """Import Dagster, build the definitions, resolve the job and create the instance."""
    from dagster import DagsterInstance

    from dualbus_pipeline.defs.build import JOB_NAME, build_definitions

    defs = build_definitions(config, slo, warehouse)
    job = defs.resolve_job_def(JOB_NAME)
    ephemeral = not os.environ.get("DAGSTER_HOME")
    instance = DagsterInstance.ephemeral() if ephemeral else DagsterInstance.get()
    return job, instance, ephemeral


def run_cmd(args: argparse.Namespace) -> int:
    out = execute(args.config, args.slo, args.warehouse, quiet=args.quiet,
                  executor=args.executor)
    print(f"run {out.run_id} completed in {out.seconds:.1f}s")
    print(f"report: {out.report_html}")
    return 0


def check_cmd(args: argparse.Namespace) -> int:
    from dualbus_pipeline.slospec.gate import gate_report
    from dualbus_pipeline.store import Warehouse
    from dualbus_pipeline.store.queries import run_bundle

    out = execute(args.config, args.slo, args.warehouse, quiet=args.quiet,
                  executor=args.executor)
    with Warehouse(out.warehouse).connect() as con:
        bundle = run_bundle(con, out.run_id)
    gate = gate_report(bundle["slo_results"], getattr(args, "fail_on", "error"),
                       bundle["run"] or {})
    print(f"run {out.run_id} completed in {out.seconds:.1f}s; report: {out.report_html}")
    if gate.not_judged:
        print(gate.not_judged)
    if not gate.failed:
        print(gate.headline)
        return 0
    print(gate.headline, file=sys.stderr)
    for line in gate.lines:
        print(f"  {line}", file=sys.stderr)
    return 1
