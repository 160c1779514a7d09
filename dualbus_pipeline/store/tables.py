"""A run's measurements as Arrow tables, one per warehouse table they load into.

Pure Arrow (no DuckDB): the same tables are loaded straight into the warehouse by an
unsharded run (runs.store_measurements) and written as Parquet by each shard of a sharded run,
then read back and loaded by the one writer (handoff.py). Every sample and target row carries
the ``vantage`` it was measured from.
"""

from __future__ import annotations

import json
import socket
from array import array
from collections.abc import Iterable
from itertools import chain
from typing import Any

import pyarrow as pa

from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
    SampleBatch,
    Summary,
)

SAMPLE_TABLES = ("engine_samples", "bus_samples", "pair_samples")
MEASUREMENT_TABLES = (*SAMPLE_TABLES, "targets", "summaries", "bus_info", "stream_stats")


def default_vantage() -> str:
    """Where this process probes from when no vantage is configured: its host name."""
    return socket.gethostname() or "localhost"


_DICT = pa.dictionary(pa.int32(), pa.string())
# The sample columns handed over from Python; the rest DuckDB derives while inserting (the
# same IEEE double as ``SampleBatch.latency_ms``: the int64 difference divided by 1e6).
# Arrow's compute module could do it too, but importing it costs ~0.13 s of every run.
_SAMPLE_ARROW_SCHEMA = pa.schema([
    ("run_id", _DICT), ("target", _DICT), ("kind", _DICT), ("seq", pa.int32()),
    ("intended_ns", pa.int64()), ("start_ns", pa.int64()), ("sent_ns", pa.int64()),
    ("done_ns", pa.int64()), ("ok", pa.int8()), ("status", pa.int32()), ("error", pa.string()),
    ("replaced", pa.int8()), ("stall_us", pa.int64()), ("vantage", _DICT)])
SAMPLE_DERIVED = {"latency_ms": "(done_ns - start_ns) / 1e6",
                   "service_ms": "(done_ns - sent_ns) / 1e6",
                   "ok": "ok <> 0",
                   "replaced": "replaced <> 0",
                   "stall_us": "nullif(stall_us, -1)"}


_ARROW_TYPE_OF = {"q": pa.int64(), "i": pa.int32(), "b": pa.int8()}


def _joined(arrays: Iterable[array[int]], typecode: str) -> pa.Array:
    """Typed arrays of one column, concatenated as bytes and handed to Arrow as one buffer:
    no Python object per value (``SampleBatch`` keeps its numeric columns as typed arrays)."""
    data = b"".join(arrays)
    width = array(typecode).itemsize
    return pa.Array.from_buffers(_ARROW_TYPE_OF[typecode], len(data) // width,
                                 [None, pa.py_buffer(data)])


def _sample_table(run_id: str, batches: Iterable[SampleBatch], vantage: str) -> pa.Table:
    """All samples of some batches as one Arrow table, built column by column: the numeric
    columns are the batches' typed arrays joined (memory copies), latency, service time and
    the ok flag are left for the INSERT to derive (``_SAMPLE_DERIVED``), and the repeated
    strings are dictionary-encoded. 1M samples: see docs/benchmarks.md ("Warehouse")."""
    bs = [b for b in batches if len(b)]
    if not bs:
        return _SAMPLE_ARROW_SCHEMA.empty_table()

    def repeated(values: list[str]) -> pa.Array:
        # Dictionary-encoded, codes made by Arrow (pa.repeat): no per-row Python objects.
        labels = list(dict.fromkeys(values))
        index = {v: k for k, v in enumerate(labels)}
        codes = pa.concat_arrays([pa.repeat(pa.scalar(index[v], pa.int32()), len(b))
                                  for v, b in zip(values, bs, strict=True)])
        return pa.DictionaryArray.from_arrays(codes, pa.array(labels, pa.string()))

    def sequence() -> pa.Array:
        ranges: dict[int, array[int]] = {}  # batches mostly share one length
        for b in bs:
            if len(b) not in ranges:
                ranges[len(b)] = array("i", range(len(b)))
        return _joined((ranges[len(b)] for b in bs), "i")

    def errors() -> pa.Array:
        if all(b.error.count(None) == len(b.error) for b in bs):
            return pa.nulls(sum(len(b) for b in bs), pa.string())
        return pa.array(list(chain.from_iterable(b.error for b in bs)), pa.string())

    cols = [
        repeated([run_id] * len(bs)),
        repeated([b.target for b in bs]),
        repeated([b.kind for b in bs]),
        sequence(),
        _joined((b.intended_ns for b in bs), "q"),
        _joined((b.start_ns for b in bs), "q"),
        _joined((b.sent_ns for b in bs), "q"),
        _joined((b.done_ns for b in bs), "q"),
        _joined((b.ok for b in bs), "b"),
        _joined((b.status for b in bs), "i"),
        errors(),
        _joined((b.replaced for b in bs), "b"),
        _joined((b.stall_us for b in bs), "q"),
        repeated([vantage] * len(bs)),
    ]
    return pa.Table.from_arrays(cols, schema=_SAMPLE_ARROW_SCHEMA)


def _summary_row(run_id: str, scope: str, target: str, metric: str,
                 s: Summary) -> dict[str, Any]:
    return {"run_id": run_id, "scope": scope, "target": target, "metric": metric,
            "count": s.count, "ok": s.ok, "success_ratio": s.success_ratio, "mean": s.mean,
            "p50": s.p50, "p90": s.p90, "p99": s.p99, "p999": s.p999, "max": s.max,
            "min": s.min, "service_p50": s.service_p50, "service_p99": s.service_p99,
            "intended_rate_per_s": s.intended_rate_per_s,
            "achieved_rate_per_s": s.achieved_rate_per_s,
            "lateness_p99_ms": s.lateness_p99_ms, "valid": s.valid,
            "invalid_reason": s.invalid_reason, "replaced": s.replaced,
            "inconclusive": s.inconclusive, "solo_p50": s.solo_p50, "note": s.note}


