"""Read one bus for `dualbus discover`: its streams, their consumer groups and consumers.

Read-only and bounded. The commands sent are ``AUTH``/``SELECT`` (from the URL), ``DBSIZE``
(only to show progress), ``SCAN … COUNT 1000 TYPE stream`` (Redis ≥ 6.0), ``XLEN``, ``XINFO
GROUPS`` and ``XINFO CONSUMERS``: nothing that writes. The scan stops at ``max_streams``
streams or after about ``max_keys`` keys examined, and says so. Probe keys
(``dualbus:probe:*``) and names that are not UTF-8 are skipped (a topology cannot name them).
A bus that cannot be reached or read is a `BusUnreachable` naming the bus, password masked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from dualbus_pipeline import progress
from dualbus_pipeline.errors import ProbeError
from dualbus_pipeline.probes.resp import (
    RespConnection,
    RespError,
    connect_error_text,
    pairs_to_dict,
)

SCAN_COUNT = 1000
CONSUMER_NAMES_KEPT = 20
PROBE_PREFIX = "dualbus:probe:"
_PROGRESS_EVERY_CALLS = 50
_PROGRESS_EVERY_STREAMS = 100


class BusUnreachable(ProbeError):
    """A bus could not be connected to or read: discovery writes nothing (exit 1)."""


def replace_password(url: str, replacement: str) -> tuple[str, bool]:
    """``url`` with the password of ``user:password@`` replaced, and whether it had one.
    String work, not a URL parser: it also holds for URLs too malformed to parse (a password
    holding ``/`` or ``@`` unencoded)."""
    scheme, sep, rest = url.partition("://")
    before_query = rest.split("?", 1)[0]
    if not sep or "@" not in before_query:
        return url, False
    userinfo = before_query.rpartition("@")[0]
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return url, False
    return f"{scheme}://{user}:{replacement}@{rest[len(userinfo) + 1:]}", True


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***``."""
    return replace_password(url, "***")[0]


@dataclass(frozen=True)
class BusTarget:
    name: str
    url: str

    @property
    def shown(self) -> str:
        return masked_url(self.url)

    @property
    def password(self) -> str | None:
        try:
            pw = urlsplit(self.url).password
        except ValueError:
            return None
        return pw

    def scrub(self, text: str) -> str:
        """Belt and braces: no message may carry the password, raw or URL-decoded."""
        pw = self.password
        for secret in (pw, unquote(pw) if pw else None):
            if secret:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class GroupSeen:
    name: str
    consumers: tuple[str, ...]  # the first CONSUMER_NAMES_KEPT names, sorted
    consumer_count: int
    pending: int


@dataclass(frozen=True)
class StreamSeen:
    name: str
    length: int | None
    groups: tuple[GroupSeen, ...]


@dataclass
class BusScan:
    """What one bus showed: its streams (sorted by name) and how complete the scan is."""

    target: BusTarget
    streams: list[StreamSeen] = field(default_factory=list)
    keys_total: int | None = None  # DBSIZE, when the server allowed it
    keys_examined: int = 0         # about: SCAN COUNT per call
    capped: str | None = None      # why the scan stopped before the end of the keyspace
    skipped_probe: int = 0
    skipped_undecodable: int = 0
    vanished: int = 0              # streams gone between SCAN and XINFO


def scan_bus(target: BusTarget, *, timeout_s: float = 2.0, max_streams: int = 500,
             max_keys: int = 1_000_000) -> BusScan:
    """Read ``target`` (module docstring); raise BusUnreachable when it cannot be read."""
    try:
        conn = RespConnection.open(target.url, timeout_s)
    except (OSError, EOFError, RespError, ValueError) as exc:
        raise BusUnreachable(target.scrub(
            f"bus {target.name!r} ({target.shown}): cannot connect: "
            f"{connect_error_text(exc)}")) from None
    with conn:
        scan = BusScan(target=target)
        step = "SCAN"
        try:
            names = _stream_names(conn, scan, max_streams, max_keys)
            step = "XINFO"
            for i, name in enumerate(names, 1):
                seen = _read_stream(conn, name, scan)
                if seen is None:
                    scan.vanished += 1
                else:
                    scan.streams.append(seen)
                if i % _PROGRESS_EVERY_STREAMS == 0:
                    progress.emit("discover", f"bus {target.name}: {i}/{len(names)} streams "
                                              "read")
        except (OSError, EOFError, RespError, ValueError, TypeError, IndexError) as exc:
            raise BusUnreachable(target.scrub(
                f"bus {target.name!r} ({target.shown}): {step} failed: "
                f"{connect_error_text(exc)}")) from None
    groups = sum(len(s.groups) for s in scan.streams)
    progress.emit("discover", f"bus {target.name}: {len(scan.streams)} streams, {groups} "
                              f"consumer groups (~{scan.keys_examined:,} keys scanned)")
    return scan


