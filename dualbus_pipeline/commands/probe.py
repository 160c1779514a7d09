"""`dualbus probe [--only buses|engines|pairs] [--json]`: run the probes, print, store nothing.

The tool an engineer points at one platform to debug a target: it never opens the warehouse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from dataclasses import asdict
from typing import Any

from dualbus_pipeline.config import Topology, load_config
from dualbus_pipeline.errors import InputError
from dualbus_pipeline.probes.model import BusResult, EngineResult, PairResult, Summary

KINDS = ("buses", "engines", "pairs")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("probe", parents=[common], help="run the probes and print the results",
                       description="Probe buses, engines and pairs of the topology and print "
                       "a table (or JSON summaries). Writes nothing to the warehouse; probe "
                       "keys on the buses are deleted afterwards.")
    p.add_argument("--only", choices=KINDS, default=None, help="probe only this kind of target")
    p.add_argument("--json", action="store_true", help="print JSON summaries instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.only is not None and args.only not in KINDS:
        raise InputError(f"--only: must be one of {', '.join(KINDS)} (got {args.only!r})")
    topo = cfg.topology
    run_id = f"probe-{uuid.uuid4().hex[:12]}"
    buses, engines, pairs = asyncio.run(_probe(topo, run_id, args.only))
    if args.json:
        print(json.dumps(to_json(run_id, topo.platform, buses, engines, pairs), indent=2))
    else:
        print(render_table(buses, engines, pairs))
    return 0


async def _probe(topo: Topology, run_id: str, only: str | None
                 ) -> tuple[list[BusResult], list[EngineResult], list[PairResult]]:
    from dualbus_pipeline.probes.runner import probe_buses, probe_engines, probe_pairs

    buses = await probe_buses(topo, run_id) if only in (None, "buses") else []
    engines = await probe_engines(topo) if only in (None, "engines") else []
    pairs = await probe_pairs(topo, run_id) if only in (None, "pairs") else []
    return buses, engines, pairs


def _summary(s: Summary) -> dict[str, Any]:
    return asdict(s)


def to_json(run_id: str, platform: str, buses: list[BusResult], engines: list[EngineResult],
            pairs: list[PairResult]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "platform": platform,
        "buses": [{"name": b.name, "url": b.url, "status": b.status,
                   "status_reason": b.status_reason, "ping_ms": _summary(b.ping),
                   "delivery_ms": _summary(b.delivery),
                   "throughput_msgs_per_s": b.throughput_msgs_per_s,
                   "capacity_messages": b.capacity_messages, "info": b.info,
                   "streams": [asdict(s) for s in b.streams], "error": b.error}
                  for b in buses],
        "engines": [{"name": e.name, "url": e.url, "status": e.status,
                     "status_reason": e.status_reason, "latency_ms": _summary(e.summary),
                     "hot_latency_ms": _summary(e.hot) if e.hot is not None else None,
                     "success_ratio": e.summary.success_ratio, "capacity_rps": e.capacity_rps,
                     "body_statuses": e.body_statuses} for e in engines],
        "pairs": [{"from": p.from_, "to": p.to, "bus": p.bus, "status": p.status,
                   "status_reason": p.status_reason, "roundtrip_ms": _summary(p.summary),
                   "hot_roundtrip_ms": _summary(p.hot) if p.hot is not None else None,
                   "success_ratio": p.summary.success_ratio} for p in pairs],
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _valid(s: Summary) -> str:
    return "" if s.valid else f"  [invalid: {s.invalid_reason}]"


def render_table(buses: list[BusResult], engines: list[EngineResult],
                 pairs: list[PairResult]) -> str:
    lines: list[str] = []
    if buses:
        lines.append(f"{'BUS':<16} {'STATUS':<12} {'PING p50':>9} {'p99':>8} "
                     f"{'DELIV p50':>9} {'p99':>8} {'OK%':>6} {'MSGS/S':>10}")
        for b in buses:
            tp = "-" if b.throughput_msgs_per_s is None else f"{b.throughput_msgs_per_s:,.0f}"
            lines.append(f"{b.name:<16} {b.status:<12} {_ms(b.ping.p50):>9} {_ms(b.ping.p99):>8} "
                         f"{_ms(b.delivery.p50):>9} {_ms(b.delivery.p99):>8} "
                         f"{b.delivery.success_ratio:>6.1%} {tp:>10}{_valid(b.delivery)}")
            if b.status != "operational":
                lines.append(f"  {b.status_reason}")
            for st in b.streams:
                if st.error:
                    lines.append(f"  stream {st.stream} ({st.engine}): {st.error}")
                else:
                    lines.append(f"  stream {st.stream} ({st.engine}): length {st.length}, "
                                 f"lag {st.lag}, pending {st.pending}, consumers {st.consumers}")
        lines.append("")
    if engines:
        lines.append(f"{'ENGINE':<16} {'STATUS':<12} {'p50':>8} {'p90':>8} {'p99':>8} "
                     f"{'max':>8} {'hot p50':>8} {'OK%':>6}  REASON")
        for e in engines:
            s = e.summary
            hot = e.hot.p50 if e.hot is not None else None
            lines.append(f"{e.name:<16} {e.status:<12} {_ms(s.p50):>8} {_ms(s.p90):>8} "
                         f"{_ms(s.p99):>8} {_ms(s.max):>8} {_ms(hot):>8} "
                         f"{s.success_ratio:>6.1%}  {e.status_reason}{_valid(s)}"
                         + (f"  [{s.note}]" if s.note else ""))
        lines.append("")
    if pairs:
        lines.append(f"{'PAIR':<24} {'STATUS':<12} {'p50':>8} {'p90':>8} {'p99':>8} "
                     f"{'hot p50':>8} {'OK%':>6}  REASON")
        for p in pairs:
            s = p.summary
            hot = p.hot.p50 if p.hot is not None else None
            lines.append(f"{p.from_ + ' -> ' + p.to:<24} {p.status:<12} {_ms(s.p50):>8} "
                         f"{_ms(s.p90):>8} {_ms(s.p99):>8} {_ms(hot):>8} "
                         f"{s.success_ratio:>6.1%}  {p.status_reason}"
                         f"{_valid(s)}")
        lines.append("")
    lines.append("latencies in ms, paced (from when the probe was ready to send) and hot (back "
                 "to back); nothing was stored")
    return "\n".join(lines)
