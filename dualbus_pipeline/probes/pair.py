"""Pair probe (product.md §4.3): probe → engine A's stream → engine B's stream → probe.

Protocol: XADD to A's stream ``message_type=dualbus.probe, correlation_id, sent_ns,
forward_to=<B's stream>, reply_to=dualbus:probe:<run>:reply:<from>-<to>``. A forwards the
fields minus ``forward_to`` to B's stream; B XADDs ``{correlation_id, sent_ns, replied_by}``
to ``reply_to``. Round trips are paced (open loop, ``pair_rate_per_s``, paced.py says what
each is charged from). A round trip counts only when its reply carries our correlation id,
comes from B (``replied_by``), exactly once, within ``pair_timeout_s`` of its own send;
otherwise it is a failed sample that says why (`judge_reply`): late, duplicate,
short-circuited (A answered itself), a reply from the wrong engine; with no reply at all,
what the engines' groups show once the window is over (pair_evidence.py): no probe protocol
on B, A did not forward, else timeout. Replies with a correlation id this probe never sent
are counted in the status reason, which counts each error.

The pair runs on engine A's bus. The only writes outside ``dualbus:probe:`` are the protocol
messages on A's stream (no MAXLEN there: a probe never trims a production stream; NOMKSTREAM:
it never creates a stream the engine does not have). The reply stream is created by the probe
with an EXPIRE (engines' XADDs keep it). At the end it is deleted when every round trip came
back; when replies are still outstanding it is left to expire instead, because a late reply
XADDed to a deleted key would recreate it *without* a TTL. A reply later than the TTL itself
does recreate such a key; every pair probe first sweeps those orphans (reply streams with no
TTL: ours always have one) in a bounded SCAN.

**Hot path**: pair_hot.py.

Status: ``failed`` when fewer than half of the round trips came back, ``degraded`` below
99 %, ``operational`` otherwise.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dualbus_pipeline.config import Engine, Pair, ProbeSettings, Topology
from dualbus_pipeline.probes.bus import PROBE_PREFIX, Link, only_probe_keys
from dualbus_pipeline.probes.host import UNKNOWN, cpu_pressure
from dualbus_pipeline.probes.model import (
    OPERATIONAL_SUCCESS,
    PairResult,
    PairStatus,
    SampleBatch,
)
from dualbus_pipeline.probes.paced import Listener, Sends, paced_sends, retaken
from dualbus_pipeline.probes.pair_evidence import explain_timeouts
from dualbus_pipeline.probes.resp import RespConnection, RespError, connect_error_text, pack
from dualbus_pipeline.probes.retake import HostWatch
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.probes.timing import in_thread, now_ns

PROBE_TYPE = "dualbus.probe"
FAILED_BELOW = 0.5
ORPHAN_PATTERN = f"{PROBE_PREFIX}*:reply:*"
SWEEP_MAX_CALLS = 50       # SCAN COUNT 1000 calls per sweep: bounded work on a big keyspace
SWEEP_BUDGET_S = 0.25


def reply_key(run_id: str, pair: Pair, series: str = "") -> str:
    """The reply stream of one series of round trips (each series has its own, so replies
    of an earlier series are never read as someone else's)."""
    return f"{PROBE_PREFIX}{run_id}:reply:{pair.from_}-{pair.to}" + (f":{series}" if series
                                                                      else "")


async def probe_pair(pair: Pair, topology: Topology, settings: ProbeSettings, run_id: str,
                     *, count: int | None = None, start_at_ns: int | None = None,
                     series: str = "") -> PairResult:
    """Measure round trips for one pair; failures are samples, never exceptions."""
    return await in_thread(lambda: probe_pair_blocking(pair, topology, settings, run_id,
                                                       count=count, start_at_ns=start_at_ns,
                                                       series=series),
                           name=f"dualbus-pair-{pair.from_}-{pair.to}")


@dataclass(frozen=True)
class Reply:
    at_ns: int
    replied_by: str
    psi: int = UNKNOWN  # host CPU pressure when it was read (host.py)


@dataclass
class _Replies:
    """What came back on the reply stream, by correlation id."""

    first: dict[str, Reply] = field(default_factory=dict)
    duplicates: Counter[str] = field(default_factory=Counter)
    foreign: int = 0  # replies whose correlation id we never sent


def judge_reply(reply: Reply | None, duplicates: int, start_ns: int, timeout_ns: int,
                a: str, b: str) -> str | None:
    """Why a round trip failed, or None when it counts: the reply came from B, exactly once,
    within the timeout of its own send (product.md §4.4)."""
    if reply is None:
        return "timeout"
    if reply.replied_by != b:
        if reply.replied_by == a:
            return f"short-circuited: {a} replied itself instead of forwarding to {b}"
        return f"reply from the wrong engine: {reply.replied_by or 'nobody'!r}, not {b}"
    if duplicates:
        return f"duplicate reply ({duplicates + 1} replies)"
    if reply.at_ns - start_ns > timeout_ns:
        return f"late reply: {(reply.at_ns - start_ns) / 1e6:.0f} ms > timeout " \
               f"{timeout_ns / 1e9:g} s"
    return None


@dataclass
class _PairRun:
    """One pair's round trips in progress: what the sender and the reply reader share."""

    a: Engine
    b: Engine
    url: str
    key: str
    settings: ProbeSettings
    link: Link
    got: _Replies = field(default_factory=_Replies)
    cids: dict[int, str] = field(default_factory=dict)  # sample number -> correlation id
    entry_ids: dict[str, bytes] = field(default_factory=dict)  # cid -> entry on A's stream

    def outstanding(self) -> bool:
        return any(c not in self.got.first for c in self.cids.values())


def probe_pair_blocking(pair: Pair, topology: Topology, settings: ProbeSettings, run_id: str,
                        *, count: int | None = None, start_at_ns: int | None = None,
                        series: str = "") -> PairResult:
    """``count`` round trips (default ``pair_count``), the first due at ``start_at_ns``
    (default: 5 ms from now); pairs measured together get starts on distinct phases of one
    grid, so they never send at the same instant (runner.py); ``series``
    names the reply stream of a window alone or a re-measure."""
    a, b = topology.engine(pair.from_), topology.engine(pair.to)
    bus = topology.bus(a.bus)
    n = count or settings.pair_count
    run = _PairRun(a, b, bus.url, reply_key(run_id, pair, series), settings,
                   Link(bus.url, settings.pair_timeout_s))
    batch = SampleBatch(target=pair.key, kind="pair_roundtrip")
    still = 0
    try:
        setup_error = _setup(run)
        if setup_error is None:
            got, still = _round_trips(run, n, start_at_ns)
            batch.extend(got)
    finally:
        run.link.close()
    outstanding = setup_error is None and run.outstanding()
    cleanup_error = None if outstanding else delete_key(bus.url, settings.pair_timeout_s, run.key)
    if setup_error is not None:
        t = now_ns()
        for _ in range(n):
            batch.add(t, t, t, False, 0, f"not attempted: {setup_error}")
    summary = summarize(batch, settings.pair_rate_per_s, settings.min_samples,
                        settings.late_bound_ms, still)
    status, reason = classify_pair(summary.success_ratio, summary.count, summary.ok,
                                   setup_error, batch)
    if run.got.foreign:
        reason += f"; {run.got.foreign} reply(ies) with a correlation id this probe never sent"
    if cleanup_error:
        reason += f"; cleanup: {cleanup_error} (reply stream expires after {settings.key_ttl_s}s)"
    elif outstanding:
        reason += (f"; reply stream left to expire in {settings.key_ttl_s}s so that late "
                   "replies cannot recreate it without a TTL")
    return PairResult(from_=pair.from_, to=pair.to, bus=bus.name, status=status,
                      status_reason=reason, summary=summary, samples=batch)


def xadd_probe(conn: RespConnection, a: Engine, b: Engine, cid: str, sent_ns: int,
               reply_to: str) -> bytes | None:
    """XADD one protocol message to A's stream (never creating it); its entry id, or None
    when the stream does not exist. Connection errors raise."""
    entry: bytes | None = conn.call_packed(pack(
        "XADD", a.stream, "NOMKSTREAM", "*", "message_type", PROBE_TYPE, "correlation_id", cid,
        "sent_ns", sent_ns, "forward_to", b.stream, "reply_to", reply_to))
    return entry


def send_probe(conn: RespConnection, a: Engine, b: Engine, cid: str, sent_ns: int,
               reply_to: str) -> str | None:
    """`xadd_probe`; why it was not sent, or None."""
    if xadd_probe(conn, a, b, cid, sent_ns, reply_to) is None:
        return f"stream {a.stream!r} does not exist (not created)"
    return None


def reply_entries(reply: Any) -> Iterator[tuple[bytes, str | None, str]]:
    """(entry id, correlation id or None for the init entry, replied_by) of an XREAD reply
    on one stream."""
    for entry_id, fields in (reply[0][1] if reply else []):
        f = dict(zip(fields[::2], fields[1::2], strict=False))
        raw = f.get(b"correlation_id")
        yield (entry_id, None if raw is None else raw.decode(errors="replace"),
               f.get(b"replied_by", b"").decode(errors="replace"))


def create_reply_stream(conn: RespConnection, key: str, settings: ProbeSettings) -> None:
    """Create a reply stream with its MAXLEN and TTL in one MULTI/EXEC, before any engine
    writes to it, so it carries our TTL from the start."""
    conn.atomic(("XADD", key, "MAXLEN", "~", settings.stream_maxlen, "*", "init", "1"),
                ("EXPIRE", key, settings.key_ttl_s))


def _setup(run: _PairRun) -> str | None:
    """Sweep orphaned reply streams and create ours with its TTL; the error, or None."""
    try:
        conn = run.link.get()
        with contextlib.suppress(RespError):  # e.g. an ACL without SCAN: not our job then
            sweep_orphans(conn)
        create_reply_stream(conn, run.key, run.settings)
    except Exception as exc:  # reported as failed samples
        return run.link.last_error or connect_error_text(exc)
    return None


def _round_trips(run: _PairRun, n: int,
                 start_at_ns: int | None) -> tuple[SampleBatch, int]:
    """The paced round trips with their re-takes; (samples, host-delayed samples counted)."""
    s = run.settings
    timeout_ns = int(s.pair_timeout_s * 1e9)
    ours: set[str] = set()
    listener = Listener(run.url, s.pair_timeout_s, "dualbus-pair-replies",
                        _reply_reader(run.key, run.got, ours)).start()
    watch = HostWatch.for_bound(s.late_bound_ms)

    def send(k: int, due: int) -> str | None:
        cid = run.cids[k] = uuid.uuid4().hex
        ours.add(cid)
        err = None
        try:
            if (entry := xadd_probe(run.link.get(), run.a, run.b, cid, due, run.key)) is None:
                err = f"stream {run.a.stream!r} does not exist (not created)"
            else:
                run.entry_ids[cid] = entry
        except Exception as exc:  # a failed sample
            err = connect_error_text(exc)
        if err is not None:
            del run.cids[k]  # never sent: no reply is outstanding for it
        return err

    def measure(count: int, first_k: int) -> SampleBatch:
        sends = paced_sends(
            count, int(1e9 / s.pair_rate_per_s),
            start_at_ns if first_k == 0 and start_at_ns is not None
            else now_ns() + 5_000_000, watch=watch,
            send=send, first_k=first_k,
            stopped=lambda: (run.link.last_error if run.link.given_up else None)
            or listener.error)
        wanted = [run.cids[k] for k in range(first_k, first_k + count) if k in run.cids]
        listener.wait(sends.last_start() + timeout_ns,
                      lambda: all(c in run.got.first for c in wanted))
        explained = {} if listener.error else _explain(run, wanted)
        return _judged(run, sends, first_k, listener.error, timeout_ns, explained)

    try:
        return retaken(n, s.retake_fraction, watch, measure)
    finally:
        listener.stop()


def _explain(run: _PairRun, wanted: list[str]) -> dict[str, str]:
    """What the engines' groups say about the round trips that got no reply (best effort:
    when the evidence cannot be read they stay timeouts)."""
    missing = {c: run.entry_ids[c] for c in wanted
               if c not in run.got.first and c in run.entry_ids}
    try:
        return explain_timeouts(run.link.get(), run.a, run.b, run.key, missing,
                                run.got.foreign) if missing else {}
    except Exception:
        return {}


def _judged(run: _PairRun, sends: Sends, first_k: int, listener_error: str | None,
            timeout_ns: int, explained: dict[str, str]) -> SampleBatch:
    """The samples of one pass of sends, each judged by its reply (`judge_reply`) or, with
    none, by the evidence (`explained`)."""
    out = SampleBatch(target=f"{run.a.name}->{run.b.name}", kind="pair_roundtrip")
    gave_up = now_ns()
    for j in range(len(sends)):
        cid = run.cids.get(first_k + j, "")
        reply = run.got.first.get(cid)
        why = sends.error[j] or judge_reply(reply, run.got.duplicates[cid], sends.start[j],
                                            timeout_ns, run.a.name, run.b.name)
        if why == "timeout":
            why = f"no reply: {listener_error}" if listener_error else explained.get(cid, why)
        out.add(sends.intended[j], sends.sent[j],
                reply.at_ns if reply is not None else max(gave_up, sends.sent[j]),
                why is None, 0, why, start_ns=sends.start[j],
                stall_us=sends.stall(j, reply.psi) if reply is not None else UNKNOWN)
    return out


def _reply_reader(key: str, got: _Replies,
                  ours: set[str]) -> Callable[[RespConnection], None]:
    """A `Listener` read step: XREAD the reply stream from where it left off and file each
    reply under its correlation id (ours or foreign, first or duplicate)."""
    last_id: list[bytes] = [b"0-0"]
    pressure = cpu_pressure()

    def read(conn: RespConnection) -> None:
        reply = conn.call("XREAD", "COUNT", 100, "BLOCK", 20, "STREAMS", key, last_id[0])
        t, psi = now_ns(), pressure.stall_us()
        for entry_id, cid, by in reply_entries(reply):
            last_id[0] = entry_id
            if cid is None:
                continue  # the "init" entry that gave the stream its TTL
            if cid not in ours:
                got.foreign += 1
            elif cid in got.first:
                got.duplicates[cid] += 1
            else:
                got.first[cid] = Reply(t, by, psi)

    return read


def classify_pair(ratio: float, count: int, ok: int, setup_error: str | None,
                  batch: SampleBatch) -> tuple[PairStatus, str]:
    if setup_error is not None:
        return "failed", f"could not use bus: {setup_error}"
    replaced = batch.replaced if len(batch.replaced) == len(batch.error) else ()
    counted = Counter("late reply" if e.startswith("late reply") else e
                      for k, e in enumerate(batch.error) if e and not (replaced and replaced[k]))
    why = "; ".join(f"{e} ×{n}" if len(counted) > 1 else e
                    for e, n in counted.most_common(3))
    if ratio < FAILED_BELOW:
        return "failed", f"{count - ok}/{count} round trips failed ({why})"
    if ratio < OPERATIONAL_SUCCESS:
        return "degraded", f"{count - ok}/{count} round trips failed ({why})"
    return "operational", f"{ok}/{count} round trips completed"


def delete_key(url: str, timeout_s: float, key: str) -> str | None:
    only_probe_keys([key])
    try:
        with RespConnection.open(url, timeout_s) as conn:
            conn.call("DEL", key)
    except Exception as exc:  # the key still expires
        return connect_error_text(exc)
    return None


def sweep_orphans(conn: RespConnection) -> int:
    """Delete reply streams that have no TTL: recreated by a reply later than their TTL (every
    reply stream the probe creates carries one). Bounded in calls and time; returns how many
    were deleted."""
    deleted = 0
    cursor = b"0"
    deadline = now_ns() + int(SWEEP_BUDGET_S * 1e9)
    for _ in range(SWEEP_MAX_CALLS):
        cursor, keys = conn.call("SCAN", cursor, "MATCH", ORPHAN_PATTERN, "COUNT", 1000)
        for k in keys:
            if k.startswith(PROBE_PREFIX.encode()) and conn.call("TTL", k) == -1:
                deleted += conn.call("DEL", k)
        if cursor in (b"0", 0) or now_ns() > deadline:
            break
    return deleted