def _text(raw: Any) -> str | None:
    """A key or group name as text; None when it is not UTF-8 (a topology cannot name it)."""
    if isinstance(raw, bytes):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None
    return None if raw is None else str(raw)


def _stream_names(conn: RespConnection, scan: BusScan, max_streams: int,
                  max_keys: int) -> list[str]:
    with contextlib.suppress(RespError):  # an ACL may refuse DBSIZE: progress only
        scan.keys_total = int(conn.call("DBSIZE"))
    name = scan.target.name
    names: set[str] = set()
    probe: set[bytes] = set()
    undecodable: set[bytes] = set()
    cursor: bytes = b"0"
    calls = 0
    while True:
        try:
            cursor, keys = conn.call("SCAN", cursor, "COUNT", SCAN_COUNT, "TYPE", "stream")
        except RespError as exc:
            if "syntax" in str(exc).lower():
                raise RespError("SCAN … TYPE stream needs Redis ≥ 6.0") from None
            raise
        calls += 1
        scan.keys_examined += SCAN_COUNT
        for raw in keys:
            text = _text(raw)
            if text is None:
                undecodable.add(raw)
            elif text.startswith(PROBE_PREFIX):
                probe.add(raw)
            else:
                names.add(text)
        done = cursor in (b"0", 0)
        if done:
            scan.keys_examined = min(scan.keys_examined, scan.keys_total or scan.keys_examined)
            break
        if len(names) >= max_streams:
            scan.capped = (f"stopped at {max_streams} streams (--max-streams) before the end "
                           "of the keyspace: there may be more")
            break
        if scan.keys_examined >= max_keys:
            scan.capped = (f"stopped after ~{scan.keys_examined:,} keys scanned (--max-keys "
                           f"{max_keys:,}) of {_total(scan)}: streams beyond are not listed")
            break
        if calls % _PROGRESS_EVERY_CALLS == 0:
            progress.emit("discover", f"bus {name}: ~{scan.keys_examined:,} of {_total(scan)} "
                                      f"keys scanned, {len(names)} streams")
    if len(names) > max_streams:
        scan.capped = (f"kept the first {max_streams} of {len(names)}{'' if done else '+'} "
                       "streams found (--max-streams): the rest are not listed")
    scan.skipped_probe, scan.skipped_undecodable = len(probe), len(undecodable)
    return sorted(names)[:max_streams]


def _total(scan: BusScan) -> str:
    return f"{scan.keys_total:,}" if scan.keys_total is not None else "?"


def _read_stream(conn: RespConnection, name: str, scan: BusScan) -> StreamSeen | None:
    try:
        raw_groups = conn.call("XINFO", "GROUPS", name)
    except RespError as exc:
        if any(m in str(exc).lower() for m in ("no such key", "wrongtype")):
            return None  # deleted or replaced since SCAN saw it
        raise
    length = conn.call("XLEN", name)
    groups: list[GroupSeen] = []
    for raw in raw_groups or []:
        info = pairs_to_dict(raw)
        group = _text(info.get("name"))
        if group is None:
            scan.skipped_undecodable += 1
            continue
        if group.startswith(PROBE_PREFIX):
            continue
        try:
            raw_consumers = conn.call("XINFO", "CONSUMERS", name, group)
        except RespError as exc:
            if "nogroup" in str(exc).lower():
                continue  # destroyed since XINFO GROUPS
            raise
        consumers = sorted(c for c in (_text(pairs_to_dict(r).get("name"))
                                       for r in raw_consumers or []) if c is not None)
        groups.append(GroupSeen(name=group, consumers=tuple(consumers[:CONSUMER_NAMES_KEPT]),
                                consumer_count=len(raw_consumers or []),
                                pending=int(info.get("pending") or 0)))
    return StreamSeen(name=name, length=int(length) if isinstance(length, int) else None,
                      groups=tuple(sorted(groups, key=lambda g: g.name)))
