"""Pair hot path: ``pair_hot_count`` round trips back to back, one in flight, each sent when
the previous reply arrived (kind ``pair_hot``, on a reply stream of its own). Like the engines'
hot series it reads the platform's own cost of a round trip without the idle wake-ups a paced
round trip pays in three processes. runner.py runs it one pair at a time after the paced
series, only for pairs that got a reply; it stops at its first failure. The protocol and the
judging of a reply are pair.py's.
"""

from __future__ import annotations

import uuid

from dualbus_pipeline.config import Pair, ProbeSettings, Topology
from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.pair import (
    Reply,
    create_reply_stream,
    delete_key,
    judge_reply,
    reply_entries,
    reply_key,
    send_probe,
)
from dualbus_pipeline.probes.resp import RespConnection, connect_error_text
from dualbus_pipeline.probes.timing import in_thread, now_ns


async def probe_pair_hot(pair: Pair, topology: Topology, settings: ProbeSettings,
                         run_id: str, n: int) -> SampleBatch:
    """The pair's hot path (module docstring); samples only, failures included."""
    return await in_thread(lambda: probe_pair_hot_blocking(pair, topology, settings, run_id, n),
                           name=f"dualbus-pair-hot-{pair.from_}-{pair.to}")


def probe_pair_hot_blocking(pair: Pair, topology: Topology, settings: ProbeSettings,
                            run_id: str, n: int) -> SampleBatch:
    """``n`` round trips back to back on one connection: send, then block on a reply stream
    of its own until that round trip's reply (judged like a paced one) or its timeout. Stops
    at the first failure; deletes the reply stream unless a reply is still outstanding."""
    a, b = topology.engine(pair.from_), topology.engine(pair.to)
    url = topology.bus(a.bus).url
    key = reply_key(run_id, pair, "hot")
    out = SampleBatch(target=pair.key, kind="pair_hot")
    timeout_ns = int(settings.pair_timeout_s * 1e9)
    outstanding = False
    try:
        with RespConnection.open(url, settings.pair_timeout_s) as conn:
            create_reply_stream(conn, key, settings)
            last = b"0-0"
            for _ in range(n):
                cid, start = uuid.uuid4().hex, now_ns()
                why = send_probe(conn, a, b, cid, start, key)
                reply, duplicates = None, 0
                if why is None:
                    reply, duplicates, last = _await_reply(conn, key, last, cid, start,
                                                           timeout_ns)
                why = why or judge_reply(reply, duplicates, start, timeout_ns, a.name, b.name)
                out.add(start, start, reply.at_ns if reply is not None else now_ns(),
                        why is None, 0, why, start_ns=start)
                if why is not None:
                    outstanding = reply is None
                    break
    except Exception as exc:  # a failed sample; the paced series says what the bus does
        t = now_ns()
        out.add(t, t, t, False, 0, connect_error_text(exc))
        outstanding = True
    if not outstanding:
        delete_key(url, settings.pair_timeout_s, key)
    return out


def _await_reply(conn: RespConnection, key: str, last: bytes, cid: str, start: int,
                 timeout_ns: int) -> tuple[Reply | None, int, bytes]:
    """Block on ``key`` from entry ``last`` until the reply to ``cid`` or the timeout of its
    send; (first reply, duplicates read with it, the last entry id read). Other entries (the
    init entry, a late reply of an earlier round trip) are skipped."""
    block_ms = max(1, timeout_ns // 2_000_000)  # below the connection's socket timeout
    reply: Reply | None = None
    duplicates = 0
    while reply is None and now_ns() - start < timeout_ns:
        left_ms = (timeout_ns - (now_ns() - start)) // 1_000_000
        got = conn.call("XREAD", "COUNT", 100, "BLOCK", max(1, min(left_ms, block_ms)),
                        "STREAMS", key, last)
        t = now_ns()
        for entry_id, their_cid, by in reply_entries(got):
            last = entry_id
            if their_cid != cid:
                continue
            if reply is None:
                reply = Reply(t, by)
            else:
                duplicates += 1
    return reply, duplicates, last
