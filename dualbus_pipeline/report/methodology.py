"""The report's methodology section: the probe settings a run actually used, with labels,
how many samples were stored and re-taken, and the probe's own CPU seconds."""

from __future__ import annotations

from typing import Any

from dualbus_pipeline.report.formatting import fmt_num, fmt_setting

_SETTING_LABELS: tuple[tuple[str, str, str], ...] = (
    # (key, label, unit)
    ("engine_requests", "Requests per engine", ""),
    ("engine_rate_per_s", "Engine request rate (paced, open loop)", "/s"),
    ("engine_timeout_s", "Engine request timeout", "s"),
    ("engine_concurrency", "Engines in flight (max)", ""),
    ("engine_max_send_rate_per_s", "Engine send budget (all engines in flight)", "/s"),
    ("engine_solo_requests", "Requests per engine probed alone (concurrency guard)", ""),
    ("engine_hot_requests", "Back-to-back requests per engine (hot path)", ""),
    ("bus_ping_count", "PINGs per bus", ""),
    ("bus_delivery_count", "Delivery messages per bus", ""),
    ("bus_delivery_rate_per_s", "Delivery rate (paced)", "/s"),
    ("bus_capacity_messages", "Capacity burst per bus", " messages"),
    ("bus_timeout_s", "Bus operation timeout", "s"),
    ("pair_count", "Round trips per pair", ""),
    ("pair_rate_per_s", "Round-trip rate (paced)", "/s"),
    ("pair_timeout_s", "Round-trip timeout", "s"),
    ("pair_solo_count", "Round trips per pair probed alone (concurrency guard)", ""),
    ("pair_hot_count", "Back-to-back round trips per pair (hot path)", ""),
    ("late_bound_ms", "Host delay (lateness, CPU pressure) that re-takes a sample", " ms"),
    ("retake_fraction", "Re-takes allowed (share of a schedule)", ""),
    ("guard_ratio", "Concurrency guard: p50 together ÷ alone that re-measures", "×"),
    ("guard_min_ms", "Concurrency guard: smallest slowdown that re-measures", " ms"),
    ("remeasure_budget_s", "Re-measure budget per run", "s"),
    ("min_samples", "Fewest samples for a valid summary", ""),
    ("max_rate_per_s", "Safety cap on any paced rate", "/s"),
    ("max_burst_messages", "Safety cap on a burst", " messages"),
    ("key_ttl_s", "Probe key expiry", "s"),
    ("stream_maxlen", "Probe stream MAXLEN", ""),
)


def methodology(results: dict[str, Any]) -> dict[str, Any]:
    meth = results.get("methodology") or {}
    settings = meth.get("probe_settings") or {}
    rows = []
    for key, label, unit in _SETTING_LABELS:
        if key in settings:
            rows.append({"key": key, "label": label,
                         "value": f"{fmt_setting(settings[key])}{unit}"})
    cap = settings.get("engine_capacity")
    if isinstance(cap, dict):
        text = (f"{fmt_num(cap.get('connections'))} connections for "
                f"{fmt_setting(cap.get('duration_s'))}s" if cap.get("enabled") else "off")
        rows.append({"key": "engine_capacity", "label": "Engine capacity burst", "value": text})
    known = {k for k, _, _ in _SETTING_LABELS} | {"engine_capacity"}
    for key in sorted(set(settings) - known):
        rows.append({"key": key, "label": key, "value": str(settings[key])})
    return {"settings": rows, "recorded": bool(settings),
            "sample_counts": meth.get("sample_counts") or {},
            "replaced_samples": meth.get("replaced_samples") or {},
            "probe_cpu_s": meth.get("probe_cpu_s")}
