"""From what the buses showed to engines: one engine per consumer-group name.

A consumer group is how a service reads a stream, and a service reuses its group name on
every stream it reads, so each group name becomes one engine reading every (bus, stream) that
has a group of that name. Its name comes, in this order, from:

1. the group name less a conventional suffix (``-group``, ``_group``, ``-consumers``,
   ``-cg``…): **sure** when the consumers' names start the same way (``matcher-1``,
   ``matcher-2``), else **likely**;
2. the consumers' common prefix, when the group name says nothing (``workers``): **check**;
3. the stream name less conventional affixes (``.in``, ``-streams``…): **check**.

Names are normalised to ``[a-z0-9_]+`` and made unique (``_2``…). The engine's own stream
(where pair round trips reach it) is the one whose name contains the engine's name, else the
first on the first bus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dualbus_pipeline.discover.scan import CONSUMER_NAMES_KEPT, BusScan, GroupSeen, StreamSeen

GROUP_SUFFIXES = ("-consumer-group", "_consumer_group", "-consumers", "_consumers",
                  ".consumers", "-group", "_group", ".group", ":group", "-grp", "_grp",
                  "-cg", "_cg", ".cg", ":cg")
STREAM_AFFIXES = re.compile(r"([-_.:](in|input|inbox|stream|streams|events|queue|requests|"
                            r"commands|cmd))+$")
GENERIC = {"", "group", "consumers", "consumer", "cg", "grp", "default", "workers", "worker",
           "main", "readers", "reader", "g", "stream", "streams"}
MAX_NAME = 64


@dataclass(frozen=True)
class Consumed:
    bus: str
    stream: str
    group: GroupSeen


@dataclass(frozen=True)
class InferredEngine:
    name: str
    group: str
    reads: tuple[Consumed, ...]  # its own stream first
    how: str                      # where the name came from
    sureness: str                 # sure | likely | check

    @property
    def own(self) -> Consumed:
        return self.reads[0]

    @property
    def buses(self) -> list[str]:
        return list(dict.fromkeys(r.bus for r in self.reads))


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:MAX_NAME].strip("_")


def strip_group_suffix(group: str) -> str:
    low = group.lower()
    for suffix in GROUP_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return group[:-len(suffix)]
    return group


def _common_prefix(texts: tuple[str, ...]) -> str:
    first, last = min(texts), max(texts)  # the prefix of these two is everyone's
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def consumer_stem(consumers: tuple[str, ...]) -> str:
    """What the consumers' names share (``risk-1``, ``risk-2`` → ``risk``); '' if nothing."""
    if not consumers:
        return ""
    stem = _common_prefix(consumers)
    if len(consumers) == 1:  # drop an instance suffix: risk-7f9c2 → risk
        stem = re.sub(r"[-_.:][^-_.:]*\d[^-_.:]*$", "", stem)
    return normalise(re.sub(r"[-_.:0-9]+$", "", stem))


def stream_stem(stream: str) -> str:
    return normalise(STREAM_AFFIXES.sub("", stream.lower()))


def _consumers_text(g: GroupSeen) -> str:
    if not g.consumer_count:
        return "no consumers"
    names = ", ".join(g.consumers)
    more = f", … {g.consumer_count - len(g.consumers)} more" \
        if g.consumer_count > len(g.consumers) else ""
    return f"{g.consumer_count} consumer{'s' if g.consumer_count != 1 else ''}: {names}{more}"


def name_for(group: str, reads: list[Consumed]) -> tuple[str, str, str]:
    """(engine name, how it was inferred, sureness) for one group name."""
    consumers = tuple(sorted({c for r in reads for c in r.group.consumers}))
    count = max(len(consumers), *(r.group.consumer_count for r in reads))
    said = _consumers_text(GroupSeen(group, consumers[:CONSUMER_NAMES_KEPT], count, 0))
    base = normalise(strip_group_suffix(group))
    stem = consumer_stem(consumers)
    if base not in GENERIC:
        if stem and (stem == base or stem.startswith(base + "_") or base.startswith(stem + "_")):
            return base, f"inferred from group {group!r} ({said})", "sure"
        why = "" if not consumers else "; the consumers are named otherwise"
        return base, f"inferred from group {group!r} ({said}{why})", "likely"
    if stem and stem not in GENERIC:
        return stem, (f"inferred from the consumers' names ({said}); group {group!r} names "
                      "no service"), "check"
    guess = stream_stem(reads[0].stream) or "engine"
    return guess, (f"guessed from stream name {reads[0].stream!r} only (group {group!r}, "
                   f"{said})"), "check"


def infer_engines(scans: list[BusScan]) -> list[InferredEngine]:
    """One engine per consumer-group name, sorted by engine name (module docstring)."""
    by_group: dict[str, list[Consumed]] = {}
    for scan in scans:
        for s in scan.streams:
            for g in s.groups:
                by_group.setdefault(g.name, []).append(Consumed(scan.target.name, s.name, g))
    taken: set[str] = set()
    out: list[InferredEngine] = []
    for group in sorted(by_group):
        reads = by_group[group]
        name, how, sureness = name_for(group, reads)
        unique, n = name, 2
        while unique in taken:
            unique = f"{name[:MAX_NAME - 4]}_{n}"
            n += 1
        if unique != name:
            how += f"; renamed {unique!r}: {name!r} was taken"
            sureness = "check"
        taken.add(unique)
        mine = [r for r in reads if name in normalise(r.stream)]
        own = mine[0] if mine else reads[0]
        ordered = (own, *(r for r in reads if r is not own))
        out.append(InferredEngine(name=unique, group=group, reads=ordered, how=how,
                                  sureness=sureness))
    return sorted(out, key=lambda e: e.name)


def unconsumed(scans: list[BusScan]) -> list[tuple[str, StreamSeen]]:
    """(bus, stream) for every stream no consumer group reads."""
    return [(scan.target.name, s) for scan in scans for s in scan.streams if not s.groups]
