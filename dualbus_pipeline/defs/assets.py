"""The asset graph: probes → slo_results (load + evaluate, one transaction) → trend_tables →
graded_report, and slo_results → alert_dispatch. Alerts are decided from the verdicts alone:
a blocking SLO check (defs/checks.py) holds back the report, never an alert. The run is
'completed' when both the report and the alerts are done, whichever finishes second
(store/runs.py). Each asset body is a few calls into the pure packages."""


from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from dagster import (
    AssetExecutionContext,
    AssetIn,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)

from dualbus_pipeline import progress
from dualbus_pipeline.config import LoadedConfig
from dualbus_pipeline.defs.resources import (
    BusesResource,
    EnginesResource,
    ReportResource,
    SloResource,
    TopologyResource,
    WarehouseResource,
)
from dualbus_pipeline.probes.model import BusResult, EngineResult, PairResult
from dualbus_pipeline.probes.session import Phase, PhaseResult, measure
from dualbus_pipeline.snapshot import begin_run_record
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import fail_run

PROBES = "probes"
WAREHOUSE = "warehouse"
REPORTING = "reporting"


@contextmanager
def recording_failure(wh: Warehouse, run_id: str, step: str) -> Iterator[None]:
    """Any exception marks the run failed or partial (store/runs.py), with the same one-line
    reason the CLI and the failure sensor give (defs/failures.py), before propagating."""
    try:
        yield
    except Exception as exc:
        with suppress(Exception):  # the original error matters more than recording it
            fail_run(wh, run_id, f"pipeline failed at {step}: {type(exc).__name__}: "
                     + (str(exc).splitlines() or [""])[0])
        raise


def _start(context: AssetExecutionContext, topology: TopologyResource,
           warehouse: WarehouseResource) -> tuple[LoadedConfig, Warehouse]:
    cfg = topology.loaded()
    wh = warehouse.warehouse()
    begin_run_record(wh, context.run.run_id, cfg)  # once per run (`dualbus run` did it first)
    return cfg, wh


def _measure(cfg: LoadedConfig, run_id: str, phase: Phase) -> PhaseResult:
    """One probe phase, measured in a child process (probes/session.py): the one `dualbus run`
    opened before Dagster started, else one of the asset's own."""
    return measure(cfg.topology, run_id, phase)


def _probe_meta(phase: PhaseResult) -> dict[str, Any]:
    return {"probe_seconds": round(phase.seconds, 3), "probe_cpu_seconds": round(phase.cpu_s, 3)}


def _num(v: float | None) -> float:
    return float("nan") if v is None else round(float(v), 4)


@asset(group_name=PROBES, kinds={"redis", "python"},
       description="Bus probes (product.md §4.1): PING round trips, publish→consume delivery "
       "latency over Redis Streams, a bounded capacity burst, and passive INFO/XINFO health.")
def bus_measurements(context: AssetExecutionContext, topology: TopologyResource,
                     buses: BusesResource, warehouse: WarehouseResource) -> Output[PhaseResult]:
    cfg, wh = _start(context, topology, warehouse)
    with recording_failure(wh, context.run.run_id, "bus_measurements"):
        phase = _measure(cfg, context.run.run_id, "buses")
    result: list[BusResult] = phase.results
    probed = phase.seconds
    meta: dict[str, Any] = _probe_meta(phase)
    meta["buses"] = ", ".join(b.name for b in buses.buses())  # what the topology declares
    for b in result:
        meta[f"{b.name}_status"] = b.status
        meta[f"{b.name}_ping_p50_ms"] = _num(b.ping.p50)
        meta[f"{b.name}_delivery_p99_ms"] = _num(b.delivery.p99)
        meta[f"{b.name}_throughput_msgs_per_s"] = _num(b.throughput_msgs_per_s)
    progress.emit("bus_measurements", ", ".join(f"{b.name} {b.status}" for b in result)
                  + f" [probed {probed:.2f}s]")
    return Output(phase, metadata=meta)


@asset(group_name=PROBES, kinds={"python"},
       description="Engine probes (product.md §4.2): paced open-loop GETs of each engine's "
       "health path (gentle, with windows alone and re-takes) and a short back-to-back "
       "series (the hot path), latency from when the probe was ready, classification.")
def engine_measurements(context: AssetExecutionContext, topology: TopologyResource,
                        engines: EnginesResource,
                        warehouse: WarehouseResource) -> Output[PhaseResult]:
    cfg, wh = _start(context, topology, warehouse)
    with recording_failure(wh, context.run.run_id, "engine_measurements"):
        phase = _measure(cfg, context.run.run_id, "engines")
    result: list[EngineResult] = phase.results
    probed = phase.seconds
    operational = sum(1 for e in result if e.status == "operational")
    meta: dict[str, Any] = {
        "engines_declared": len(engines.engines()),  # what the topology declares
        "engines_total": len(result),
        "engines_operational": operational,
        "availability": _num(operational / len(result)) if result else _num(None),
        **_probe_meta(phase),
    }
    for e in result[:50]:  # the UI plots each key; cap so 1,000 engines stay readable
        meta[f"{e.name}_p99_ms"] = _num(e.summary.p99)
    progress.emit("engine_measurements",
                  f"{operational}/{len(result)} engines operational [probed {probed:.2f}s]")
    return Output(phase, metadata=meta)


