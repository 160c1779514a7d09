"""Bus probe (product.md §4.1): PING, publish→consume delivery, capacity burst, passive health.

Order matters: the passive read (INFO, and the first read of the engines' consumer groups,
probes/streams.py) runs first so ``instantaneous_ops_per_sec`` reflects the platform's
traffic, not ours; the groups are read again at the end (the watch). Then PING round trips
(closed loop, sequential: a round trip is what is measured), paced delivery (open loop: sends
follow a fixed schedule and latency runs from when the probe was ready to send, paced.py), and
last the capacity burst.

Timing-critical phases use blocking sockets in dedicated threads (resp.py): an event loop adds
wake-up latency comparable to a loopback PING.

Safety: every key written is ``dualbus:probe:<run_id>:<bus>:...``, created with MAXLEN and an
EXPIRE (``key_ttl_s``), and deleted in a ``finally``. Engine streams are only read.
A dead or dying bus yields failed samples and status ``unreachable``/``degraded``, never an
exception.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from dualbus_pipeline.config import Bus, ProbeSettings
from dualbus_pipeline.probes.burst import run_burst
from dualbus_pipeline.probes.host import UNKNOWN, cpu_pressure
from dualbus_pipeline.probes.model import (
    OPERATIONAL_SUCCESS,
    BusResult,
    BusStatus,
    SampleBatch,
    StreamStat,
)
from dualbus_pipeline.probes.paced import Listener, paced_sends, retaken
from dualbus_pipeline.probes.resp import (
    PING,
    RespConnection,
    connect_error_text,
    pack,
)
from dualbus_pipeline.probes.retake import HostWatch
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.probes.streams import (
    GroupRead,
    Watched,
    judge,
    read_group,
    registers_waiting_readers,
)
from dualbus_pipeline.probes.timing import in_thread, now_ns

PROBE_PREFIX = "dualbus:probe:"
GROUP = "dualbus-probe"
MAX_CONSECUTIVE_CONNECT_FAILURES = 3
T = TypeVar("T")

INFO_FIELDS = ("instantaneous_ops_per_sec", "connected_clients", "blocked_clients",
               "used_memory", "used_memory_rss", "maxmemory", "used_cpu_sys", "used_cpu_user",
               "rejected_connections", "total_commands_processed", "uptime_in_seconds",
               "instantaneous_input_kbps", "instantaneous_output_kbps")


def probe_key(run_id: str, bus: str, suffix: str) -> str:
    return f"{PROBE_PREFIX}{run_id}:{bus}:{suffix}"


def only_probe_keys(keys: list[str]) -> None:
    """The safety rule of every delete: a probe touches nothing outside ``dualbus:probe:``
    (a real check, not an ``assert``, which ``python -O`` would remove)."""
    foreign = [k for k in keys if not k.startswith(PROBE_PREFIX)]
    if foreign:
        raise ValueError(f"refusing to delete {foreign[0]!r}: probes only write under "
                         f"{PROBE_PREFIX!r}")


async def probe_bus(bus: Bus, watched: list[Watched], settings: ProbeSettings,
                    run_id: str) -> BusResult:
    """Probe one bus; never raises for a failed measurement (see module docstring)."""
    return await in_thread(lambda: probe_bus_blocking(bus, watched, settings, run_id),
                           name=f"dualbus-bus-{bus.name}")


class Link:
    """A connection that reconnects on demand and gives up after repeated connect failures."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.conn: RespConnection | None = None
        self.connect_failures = 0
        self.last_error: str | None = None

    @property
    def given_up(self) -> bool:
        return self.connect_failures >= MAX_CONSECUTIVE_CONNECT_FAILURES

    def get(self) -> RespConnection:
        if self.conn is not None and self.conn.connected:
            return self.conn
        try:
            self.conn = RespConnection.open(self.url, self.timeout_s)
        except Exception as exc:
            self.connect_failures += 1
            self.last_error = connect_error_text(exc)
            raise
        self.connect_failures = 0
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def probe_bus_blocking(bus: Bus, watched: list[Watched], settings: ProbeSettings,
                       run_id: str) -> BusResult:
    timeout = settings.bus_timeout_s
    ping = SampleBatch(target=bus.name, kind="bus_ping")
    delivery = SampleBatch(target=bus.name, kind="bus_delivery")
    info: dict[str, float] = {}
    streams: list[StreamStat] = []
    capacity: float | None = None
    delayed = 0
    notes: list[str] = []
    first_error: str | None = None
    delivery_key = probe_key(run_id, bus.name, "delivery")
    capacity_key = probe_key(run_id, bus.name, "capacity")
    link = Link(bus.url, timeout)
    reads: list[GroupRead] = []
    try:
        try:
            conn = link.get()
            info = read_info(conn)
            reads = [read_group(conn, w) for w in watched]  # the watch starts
        except Exception as exc:  # reported, not raised
            first_error = connect_error_text(exc)
        ping_samples(link, settings.bus_ping_count, ping)
        if ping.ok.count(True) == 0 and link.given_up:
            # Nothing answers: do not spend the delivery schedule and burst timing out.
            _fail_all(delivery, settings.bus_delivery_count, link.last_error or "unreachable")
        else:
            err, delayed = delivery_samples(bus.url, delivery_key, settings, delivery)
            if err:
                notes.append(f"delivery: {err}")
            if settings.bus_capacity_messages > 0:
                capacity, cap_err = capacity_burst(bus.url, capacity_key, settings)
                if cap_err:
                    notes.append(f"capacity: {cap_err}")
        streams = _consumer_health(link, watched, reads, settings, first_error)
    finally:
        link.close()
        cleanup_err = delete_keys(bus.url, timeout, [delivery_key, capacity_key])
        if cleanup_err:
            notes.append(f"cleanup: {cleanup_err} (keys expire after {settings.key_ttl_s}s)")
    first_error = first_error or link.last_error or _first_error(ping) \
        or _first_error(delivery)
    ping_summary = summarize(ping, None, settings.min_samples)
    delivery_summary = summarize(delivery, settings.bus_delivery_rate_per_s,
                                 settings.min_samples, settings.late_bound_ms, delayed)
    status, reason = classify_bus(ping_summary.success_ratio, delivery_summary.success_ratio,
                                  len(ping), len(delivery), notes, first_error)
    return BusResult(
        name=bus.name, title=bus.display, url=bus.safe_url, status=status, status_reason=reason,
        ping=ping_summary, delivery=delivery_summary, throughput_msgs_per_s=capacity,
        capacity_messages=settings.bus_capacity_messages, info=info, streams=streams,
        samples=[ping, delivery], error=first_error if status != "operational" else None)


