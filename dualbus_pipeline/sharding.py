"""Sharded probing: which shard measures which target, and from where (docs/deploy.md).

Owns the `vantages:` section of dualbus.yaml, the checks that tie targets to vantages, and the
plan that splits a topology into shards. Pure: no network, no Dagster, no storage; the
Dagster wiring (defs/shards.py) turns each planned shard into one step.

Two ways to shard:

* ``probe.shards: K`` — the targets are dealt round-robin (engines, buses and pairs each in
  declaration order) into K shards named ``shard_0`` … ``shard_K-1``; a shard's vantage is the
  host name of the worker that ran it.
* ``vantages:`` declared and targets tagged ``vantage: <name>`` — one shard per vantage, named
  after it, carrying that name as its vantage (e.g. one per data centre, each routed to the
  Celery queue its workers there listen on). An engine or bus without a vantage goes to the
  first declared one; a pair without one goes with its ``from`` engine.

A pair needs both engines' streams and a bus probe reads every engine stream on its bus, so a
shard probes its own targets on a topology that still knows every engine
(`phase_topologies`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field

from dualbus_pipeline.settings import Name, _Model

if TYPE_CHECKING:
    from dualbus_pipeline.config import Topology


class Vantage(_Model):
    """A named place the probes run from (a data centre, a region, a rack)."""

    name: Name
    title: str = ""
    # the Celery queue whose workers run this vantage's shard (default: Dagster's "dagster")
    queue: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Shard:
    """One shard of a run: its targets (names; pairs as ``from->to``) and where it runs."""

    index: int
    name: str
    vantage: str | None   # the configured vantage; None: the worker's host name
    queue: str | None
    buses: tuple[str, ...]
    engines: tuple[str, ...]
    pairs: tuple[str, ...]

    @property
    def targets(self) -> int:
        return len(self.buses) + len(self.engines) + len(self.pairs)


def is_sharded(topology: Topology) -> bool:
    """Whether a run probes in shards (else one probe step per phase, as ever)."""
    return topology.probe.shards > 1 or bool(topology.vantages)


def vantage_problems(t: Topology) -> list[str]:
    """One line per problem: unknown or duplicate vantages, vantages beside probe.shards,
    credentials in the hand-off URL."""
    problems: list[str] = []
    names = [v.name for v in t.vantages]
    declared = set(names)
    for i, n in enumerate(names):
        if n in names[:i]:
            problems.append(f"vantages[{i}].name: duplicate name {n!r} (names must be unique)")
    shown = ", ".join(names) or "none; declare them under vantages:"
    tagged: list[tuple[str, list[str | None]]] = [
        ("buses", [b.vantage for b in t.buses]), ("engines", [e.vantage for e in t.engines]),
        ("pairs", [p.vantage for p in t.pairs])]
    for section, items in tagged:
        for i, vantage in enumerate(items):
            if vantage is not None and vantage not in declared:
                problems.append(f"{section}[{i}].vantage: unknown vantage {vantage!r} "
                                f"(declared vantages: {shown})")
    if t.vantages and t.probe.shards > 1:
        problems.append(f"probe.shards: {t.probe.shards} shards cannot be combined with "
                        "vantages: (each vantage is one shard); remove one of the two")
    handoff = t.probe.handoff
    if handoff and "://" in handoff and urlsplit(handoff).password is not None:
        problems.append("probe.handoff: the URL holds a password; credentials come from the "
                        "environment (e.g. AWS_ACCESS_KEY_ID), never from dualbus.yaml")
    return problems


def plan_shards(t: Topology) -> list[Shard]:
    """The shards of a run, in order; every target in exactly one of them."""
    if t.vantages:
        first = t.vantages[0].name
        owner = {e.name: e.vantage or first for e in t.engines}
        groups: dict[str, tuple[list[str], list[str], list[str]]] = {
            v.name: ([], [], []) for v in t.vantages}
        for b in t.buses:
            groups[b.vantage or first][0].append(b.name)
        for e in t.engines:
            groups[owner[e.name]][1].append(e.name)
        for p in t.pairs:
            groups[p.vantage or owner.get(p.from_, first)][2].append(p.key)
        return [Shard(i, v.name, v.name, v.queue, *map(tuple, groups[v.name]))
                for i, v in enumerate(t.vantages)]
    k = t.probe.shards
    return [Shard(i, f"shard_{i}", None, None,
                  tuple(b.name for b in t.buses[i::k]),
                  tuple(e.name for e in t.engines[i::k]),
                  tuple(p.key for p in t.pairs[i::k]))
            for i in range(k)]


def phase_topologies(t: Topology, shard: Shard) -> dict[str, Topology]:
    """The topology each probe phase of ``shard`` runs on: only the shard's buses, engines or
    pairs, every engine and bus still known (bus consumer health reads every engine stream on
    the bus; a pair round trip goes through its engines' bus)."""
    buses = [b for b in t.buses if b.name in shard.buses]
    engines = [e for e in t.engines if e.name in shard.engines]
    pairs = [p for p in t.pairs if p.key in shard.pairs]
    # model_copy skips validation on purpose: the whole topology was validated, and a
    # shard's part may legitimately hold no bus
    return {"buses": t.model_copy(update={"buses": buses, "pairs": []}),
            "engines": t.model_copy(update={"engines": engines, "pairs": []}),
            "pairs": t.model_copy(update={"pairs": pairs})}
