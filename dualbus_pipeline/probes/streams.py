"""Stream-consumer health: Burrow's questions asked of Redis Streams, read-only.

For every stream an engine consumes (topology ``streams:``, default its own stream/group),
per consumer group, two reads: one when the bus probe starts, one when it ends (the watch).
Each read uses only read commands: ``TIME``, ``XINFO STREAM``, ``XINFO GROUPS``, ``XINFO
CONSUMERS``, ``XPENDING`` (summary form) and ``XRANGE`` with ``COUNT`` (bounded).

Figures of the second read:

* ``lag``: entries not yet delivered to the group. ``XINFO GROUPS`` gives it on Redis ≥ 7.0,
  but may give nil (7.0 after an ``XDEL`` or a trim below the group's position, and Redis < 7
  has no field): then it is counted with ``XRANGE (last-delivered-id + COUNT`` up to
  ``LAG_COUNT_CAP`` (an "at least" count beyond it, said in the reason);
* ``lag_ms``: **lag in time**, the age of the oldest undelivered entry, from its entry id
  (ids carry the producer's milliseconds) against the server's own ``TIME``: no clock skew
  between the probe host and the bus;
* ``pending`` and ``pending_age_ms``: unacknowledged entries (``XPENDING`` summary) and the
  age of the oldest of them, from its id likewise;
* ``consumers`` and ``idle_ms``: the group's consumers and how long since the freshest of
  them last read: ``inactive`` on Redis ≥ 7.2 / Valkey (time since the last *successful*
  read), else ``idle`` (7.0: time since the last attempt, which a blocked read also resets).

Status, like Burrow's consumer status (thresholds in ``probe:``, docs/probes.md):
``MISSING`` no stream or no such group; ``STOP`` no consumer, or none read for
``stream_stop_s`` while entries wait; ``STALL`` entries wait, the group's last-delivered id
did not move during the watch and no consumer read for ``stream_stall_s``; ``WARN`` the
oldest undelivered entry is older than ``stream_lag_warn_ms`` or the oldest unacknowledged
one older than ``stream_pending_warn_ms``; ``OK`` otherwise. ``consumed`` is 1 for OK and
WARN (someone reads the stream), 0 otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dualbus_pipeline.config import Engine, ProbeSettings
from dualbus_pipeline.probes.model import StreamStat
from dualbus_pipeline.probes.resp import RespConnection, RespError, pairs_to_dict

LAG_COUNT_CAP = 10_000
CONSUMED = ("OK", "WARN")


@dataclass(frozen=True)
class Watched:
    """One (engine, stream, group) whose consumer health is read on a bus."""

    engine: str
    stream: str
    group: str


def watched_on(engines: Sequence[Engine], bus: str) -> list[Watched]:
    """Every (engine, stream, group) the topology says is consumed on `bus`."""
    return [Watched(e.name, ref.stream, ref.group) for e in engines for ref in e.consumed
            if ref.bus == bus]


@dataclass
class GroupRead:
    """One read of one stream and group, as the server answered it."""

    at: float                     # probe host monotonic seconds (the watch's length)
    server_ms: int = 0
    exists: bool = False
    length: int | None = None
    last_generated: str | None = None
    group: dict[str, Any] | None = None
    consumers: list[dict[str, Any]] = field(default_factory=list)
    pending: int | None = None
    oldest_pending: str | None = None
    error: str | None = None


def _text(v: Any) -> str | None:
    return v.decode(errors="replace") if isinstance(v, bytes) else (None if v is None else str(v))


def id_ms(entry_id: str | None) -> int | None:
    """The milliseconds part of a stream entry id (``1733240000000-0`` → 1733240000000)."""
    if not entry_id:
        return None
    head = entry_id.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def server_ms(conn: RespConnection) -> int:
    secs, micros = conn.call("TIME")
    return int(secs) * 1000 + int(micros) // 1000


def read_group(conn: RespConnection, w: Watched) -> GroupRead:
    """One read (module docstring); a missing stream or group is a finding, not an error."""
    r = GroupRead(at=time.monotonic())
    try:
        r.server_ms = server_ms(conn)
        try:
            st = pairs_to_dict(conn.call("XINFO", "STREAM", w.stream))
        except RespError as exc:
            if "no such key" in str(exc).lower():
                return r
            raise
        r.exists, r.length = True, int(st.get("length") or 0)
        r.last_generated = _text(st.get("last-generated-id"))
        for g in conn.call("XINFO", "GROUPS", w.stream):
            info = pairs_to_dict(g)
            if _text(info.get("name")) == w.group:
                r.group = info
        if r.group is None:
            return r
        r.consumers = [pairs_to_dict(c) for c in
                       conn.call("XINFO", "CONSUMERS", w.stream, w.group)]
        summary = conn.call("XPENDING", w.stream, w.group)
        r.pending = int(summary[0] or 0)
        r.oldest_pending = _text(summary[1]) if r.pending else None
    except (RespError, OSError, ValueError, TypeError, IndexError) as exc:
        r.error = str(exc)[:200] or type(exc).__name__
    return r


def registers_waiting_readers(conn: RespConnection) -> bool:
    """Whether the server lists a consumer as soon as it calls XREADGROUP (Redis ≥ 7.2 and
    Valkey, which says redis_version 7.2.4) or only once an entry was delivered to it (7.0):
    on 7.0 an idle group with no consumer cannot be told from one nobody reads."""
    raw = conn.call("INFO", "server")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else ""
    for line in text.splitlines():
        if line.startswith("redis_version:"):
            parts = line.split(":", 1)[1].strip().split(".")
            try:
                return (int(parts[0]), int(parts[1])) >= (7, 2)
            except (ValueError, IndexError):
                return False
    return False


def _lag(conn: RespConnection, w: Watched, r: GroupRead) -> tuple[int | None, str | None,
                                                                  bool]:
    """(entries not delivered, the oldest undelivered id, counted exactly)."""
    assert r.group is not None
    last = _text(r.group.get("last-delivered-id")) or "0-0"
    if last == r.last_generated or not r.length:
        return 0, None, True
    first = conn.call("XRANGE", w.stream, f"({last}", "+", "COUNT", 1)
    oldest = _text(first[0][0]) if first else None
    reported = r.group.get("lag")
    if isinstance(reported, int):
        return reported, oldest, True
    if oldest is None:
        return 0, None, True
    # Redis < 7.0, or 7.x when it cannot tell (nil): count, bounded
    got = conn.call("XRANGE", w.stream, f"({last}", "+", "COUNT", LAG_COUNT_CAP)
    return len(got), oldest, len(got) < LAG_COUNT_CAP


def _idle_ms(consumers: list[dict[str, Any]]) -> int | None:
    """Since the freshest consumer last read: `inactive` (7.2+) where it says, else `idle`."""
    out: list[int] = []
    for c in consumers:
        inactive = c.get("inactive")
        if isinstance(inactive, int) and inactive >= 0:
            out.append(inactive)
        elif isinstance(c.get("idle"), int):
            out.append(int(c["idle"]))
    return min(out) if out else None


def judge(conn: RespConnection, w: Watched, first: GroupRead, last: GroupRead,
          settings: ProbeSettings, *, waiting_registers: bool = True) -> StreamStat:
    """The stream's consumer health from the watch's two reads (module docstring)."""
    base: dict[str, Any] = {"stream": w.stream, "group": w.group, "engine": w.engine}
    error = last.error or first.error
    if error:
        return StreamStat(**base, exists=last.exists, length=last.length,
                          status="MISSING" if not last.exists else None, error=error)
    if not last.exists:
        return StreamStat(**base, exists=False, error="stream does not exist", consumed=0.0,
                          status="MISSING", status_reason=f"stream {w.stream} does not exist")
    if last.group is None:
        return StreamStat(**base, exists=True, length=last.length, consumed=0.0,
                          error=f"consumer group {w.group!r} does not exist",
                          status="MISSING", status_reason=f"no consumer group {w.group} on "
                          f"stream {w.stream}: nothing reads it as a group")
    try:
        lag, oldest, exact = _lag(conn, w, last)
    except (RespError, OSError, ValueError, TypeError, IndexError) as exc:
        return StreamStat(**base, exists=True, length=last.length, error=str(exc)[:200])
    oldest_ms, pending_ms = id_ms(oldest), id_ms(last.oldest_pending)
    lag_ms = max(0, last.server_ms - oldest_ms) if oldest_ms is not None else 0
    pending_age = max(0, last.server_ms - pending_ms) if pending_ms is not None else 0
    idle = _idle_ms(last.consumers)
    moved = first.group is None or (
        _text(first.group.get("last-delivered-id")) !=
        _text(last.group.get("last-delivered-id")))
    status, reason = _status(w, lag or 0, exact, lag_ms, last.pending or 0, pending_age, idle,
                             len(last.consumers), moved, last.at - first.at, settings,
                             waiting_registers)
    return StreamStat(**base, exists=True, length=last.length, lag=lag, pending=last.pending,
                      consumers=len(last.consumers), lag_ms=float(lag_ms),
                      pending_age_ms=float(pending_age),
                      idle_ms=None if idle is None else float(idle),
                      consumed=1.0 if status in CONSUMED else 0.0, status=status,
                      status_reason=reason)


def _status(w: Watched, lag: int, exact: bool, lag_ms: int, pending: int, pending_age: int,
            idle: int | None, consumers: int, moved: bool, watched_s: float,
            settings: ProbeSettings, waiting_registers: bool) -> tuple[str, str]:
    entries = f"{'at least ' if not exact else ''}{lag} undelivered"
    waiting = f"{entries}, the oldest {_age(lag_ms)} old"
    if consumers == 0 and lag:
        return "STOP", f"group {w.group} has no consumer ({waiting})"
    if consumers == 0 and waiting_registers:
        return "STOP", (f"group {w.group} has no consumer: nothing reads it or waits on it "
                        "(this server lists a consumer from its first XREADGROUP)")
    if consumers == 0:
        return "OK", ("nothing waiting; no consumer listed yet (before Redis 7.2 a consumer "
                      "is listed only once an entry was delivered to it, so an idle group "
                      "without one cannot be told from an unread one)")
    idle_s = None if idle is None else idle / 1000
    if lag and idle_s is not None and idle_s >= settings.stream_stop_s:
        return "STOP", f"no consumer of {w.group} read for {_age(idle or 0)} ({waiting})"
    if lag and not moved and (idle_s is None or idle_s >= settings.stream_stall_s):
        return "STALL", (f"group {w.group} did not move in the {watched_s:.1f}s watched and "
                         f"no consumer read for {_age(idle or 0)} ({waiting})")
    if lag_ms > settings.stream_lag_warn_ms:
        return "WARN", f"lagging: {waiting}"
    if pending and pending_age > settings.stream_pending_warn_ms:
        return "WARN", (f"{pending} unacknowledged, the oldest {_age(pending_age)} old "
                        "(a consumer died holding them?)")
    if lag:
        return "OK", f"{waiting}; the group moves"
    return "OK", f"consumed: nothing waiting, {pending} unacknowledged"


def _age(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms / 60_000:.1f} min"