def _consumer_health(link: Link, watched: list[Watched], reads: list[GroupRead],
                     settings: ProbeSettings, error: str | None) -> list[StreamStat]:
    """The watch ends: read each group again and judge it (probes/streams.py)."""
    if not watched:
        return []
    try:
        if len(reads) != len(watched):
            raise ConnectionError(error or "not read")
        conn = link.get()
        registers = registers_waiting_readers(conn)
        return [judge(conn, w, first, read_group(conn, w), settings,
                      waiting_registers=registers)
                for w, first in zip(watched, reads, strict=True)]
    except Exception as exc:  # reported, not raised
        why = error or connect_error_text(exc)
        return [StreamStat(stream=w.stream, group=w.group, engine=w.engine, exists=False,
                           error=f"not read: {why}") for w in watched]


def classify_bus(ping_ok: float, delivery_ok: float, ping_n: int, delivery_n: int,
                 notes: list[str], error: str | None) -> tuple[BusStatus, str]:
    """unreachable: no PING and no delivery succeeded; degraded: any phase below 99 % or a
    phase error (e.g. the burst was not fully delivered); operational otherwise."""
    if (ping_n == 0 or ping_ok == 0) and (delivery_n == 0 or delivery_ok == 0):
        return "unreachable", f"no PING or delivery succeeded ({error or 'no answer'})"
    problems = []
    if ping_ok < OPERATIONAL_SUCCESS:
        problems.append(f"PING success {ping_ok:.1%}")
    if delivery_ok < OPERATIONAL_SUCCESS:
        problems.append(f"delivery success {delivery_ok:.1%}")
    problems += notes
    if problems:
        return "degraded", "; ".join(problems)
    return "operational", "PING, delivery and capacity probes succeeded"


def _first_error(batch: SampleBatch) -> str | None:
    return next((e for e in batch.error if e), None)


def _fail_all(batch: SampleBatch, n: int, error: str) -> None:
    t = now_ns()
    for _ in range(n - len(batch)):
        batch.add(t, t, t, False, 0, f"not attempted: {error}")


def read_info(conn: RespConnection) -> dict[str, float]:
    raw = conn.call("INFO")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else ""
    out: dict[str, float] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k in INFO_FIELDS:
            with contextlib.suppress(ValueError):
                out[k] = float(v)
    return out


def ping_samples(link: Link, count: int, batch: SampleBatch) -> None:
    """Sequential PING round trips (closed loop by design: one round trip is the sample)."""
    pressure = cpu_pressure()
    for _ in range(count):
        if link.given_up:
            _fail_all(batch, count, link.last_error or "unreachable")
            return
        t0 = now_ns()
        try:
            conn = link.get()
            psi0, t0 = pressure.stall_us(), now_ns()
            conn.send(PING)
            conn.read()
        except Exception as exc:  # a failed sample
            batch.add(t0, t0, now_ns(), False, 0, connect_error_text(exc))
            continue
        t1, psi1 = now_ns(), pressure.stall_us()
        batch.add(t0, t0, t1, True,
                  stall_us=psi1 - psi0 if UNKNOWN not in (psi0, psi1) else UNKNOWN)