@asset(group_name=PROBES, kinds={"redis", "python"},
       description="Cross-engine round trips through the bus with the dualbus probe protocol "
       "(product.md §4.3): probe → A's stream → B's stream → reply.")
def pair_measurements(context: AssetExecutionContext, topology: TopologyResource,
                      warehouse: WarehouseResource) -> Output[PhaseResult]:
    cfg, wh = _start(context, topology, warehouse)
    with recording_failure(wh, context.run.run_id, "pair_measurements"):
        phase = _measure(cfg, context.run.run_id, "pairs")
    result: list[PairResult] = phase.results
    probed = phase.seconds
    meta: dict[str, Any] = _probe_meta(phase)
    for p in result[:50]:  # capped like engines: the UI plots each key
        meta[f"{p.from_}_to_{p.to}_p99_ms"] = _num(p.summary.p99)
    shown = ", ".join(f"{p.from_}->{p.to} {p.status}" for p in result[:8])
    if len(result) > 8:
        shown += f", … ({sum(p.status == 'operational' for p in result)}/{len(result)} " \
                 "operational)"
    progress.emit("pair_measurements", (shown or "no pairs declared")
                  + f" [probed {probed:.2f}s]")
    return Output(phase, metadata=meta)


@asset(group_name=WAREHOUSE, kinds={"duckdb"},
       ins={"buses": AssetIn("bus_measurements"), "engines": AssetIn("engine_measurements"),
            "pairs": AssetIn("pair_measurements")},
       description="Loads every sample of the run into DuckDB and evaluates the SLOs, in ONE "
       "transaction: a run is either stored whole with its verdicts or not at all.")
def slo_results(context: AssetExecutionContext, topology: TopologyResource,
                warehouse: WarehouseResource, slo: SloResource,
                # PhaseResult each, or one ShardedRun thrice (defs/shards.py): Any, because
                # Dagster type-checks a dataclass annotation and has no union of the two
                buses: Any, engines: Any, pairs: Any) -> MaterializeResult[None]:
    from dualbus_pipeline.defs.shards import ShardedRun
    from dualbus_pipeline.slospec.evaluate import evaluate_run
    from dualbus_pipeline.slospec.loader import load_slo_dir
    from dualbus_pipeline.store.handoff import read_tables, remove_run_folder
    from dualbus_pipeline.store.runs import mark_evaluated, store_measurements, store_tables

    cfg = topology.loaded()
    wh = warehouse.warehouse()
    run_id = context.run.run_id
    sharded = buses if isinstance(buses, ShardedRun) else None
    if sharded is not None:  # shards touch no warehouse: the run is recorded here
        begin_run_record(wh, run_id, cfg)
    with recording_failure(wh, run_id, "slo_results"):
        slos = load_slo_dir(Path(slo.slo_dir))
        tables = read_tables(sharded.manifests) if sharded is not None else None
        cpu_s = sharded.cpu_s if sharded is not None else \
            buses.cpu_s + engines.cpu_s + pairs.cpu_s
        with wh.transaction() as con:
            n_samples = (store_tables(con, run_id, tables) if tables is not None else
                         store_measurements(con, run_id, buses.results, engines.results,
                                            pairs.results))
            evaluation = evaluate_run(con, run_id, slos,
                                      baseline_runs=cfg.topology.baseline.runs,
                                      pass_score=cfg.topology.scoring.pass_score,
                                      warning_score=cfg.topology.scoring.warning_score)
            mark_evaluated(con, run_id, settings=cfg.topology.probe.model_dump(mode="json"),
                         overall=evaluation.overall, probe_cpu_s=round(cpu_s, 3))
    if sharded is not None:  # committed: the warehouse is the record now
        remove_run_folder(sharded.root, run_id)
    overall = evaluation.overall
    grade = overall.get("grade") or "— (no verdict)"
    not_judged = int(overall.get("inconclusive") or 0)
    progress.emit("slo_results", f"{n_samples} samples stored; grade {grade}, "
                  f"{overall.get('breaches')} breaches"
                  + (f", {not_judged} inconclusive" if not_judged else ""))
    return MaterializeResult(metadata={
        "samples": n_samples,
        "overall_grade": str(grade),
        "inconclusive": not_judged,
        "overall_score": _num(overall.get("score")),
        "breaches": int(overall.get("breaches") or 0),
        "result": str(overall.get("result")),
    })


@asset(group_name=WAREHOUSE, kinds={"duckdb"}, deps=["slo_results"],
       description="Trend tables: each target's indicators over runs vs the baseline (delta, "
       "regression flag) and the system trend per run.")