def measurement_tables(run_id: str, buses: list[BusResult], engines: list[EngineResult],
                       pairs: list[PairResult], vantage: str) -> dict[str, pa.Table]:
    """One run's (or one shard's) measurements as Arrow tables named after the warehouse
    tables they load into, every sample and target tagged with ``vantage``; empty tables
    are left out."""
    tables = {
        "engine_samples": _sample_table(
            run_id, chain((e.samples for e in engines),
                          (e.hot_samples for e in engines if e.hot_samples is not None)),
            vantage),
        "bus_samples": _sample_table(run_id, (s for b in buses for s in b.samples), vantage),
        "pair_samples": _sample_table(
            run_id, chain((p.samples for p in pairs),
                          (p.hot_samples for p in pairs if p.hot_samples is not None)),
            vantage),
    }

    targets: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    for e in engines:
        targets.append({"run_id": run_id, "scope": "engine", "target": e.name, "title": e.title,
                        "status": e.status, "status_reason": e.status_reason,
                        "throughput": e.capacity_rps, "capacity_messages": None,
                        "detail": json.dumps({"url": e.url, "body_statuses": e.body_statuses}),
                        "vantage": vantage})
        summaries.append(_summary_row(run_id, "engine", e.name, "latency", e.summary))
        if e.hot is not None:
            summaries.append(_summary_row(run_id, "engine", e.name, "hot", e.hot))
    for b in buses:
        targets.append({"run_id": run_id, "scope": "bus", "target": b.name, "title": b.title,
                        "status": b.status, "status_reason": b.status_reason,
                        "throughput": b.throughput_msgs_per_s,
                        "capacity_messages": b.capacity_messages,
                        "detail": json.dumps({"url": b.url, "error": b.error}),
                        "vantage": vantage})
        summaries.append(_summary_row(run_id, "bus", b.name, "ping", b.ping))
        summaries.append(_summary_row(run_id, "bus", b.name, "delivery", b.delivery))
    for p in pairs:
        key = f"{p.from_}->{p.to}"
        targets.append({"run_id": run_id, "scope": "pair", "target": key, "title": key,
                        "status": p.status, "status_reason": p.status_reason,
                        "throughput": None, "capacity_messages": None,
                        "detail": json.dumps({"from": p.from_, "to": p.to, "bus": p.bus}),
                        "vantage": vantage})
        summaries.append(_summary_row(run_id, "pair", key, "roundtrip", p.summary))
        if p.hot is not None:
            summaries.append(_summary_row(run_id, "pair", key, "hot", p.hot))
    tables["targets"] = pa.Table.from_pylist(targets, schema=_TARGETS_SCHEMA)
    tables["summaries"] = pa.Table.from_pylist(summaries, schema=_SUMMARIES_SCHEMA)
    info_rows = [{"run_id": run_id, "bus": b.name, "metric": k, "value": float(v)}
                 for b in buses for k, v in sorted(b.info.items())]
    tables["bus_info"] = pa.Table.from_pylist(info_rows, schema=_INFO_SCHEMA)
    stream_rows = [{"run_id": run_id, "bus": b.name, "engine": s.engine, "stream": s.stream,
                    "grp": s.group, "present": s.exists, "length": s.length, "lag": s.lag,
                    "pending": s.pending, "consumers": s.consumers, "error": s.error,
                    "lag_ms": s.lag_ms, "pending_age_ms": s.pending_age_ms,
                    "idle_ms": s.idle_ms, "consumed": s.consumed, "status": s.status,
                    "status_reason": s.status_reason}
                   for b in buses for s in b.streams]
    tables["stream_stats"] = pa.Table.from_pylist(stream_rows, schema=_STREAMS_SCHEMA)
    return {name: t for name, t in tables.items() if t.num_rows}


_F = pa.float64()
_TARGETS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("scope", pa.string()), ("target", pa.string()),
    ("title", pa.string()), ("status", pa.string()), ("status_reason", pa.string()),
    ("throughput", _F), ("capacity_messages", pa.int32()), ("detail", pa.string()),
    ("vantage", pa.string())])
_SUMMARIES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("scope", pa.string()), ("target", pa.string()),
    ("metric", pa.string()), ("count", pa.int32()), ("ok", pa.int32()),
    ("success_ratio", _F), ("mean", _F), ("p50", _F), ("p90", _F), ("p99", _F), ("p999", _F),
    ("max", _F), ("min", _F), ("service_p50", _F), ("service_p99", _F),
    ("intended_rate_per_s", _F), ("achieved_rate_per_s", _F), ("lateness_p99_ms", _F),
    ("valid", pa.bool_()), ("invalid_reason", pa.string()), ("replaced", pa.int32()),
    ("inconclusive", pa.bool_()), ("solo_p50", _F), ("note", pa.string())])
_INFO_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("bus", pa.string()), ("metric", pa.string()),
    ("value", pa.float64())])
_STREAMS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("bus", pa.string()), ("engine", pa.string()),
    ("stream", pa.string()), ("grp", pa.string()), ("present", pa.bool_()),
    ("length", pa.int64()), ("lag", pa.int64()), ("pending", pa.int64()),
    ("consumers", pa.int32()), ("error", pa.string()), ("lag_ms", pa.float64()),
    ("pending_age_ms", pa.float64()), ("idle_ms", pa.float64()), ("consumed", pa.float64()),
    ("status", pa.string()), ("status_reason", pa.string())])
