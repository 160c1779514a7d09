"""Why a pair's round trips got no reply, from passive evidence read after they timed out.

A round trip with no reply says "timeout"; the engines' consumer groups often say more. Once
the listening window is over, for the round trips that got no reply, this module reads (never
writes): A's group on A's stream (``XINFO GROUPS``: how far it has read; ``XPENDING``: what it
read and has not acknowledged), B's stream after our first probe message (``XRANGE``, bounded)
for the forwarded messages carrying our correlation ids, B's group the same way, and last our
own reply stream. The reads go in the order the protocol writes (an engine forwards or replies
before it acknowledges), so an acknowledgement seen here means its write was already made:

* forwarded to B's stream, read and acknowledged by B's group, no reply:
  ``no probe protocol on B: …``;
* read and acknowledged by A's group, nothing with its correlation id on B's stream:
  ``A did not forward: …``;
* anything else (not read yet, still pending, B's stream past the read bound or trimmed):
  ``timeout``.

When replies with correlation ids the probe never sent came back, B is answering, just not
with ours, and the first row does not apply. Every read is bounded (``MAX_ENTRIES``); when a
bound is reached the evidence is incomplete and the sample stays a plain ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dualbus_pipeline.config import Engine
from dualbus_pipeline.probes.resp import RespConnection

MAX_ENTRIES = 1000  # entries read per XRANGE / XPENDING

StreamId = tuple[int, int]


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _pairs(flat: Sequence[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _group_read_up_to(conn: RespConnection, stream: str, group: str) -> StreamId | None:
    """The last entry the group has been given (``last-delivered-id``), None without it."""
    try:
        groups = conn.call("XINFO", "GROUPS", stream)
    except Exception:  # no such stream: nobody read anything
        return None
    for g in groups or []:
        d = _pairs(g)
        if d.get(b"name") == group.encode():
            return parse_id(d[b"last-delivered-id"])
    return None


def _pending(conn: RespConnection, stream: str, group: str,
             ids: Sequence[StreamId]) -> set[StreamId] | None:
    """Which of ``ids`` the group read and has not acknowledged; None when unknown."""
    if not ids:
        return set()
    lo, hi = min(ids), max(ids)
    got = conn.call("XPENDING", stream, group, f"{lo[0]}-{lo[1]}", f"{hi[0]}-{hi[1]}",
                    MAX_ENTRIES)
    if len(got) >= MAX_ENTRIES:
        return None
    return {parse_id(p[0]) for p in got}


def _consumed(conn: RespConnection, stream: str, group: str,
              ids: Mapping[str, StreamId]) -> set[str]:
    """The correlation ids whose entry (``ids``) the group read and acknowledged."""
    read_up_to = _group_read_up_to(conn, stream, group)
    if read_up_to is None:
        return set()
    read = {cid: i for cid, i in ids.items() if i <= read_up_to}
    pending = _pending(conn, stream, group, list(read.values()))
    if pending is None:
        return set()
    return {cid for cid, i in read.items() if i not in pending}


def _forwarded(conn: RespConnection, stream: str, after: StreamId,
               cids: set[str]) -> tuple[dict[str, StreamId], bool]:
    """(correlation id → entry id on B's stream, complete): the probe messages of ``cids``
    found on ``stream`` from the millisecond of ``after`` on (ids are per stream: a forward
    made in the same millisecond can carry the very id of the message on A's stream);
    complete when the bounded read reached the end."""
    entries = conn.call("XRANGE", stream, f"{after[0]}-0", "+", "COUNT", MAX_ENTRIES) or []
    found: dict[str, StreamId] = {}
    for entry_id, flat in entries:
        cid = _pairs(flat).get(b"correlation_id")
        if cid is not None and cid.decode(errors="replace") in cids:
            found[cid.decode()] = parse_id(entry_id)
    return found, len(entries) < MAX_ENTRIES


def _nothing_deleted_since(conn: RespConnection, stream: str, after: StreamId) -> bool:
    """True when no entry from the millisecond of ``after`` on was trimmed or deleted from
    ``stream`` (Redis ≥ 7: ``max-deleted-entry-id``), so a forward that was made is still
    there to be found. An engine that XDELs what it processed makes this False: the evidence
    is then incomplete."""
    try:
        info = _pairs(conn.call("XINFO", "STREAM", stream))
    except Exception:  # no such stream: nothing was ever forwarded to it
        return True
    deleted = info.get(b"max-deleted-entry-id")
    return deleted is not None and parse_id(deleted) < (after[0], 0)


def _replied(conn: RespConnection, reply_key: str) -> set[str]:
    entries = conn.call("XRANGE", reply_key, "-", "+", "COUNT", MAX_ENTRIES) or []
    return {c.decode(errors="replace") for _, flat in entries
            if (c := _pairs(flat).get(b"correlation_id")) is not None}


def explain_timeouts(conn: RespConnection, a: Engine, b: Engine, reply_key: str,
                     sent: Mapping[str, bytes], foreign_replies: int) -> dict[str, str]:
    """Sample errors for the round trips of ``sent`` (correlation id → entry id on A's
    stream) that got no reply, where the evidence shows more than a timeout (module
    docstring); the others are left out. Reads only."""
    if not sent:
        return {}
    a_ids = {cid: parse_id(i) for cid, i in sent.items()}
    a_done = _consumed(conn, a.stream, a.group, a_ids)
    first = min(a_ids.values())
    on_b, complete = _forwarded(conn, b.stream, first, set(sent))
    complete = complete and _nothing_deleted_since(conn, b.stream, first)
    b_done = _consumed(conn, b.stream, b.group, on_b) if not foreign_replies else set()
    replied = _replied(conn, reply_key)
    out: dict[str, str] = {}
    for cid in sent:
        if cid in b_done and cid not in replied:
            out[cid] = (f"no probe protocol on {b.name}: it consumed the forwarded message "
                        "but neither forwarded nor replied")
        elif cid in a_done and cid not in on_b and complete:
            out[cid] = (f"{a.name} did not forward: it consumed the probe message but "
                        f"nothing arrived on {b.name}'s stream {b.stream!r}")
    return out