def trend_tables(context: AssetExecutionContext, topology: TopologyResource,
                 warehouse: WarehouseResource) -> MaterializeResult[None]:
    from dualbus_pipeline.store.trends import refresh_trends

    base = topology.loaded().topology.baseline
    wh = warehouse.warehouse()
    with recording_failure(wh, context.run.run_id, "trend_tables"), wh.transaction() as con:
        info = refresh_trends(con, context.run.run_id, baseline_runs=base.runs,
                              regression_pct=base.regression_pct)
    meta = {k: v for k, v in (info or {}).items() if isinstance(v, int | float | str)}
    progress.emit("trend_tables", ", ".join(f"{k}={v}" for k, v in meta.items()) or "refreshed")
    return MaterializeResult(metadata=meta)


def _stage_done(wh: Warehouse, cfg: LoadedConfig, run_id: str,
                stage: Literal["report", "alerts"]) -> str:
    """Record that the report or the alerts are done; when that completes the run, resolve a
    firing pipeline-failure alert and ping the heartbeat. A note for the progress line."""
    from dualbus_pipeline.alerts import run_completed
    from dualbus_pipeline.store.runs import mark_stage_done

    with wh.transaction() as con:
        completed = mark_stage_done(con, run_id, stage)
    if not completed:
        return ""
    done = run_completed(wh, cfg.topology, run_id)
    notes = ["run completed"]
    if done.resolved_failure:
        notes.append("pipeline-failure alert resolved")
    if done.heartbeat is not None:
        notes.append(f"heartbeat {done.heartbeat}")
    return "; " + ", ".join(notes)


@asset(group_name=REPORTING, kinds={"markdown", "html", "json"}, deps=["trend_tables"],
       description="The graded report of this run (Markdown, self-contained HTML, "
       "results.json), written under reports/<run_id>/ and stored in the warehouse.")
def graded_report(context: AssetExecutionContext, topology: TopologyResource,
                  warehouse: WarehouseResource, report: ReportResource) -> MaterializeResult[None]:
    from dualbus_pipeline.report.pipeline import build_and_store_report

    wh = warehouse.warehouse()
    with recording_failure(wh, context.run.run_id, "graded_report"):
        cfg = topology.loaded()
        t = cfg.topology
        out = build_and_store_report(wh, context.run.run_id, Path(report.templates_dir),
                                     baseline_runs=t.baseline.runs,
                                     regression_pct=t.baseline.regression_pct,
                                     pass_score=t.scoring.pass_score)
        note = _stage_done(wh, cfg, context.run.run_id, "report")
    progress.emit("graded_report", str(out.paths["html"]) + note)
    md = out.rendered["md"]
    return MaterializeResult(metadata={
        "report": MetadataValue.md(md if len(md) < 90_000 else md[:90_000] + "\n\n…(truncated)"),
        "report_html": MetadataValue.path(str(out.paths["html"])),
        "report_md": MetadataValue.path(str(out.paths["md"])),
        "results_json": MetadataValue.path(str(out.paths["json"])),
        "overall_grade": str(out.results["overall"]["grade"] or "— (no verdict)"),
        "availability": _num(out.results["system"]["availability"]),
        "combined_bus_throughput_msgs_per_s":
            _num(out.results["system"]["combined_bus_throughput_msgs_per_s"]),
    })


@asset(group_name=REPORTING, kinds={"python"}, deps=["slo_results"],
       description="Breach and burn-rate alerts, decided from the verdicts (a blocking check "
       "never holds them back): fire once, remind at most every remind_every, resolve when "
       "the SLO passes again; delivered through Apprise with an outbox.")
def alert_dispatch(context: AssetExecutionContext, topology: TopologyResource,
                   warehouse: WarehouseResource, slo: SloResource) -> MaterializeResult[None]:
    from dualbus_pipeline.alerts import dispatch_alerts
    from dualbus_pipeline.slospec.loader import load_slo_dir

    cfg = topology.loaded()
    wh = warehouse.warehouse()
    report_path = wh.reports_dir / context.run.run_id / "report.html"
    with recording_failure(wh, context.run.run_id, "alert_dispatch"):
        modes = {s.name: s.budget.alerts for s in load_slo_dir(Path(slo.slo_dir))
                 if s.budget is not None}
        summary = dispatch_alerts(wh, context.run.run_id, cfg.topology,
                                  report_path=str(report_path), alert_modes=modes)
        note = _stage_done(wh, cfg, context.run.run_id, "alerts")
    meta = {k: v for k, v in vars(summary).items() if isinstance(v, int | float | str)}
    progress.emit("alert_dispatch", ", ".join(f"{k} {v}" for k, v in meta.items()) + note)
    return MaterializeResult(metadata=meta)


PROBE_ASSETS = [bus_measurements, engine_measurements, pair_measurements]
ALL_ASSETS = [bus_measurements, engine_measurements, pair_measurements, slo_results,
              trend_tables, graded_report, alert_dispatch]
