"""Pair probe (product.md §4.3): probe → engine A's stream → engine B's stream → probe.

Protocol: XADD to A's stream ``message_type=dualbus.probe, correlation_id, sent_ns,
forward_to=<B's stream>, reply_to=dualbus:probe:<run>:reply:<from>-<to>``. A forwards the
fields minus ``forward_to`` to B's stream; B XADDs ``{correlation_id, sent_ns, replied_by}``
to ``reply_to``. Round trips are paced (open loop, ``pair_rate_per_s``) and measured from the
intended send time; a correlation id without a reply within ``pair_timeout_s`` is a failed
sample ("timeout").

The pair runs on engine A's bus. The only writes outside ``dualbus:probe:`` are the protocol
messages on A's stream (no MAXLEN there: a probe never trims a production stream; NOMKSTREAM:
it never creates a stream the engine does not have). The reply stream is created by the probe
with an EXPIRE (engines' XADDs keep it). At the end it is deleted when every round trip came
back; when replies are still outstanding it is left to expire instead, because a late reply
XADDed to a deleted key would recreate it *without* a TTL. A reply later than the TTL itself
does recreate such a key; every pair probe first sweeps those orphans (reply streams with no
TTL: ours always have one) in a bounded SCAN.

Status: ``failed`` when fewer than half of the round trips came back, ``degraded`` below
99 %, ``operational`` otherwise.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

from dualbus_pipeline.config import Pair, ProbeSettings, Topology
from dualbus_pipeline.probes.bus import PROBE_PREFIX, Link
from dualbus_pipeline.probes.model import PairResult, PairStatus, SampleBatch
from dualbus_pipeline.probes.resp import RespConnection, RespError, connect_error_text, pack
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.probes.timing import in_thread, lower_timer_slack, now_ns, sleep_until_ns

PROBE_TYPE = "dualbus.probe"
OPERATIONAL_SUCCESS = 0.99
FAILED_BELOW = 0.5
ORPHAN_PATTERN = f"{PROBE_PREFIX}*:reply:*"
SWEEP_MAX_CALLS = 50       # SCAN COUNT 1000 calls per sweep: bounded work on a big keyspace
SWEEP_BUDGET_S = 0.25


def reply_key(run_id: str, pair: Pair) -> str:
    return f"{PROBE_PREFIX}{run_id}:reply:{pair.from_}-{pair.to}"


async def probe_pair(pair: Pair, topology: Topology, settings: ProbeSettings,
                     run_id: str) -> PairResult:
    """Measure round trips for one pair; failures are samples, never exceptions."""
    return await in_thread(lambda: probe_pair_blocking(pair, topology, settings, run_id),
                           name=f"dualbus-pair-{pair.from_}-{pair.to}")


class _Replies:
    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.error: str | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()


def _read_replies(url: str, key: str, timeout_s: float, want: int, out: _Replies) -> None:
    lower_timer_slack()
    try:
        conn = RespConnection.open(url, timeout_s + 0.5)
    except Exception as exc:  # reported as failed samples
        out.error = connect_error_text(exc)
        out.ready.set()
        return
    last_id = b"0-0"
    try:
        out.ready.set()
        while len(out.done) < want and not out.stop.is_set():
            reply = conn.call("XREAD", "COUNT", 100, "BLOCK", 20, "STREAMS", key, last_id)
            t = now_ns()
            if not reply:
                continue
            for entry_id, fields in reply[0][1]:
                last_id = entry_id
                f = dict(zip(fields[::2], fields[1::2], strict=False))
                cid = f.get(b"correlation_id")
                if cid:
                    out.done.setdefault(cid.decode(), t)
    except Exception as exc:  # reported as failed samples
        out.error = connect_error_text(exc)
    finally:
        conn.close()


def probe_pair_blocking(pair: Pair, topology: Topology, settings: ProbeSettings,
                        run_id: str) -> PairResult:
    lower_timer_slack()
    a, b = topology.engine(pair.from_), topology.engine(pair.to)
    bus = topology.bus(a.bus)
    n = settings.pair_count
    timeout = settings.pair_timeout_s
    key = reply_key(run_id, pair)
    batch = SampleBatch(target=pair.key, kind="pair_roundtrip")
    link = Link(bus.url, timeout)
    setup_error: str | None = None
    out = _Replies()
    cids = [uuid.uuid4().hex for _ in range(n)]
    interval = int(1e9 / settings.pair_rate_per_s)
    intended = [0] * n
    sent = [0] * n
    send_err: list[str | None] = [None] * n
    try:
        try:
            conn = link.get()
            with contextlib.suppress(RespError):  # e.g. an ACL without SCAN: not our job then
                sweep_orphans(conn)
            # The reply stream exists before any engine writes to it, so it carries our TTL.
            conn.atomic(("XADD", key, "MAXLEN", "~", settings.stream_maxlen, "*", "init", "1"),
                        ("EXPIRE", key, settings.key_ttl_s))
        except Exception as exc:  # reported as failed samples
            setup_error = link.last_error or connect_error_text(exc)
        if setup_error is None:
            reader = threading.Thread(target=_read_replies, name="dualbus-pair-replies",
                                      args=(bus.url, key, timeout, n, out), daemon=True)
            reader.start()
            out.ready.wait(timeout + 1)
            start = now_ns() + 5_000_000
            for i in range(n):
                intended[i] = start + i * interval
                if link.given_up or out.error:
                    send_err[i] = f"not attempted: {link.last_error or out.error}"
                    sent[i] = max(intended[i], now_ns())
                    continue
                sleep_until_ns(intended[i])
                sent[i] = now_ns()
                cmd = pack("XADD", a.stream, "NOMKSTREAM", "*", "message_type", PROBE_TYPE,
                           "correlation_id", cids[i], "sent_ns", intended[i],
                           "forward_to", b.stream, "reply_to", key)
                try:
                    if link.get().call_packed(cmd) is None:
                        send_err[i] = f"stream {a.stream!r} does not exist (not created)"
                except Exception as exc:  # a failed sample
                    send_err[i] = connect_error_text(exc)
            deadline = now_ns() + int(timeout * 1e9)
            while len(out.done) < n and now_ns() < deadline and reader.is_alive():
                reader.join(0.005)
            out.stop.set()
            reader.join(timeout + 1)
    finally:
        link.close()
        outstanding = setup_error is None and any(
            cid not in out.done for cid, err in zip(cids, send_err, strict=True) if err is None)
        cleanup_error = None if outstanding else _delete(bus.url, timeout, key)
    gave_up = now_ns()
    if setup_error is not None:
        for _ in range(n):
            batch.add(gave_up, gave_up, gave_up, False, 0, f"not attempted: {setup_error}")
    else:
        for i in range(n):
            done = out.done.get(cids[i])
            if done is not None:
                batch.add(intended[i], sent[i], done, True)
            else:
                err = send_err[i] or (f"no reply: {out.error}" if out.error else "timeout")
                batch.add(intended[i], sent[i], max(gave_up, sent[i]), False, 0, err)
    summary = summarize(batch, settings.pair_rate_per_s, settings.min_samples)
    status, reason = classify_pair(summary.success_ratio, summary.count, summary.ok,
                                   setup_error, batch)
    if cleanup_error:
        reason += f"; cleanup: {cleanup_error} (reply stream expires after {settings.key_ttl_s}s)"
    elif outstanding:
        reason += (f"; reply stream left to expire in {settings.key_ttl_s}s so that late "
                   "replies cannot recreate it without a TTL")
    return PairResult(from_=pair.from_, to=pair.to, bus=bus.name, status=status,
                      status_reason=reason, summary=summary, samples=batch)


def classify_pair(ratio: float, count: int, ok: int, setup_error: str | None,
                  batch: SampleBatch) -> tuple[PairStatus, str]:
    if setup_error is not None:
        return "failed", f"could not use bus: {setup_error}"
    first = next((e for e in batch.error if e), None)
    if ratio < FAILED_BELOW:
        return "failed", f"{count - ok}/{count} round trips failed ({first})"
    if ratio < OPERATIONAL_SUCCESS:
        return "degraded", f"{count - ok}/{count} round trips failed ({first})"
    return "operational", f"{ok}/{count} round trips completed"


def _delete(url: str, timeout_s: float, key: str) -> str | None:
    assert key.startswith(PROBE_PREFIX)
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