def delivery_samples(url: str, key: str, settings: ProbeSettings,
                     batch: SampleBatch) -> tuple[str | None, int]:
    """Paced XADD on one connection → XREADGROUP on another (paced.py says what each sample
    is charged from), with re-takes (retake.py). A message delivered more than
    ``bus_timeout_s`` after its start is a failed sample. Returns a setup/consumer error worth
    reporting (or None) and how many host-delayed samples stayed counted.
    """
    n = settings.bus_delivery_count
    timeout = settings.bus_timeout_s
    timeout_ns = int(timeout * 1e9)
    link = Link(url, timeout)
    try:
        setup = link.get()
        setup.atomic(("XGROUP", "CREATE", key, GROUP, "$", "MKSTREAM"),
                     ("EXPIRE", key, settings.key_ttl_s))
    except Exception as exc:  # reported as failed samples
        err = link.last_error or connect_error_text(exc)
        link.close()
        _fail_all(batch, n, err)
        return f"setup failed: {err}", 0
    delivered: dict[int, tuple[int, int]] = {}  # seq -> (delivered at, host CPU pressure)
    pressure = cpu_pressure()
    read = pack("XREADGROUP", "GROUP", GROUP, "dualbus-probe-consumer", "COUNT", 100,
                "BLOCK", 20, "STREAMS", key, ">")

    def consume(conn: RespConnection) -> None:
        reply = conn.call_packed(read)
        t, psi = now_ns(), pressure.stall_us()
        if reply:
            entries = reply[0][1]
            for _entry_id, fields in entries:  # fields: [b"i", seq]
                delivered[int(fields[1])] = (t, psi)
            conn.call("XACK", key, GROUP, *[e[0] for e in entries])

    listener = Listener(url, timeout, "dualbus-bus-consumer", consume).start()
    watch = HostWatch.for_bound(settings.late_bound_ms)

    def send(k: int, _due: int) -> str | None:
        try:
            link.get().call_packed(
                pack("XADD", key, "MAXLEN", "~", settings.stream_maxlen, "*", "i", k))
        except Exception as exc:  # a failed sample
            return connect_error_text(exc)
        return None

    def measure(count: int, first_k: int) -> SampleBatch:
        sends = paced_sends(
            count, int(1e9 / settings.bus_delivery_rate_per_s),
            now_ns() + 5_000_000,  # let the consumer block in XREADGROUP first
            watch=watch, send=send, first_k=first_k,
            stopped=lambda: (link.last_error if link.given_up else None) or listener.error)
        listener.wait(sends.last_start() + timeout_ns, lambda: all(
            first_k + j in delivered for j in range(count)))
        gave_up = now_ns()
        out = SampleBatch(target=batch.target, kind=batch.kind)
        for j in range(count):
            start, (done, psi) = sends.start[j], delivered.get(first_k + j, (None, UNKNOWN))
            why = sends.error[j]
            if why is None and done is not None and done - start > timeout_ns:
                why = f"late: delivered after {(done - start) / 1e6:.0f} ms (timeout " \
                      f"{timeout:g} s)"
            elif why is None and done is None:
                why = f"not delivered: {listener.error}" if listener.error else "timeout"
            out.add(sends.intended[j], sends.sent[j], done if done is not None else gave_up,
                    why is None, 0, why, start_ns=start, stall_us=sends.stall(j, psi))
        return out

    try:
        got, still = retaken(n, settings.retake_fraction, watch, measure)
    finally:
        listener.stop()
        link.close()
    batch.extend(got)
    return (f"consumer: {listener.error}" if listener.error else None), still


def retry_reconnect(action: Callable[[], T], timeout_s: float) -> T:
    """Run ``action`` (which opens its own connection), retrying for up to ``timeout_s`` while
    the bus refuses, resets or closes connections: a bus that was just restarted answers
    again within a few ms. One bounded retry window, then the last error."""
    deadline = now_ns() + int(timeout_s * 1e9)
    while True:
        try:
            return action()
        except (ConnectionError, EOFError):
            if now_ns() >= deadline:
                raise
            time.sleep(0.02)


def capacity_burst(url: str, key: str, settings: ProbeSettings) -> tuple[float | None, str | None]:
    """Delivered msgs/s through a consumer group in a bounded, pipelined burst."""
    n = min(settings.bus_capacity_messages, settings.max_burst_messages)

    def setup() -> None:
        with RespConnection.open(url, settings.bus_timeout_s) as conn:
            conn.atomic(("XGROUP", "CREATE", key, GROUP, "$", "MKSTREAM"),
                        ("EXPIRE", key, settings.key_ttl_s))

    try:
        retry_reconnect(setup, settings.bus_timeout_s)
    except Exception as exc:  # reported
        return None, f"setup failed: {connect_error_text(exc)}"
    result = run_burst(url, key, GROUP, n, settings.stream_maxlen, settings.bus_timeout_s)
    return result.msgs_per_s, result.error


def delete_keys(url: str, timeout_s: float, keys: list[str]) -> str | None:
    only_probe_keys(keys)

    def delete() -> None:
        with RespConnection.open(url, timeout_s) as conn:
            conn.call("DEL", *keys)

    try:
        retry_reconnect(delete, timeout_s)
    except Exception as exc:  # keys still expire
        return connect_error_text(exc)
    return None
