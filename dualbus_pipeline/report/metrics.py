"""One stored run's figures in the OpenMetrics text format (Prometheus' textfile collector,
`dualbus serve-metrics`): read from results.json's shape, never measured on scrape.

Names follow the Prometheus conventions: a `dualbus_` prefix, base units in the name
(`_seconds`; latencies are converted from ms), `_ratio` for fractions. Every series carries
`platform`; targets carry `scope` and `target`; SLO series carry `slo`, `target` and
`indicator`. An SLO's value and objective are in its indicator's own unit (ms, msgs/s,
entries, ratio), as the SLO states them: the `indicator` label says which (docs/slos.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from dualbus_pipeline.slospec.model import GRADE_ORDER

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"))
# A+ = 12 … F = 0: higher is better, so a dashboard threshold reads like a grade
GRADE_NUMBER = {g: len(GRADE_ORDER) - 1 - i for i, g in enumerate(GRADE_ORDER)}

_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("dualbus_run_timestamp_seconds", "gauge", "Start of the run these figures come from."),
    ("dualbus_run_overall_score", "gauge", "The run's weighted SLO score (0-100)."),
    ("dualbus_run_overall_passed", "gauge", "1 when the run's overall result passed."),
    ("dualbus_target_latency_seconds", "gauge",
     "Paced latency percentiles per target (engine health, bus delivery, pair round trip)."),
    ("dualbus_target_success_ratio", "gauge", "Share of the target's probe requests that "
     "succeeded."),
    ("dualbus_target_up", "gauge", "1 when the target was operational in the run."),
    ("dualbus_target_hot_latency_seconds", "gauge", "Back-to-back (hot path) latency "
     "percentiles: engine health, pair round trip."),
    ("dualbus_bus_ping_latency_seconds", "gauge", "PING round-trip percentiles per bus."),
    ("dualbus_bus_throughput_messages_per_second", "gauge",
     "Messages per second the bus delivered through a consumer group."),
    ("dualbus_engine_capacity_requests_per_second", "gauge",
     "Health requests per second the engine answered back to back."),
    ("dualbus_stream_length_entries", "gauge", "Entries in an engine's stream."),
    ("dualbus_stream_lag_entries", "gauge", "Entries of the stream not yet delivered to "
     "the group."),
    ("dualbus_stream_pending_entries", "gauge", "Entries delivered to the group, not yet "
     "acknowledged."),
    ("dualbus_stream_consumers", "gauge", "Consumers in the stream's group."),
    ("dualbus_slo_value", "gauge", "The SLO's measured value, in its indicator's unit."),
    ("dualbus_slo_objective", "gauge", "The SLO's objective, in its indicator's unit."),
    ("dualbus_slo_passed", "gauge", "1 pass, 0 breach or no data (absent when not judged)."),
    ("dualbus_slo_grade", "gauge", "The grade as a number: A+ 12 ... F 0."),
    ("dualbus_slo_error_budget_remaining_ratio", "gauge",
     "Share of the error budget left over the SLO's period (negative: overspent)."),
    ("dualbus_slo_burn_rate", "gauge", "This run's burn rate (1 = on budget)."),
    ("dualbus_slo_window_burn_rate", "gauge", "Burn rate over each window of the SLO's "
     "burn-rate rules and budget, this run included (1 = on budget)."),
    ("dualbus_slo_burn_alert", "gauge", "1 for the burn-rate alert state the run was in."),
)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in kv.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v))


def openmetrics(results: dict[str, Any]) -> str:
    """The exposition of one run's results.json (report/results.py)."""
    platform = str(results.get("platform") or "")
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _FAMILIES}

    def add(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            samples[name].append(f"{name}{_labels(platform=platform, **labels)} {_num(value)}")

    started = results.get("started_at")
    if started:
        add("dualbus_run_timestamp_seconds", datetime.fromisoformat(str(started)).timestamp())
    overall = results.get("overall") or {}
    add("dualbus_run_overall_score", overall.get("score"))
    if overall.get("passed") is not None:
        add("dualbus_run_overall_passed", float(bool(overall["passed"])))
    for scope, key, figures in _targets(results):
        for name, fig in figures:
            dist = fig.get(key) or {}
            for pct, q in QUANTILES:
                if fig.get("valid", True) and dist.get(pct) is not None:
                    add("dualbus_target_latency_seconds", dist[pct] / 1000, scope=scope,
                        target=name, quantile=q)
            add("dualbus_target_success_ratio", fig.get("success_ratio"), scope=scope,
                target=name)
            add("dualbus_target_up", float(fig.get("status") == "operational"), scope=scope,
                target=name)
    _details(results, add)
    for s in results.get("slos", []):
        ids = {"slo": s["name"], "target": s["target"], "indicator": s["indicator"]}
        add("dualbus_slo_value", s.get("value"), **ids)
        add("dualbus_slo_objective", s.get("objective"), **ids)
        if s.get("passed") is not None:
            add("dualbus_slo_passed", float(bool(s["passed"])), **ids)
        if s.get("grade") in GRADE_NUMBER:
            add("dualbus_slo_grade", float(GRADE_NUMBER[s["grade"]]), **ids)
        add("dualbus_slo_error_budget_remaining_ratio", s.get("error_budget_remaining"), **ids)
        add("dualbus_slo_burn_rate", s.get("burn_rate"), **ids)
        for window, burn in (s.get("burn_windows") or {}).items():
            add("dualbus_slo_window_burn_rate", burn, **ids, window=str(window))
        if s.get("burn_state"):
            add("dualbus_slo_burn_alert", 1.0, **ids, state=str(s["burn_state"]))
    lines: list[str] = []
    for name, kind, text in _FAMILIES:
        lines += [f"# TYPE {name} {kind}", f"# HELP {name} {text}", *samples[name]]
    return "\n".join([*lines, "# EOF"]) + "\n"


def _targets(results: dict[str, Any]) -> Iterable[tuple[str, str, list[tuple[str, Any]]]]:
    yield "engine", "latency_ms", [(e["name"], e) for e in results.get("engines", [])]
    yield "bus", "delivery_ms", [(b["name"], b) for b in results.get("buses", [])]
    yield "pair", "roundtrip_ms", [(f"{p['from']}->{p['to']}", p)
                                   for p in results.get("pairs", [])]


def _quantiles(dist: dict[str, Any] | None) -> Iterable[tuple[str, float]]:
    for pct, q in QUANTILES:
        if dist and dist.get(pct) is not None:
            yield q, dist[pct] / 1000


def _details(results: dict[str, Any], add: Any) -> None:
    """The report's other figures: hot path, PING, throughput, capacity, streams."""
    for e in results.get("engines", []):
        if e.get("hot_valid"):
            for q, v in _quantiles(e.get("hot_latency_ms")):
                add("dualbus_target_hot_latency_seconds", v, scope="engine",
                    target=e["name"], quantile=q)
        add("dualbus_engine_capacity_requests_per_second", e.get("capacity_rps"),
            target=e["name"])
    for p in results.get("pairs", []):
        for q, v in _quantiles(p.get("hot_roundtrip_ms")):
            add("dualbus_target_hot_latency_seconds", v, scope="pair",
                target=f"{p['from']}->{p['to']}", quantile=q)
    for b in results.get("buses", []):
        for q, v in _quantiles(b.get("ping_ms")):
            add("dualbus_bus_ping_latency_seconds", v, target=b["name"], quantile=q)
        add("dualbus_bus_throughput_messages_per_second", b.get("throughput_msgs_per_s"),
            target=b["name"])
        for st in b.get("streams") or []:
            ids = {"bus": b["name"], "stream": str(st.get("stream")),
                   "group": str(st.get("group") or ""), "engine": str(st.get("engine") or "")}
            for key in ("length", "lag", "pending"):
                add(f"dualbus_stream_{key}_entries", st.get(key), **ids)
            add("dualbus_stream_consumers", st.get("consumers"), **ids)
