"""One engine's requests (product.md §4.2): `EngineProber`.

Its series, all on the engine's own keep-alive connections:

* ``paced(count)``: open loop. Request i is due at ``start + i / engine_rate_per_s`` whatever
  happened to the previous ones. It goes out on an idle connection, or a new one (at most
  ``max_connections``); when that cap is reached it waits for a free connection. Latency runs
  from just before the write on a connection readied for it, else from the moment the probe's
  timer woke for it (model.py): a wait for a connection held by a slow engine counts, the
  probe's own lateness does not, and a send the host delayed past
  ``late_bound_ms`` is re-taken (retake.py). A request not answered within
  ``engine_timeout_s`` of that moment is a failed sample ("timeout") and its connection is
  dropped, so a dead engine costs about one timeout after the schedule ends.
* the hot path (back to back) and the optional capacity burst: engine_hot.py.

One connection is opened and warmed with ``WARMUP_REQUESTS`` unrecorded GETs before a series,
so samples measure the steady keep-alive state rather than the first handshake.

Sample outcome: what the engine's health check (`health:`, probes/health.py) says of the
response: by default HTTP 2xx and a body ``status`` that is not an unhealthy or starting word.
Errors: "refused", "timeout", "connection closed", "bad response: <why>" (not HTTP, body over
1 MiB, ...), "http 503", "status unhealthy", "starting: initializing", "condition … failed"…
Scheduling engines together, the concurrency guard and classification: engine.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from functools import partial

from dualbus_pipeline.config import Engine, ProbeSettings
from dualbus_pipeline.probes.engine_series import Series, unfinished
from dualbus_pipeline.probes.health import compile_rule
from dualbus_pipeline.probes.host import UNKNOWN, cpu_pressure
from dualbus_pipeline.probes.http import (
    HttpConnection,
    HttpParseError,
    Response,
    build_get,
    in_flight,
)
from dualbus_pipeline.probes.model import SampleBatch, SampleKind
from dualbus_pipeline.probes.resp import connect_error_text
from dualbus_pipeline.probes.retake import HostWatch
from dualbus_pipeline.probes.timing import async_sleep_until_ns, now_ns, sleep_until_ns

START_DELAY_NS = 2_000_000
JUDGE_NOW_BYTES = 4096
WARMUP_REQUESTS = 3
WAIT_HERE_MAX_NS = 5_000_000  # the hot series' bound on an in-thread wait (`fire`)


def _open(gate: asyncio.Future[None]) -> None:
    if not gate.done():
        gate.set_result(None)


def _wait_by(due: int, settle_by: int | None) -> int:
    """Until when a sample's answer may be waited for in-thread (`HttpConnection.wait_here`):
    its gate, or for the hot series ``WAIT_HERE_MAX_NS`` after it was due."""
    return settle_by if settle_by is not None else due + WAIT_HERE_MAX_NS


class EngineProber:
    def __init__(self, engine: Engine, settings: ProbeSettings,
                 max_connections: int | None = None, watch: HostWatch | None = None,
                 exclusive: bool = False) -> None:
        self.engine = engine
        # the only prober sending on this thread's loop: its samples may take the quiet path
        self.exclusive = exclusive
        self.quiet_samples = 0  # samples finished on the quiet path (`fire_quiet`)
        self.settings = settings
        self.rule = compile_rule(engine.health)
        self.max_connections = max_connections or settings.engine_max_connections
        self.loop = asyncio.get_running_loop()
        self.request = build_get(engine.host, engine.port, engine.health_path)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if engine.url.startswith("https://") else None)
        self.timeout_ns = int(settings.engine_timeout_s * 1e9)
        self.interval_ns = int(1e9 / settings.engine_rate_per_s)
        self.s = Series()
        self.idle: list[HttpConnection] = []
        self.open = 0
        self.waiting: deque[int] = deque()
        self.connected_any = False
        self.connect_error: str | None = None
        self.psi = cpu_pressure()
        # the sample the series waits for, and the future that opens when it is finished
        self.gate: tuple[int, asyncio.Future[None], asyncio.TimerHandle | None] = (
            -1, self.loop.create_future(), None)
        self.wait_by = 0  # until when `fire` may wait for the armed answer in-thread
        # the probe loop's late wake-ups, shared by every engine on it (retake.py)
        self.watch = watch or HostWatch.for_bound(settings.late_bound_ms)

    def _factory(self) -> HttpConnection:
        return HttpConnection(now_ns)

    async def connect(self, timeout_s: float) -> HttpConnection:
        _, proto = await asyncio.wait_for(
            self.loop.create_connection(self._factory, self.engine.host, self.engine.port,
                                        ssl=self.ssl), timeout_s)
        self.connected_any = True
        return proto

    # --- one sample -------------------------------------------------------------------------
    # Between the write and the answer's time stamp the probe does nothing but wait: on
    # loopback the write hands the engine a CPU, often the probe's own, so any bookkeeping
    # there (a parser, timers, lists: ~50 µs of Python on a 2-vCPU VM) would be read as
    # engine latency. On the event loop's path `arm` does it all before the sleep, `fire` only
    # writes (and, alone in flight, reads the answer off the socket), and the series waits on
    # the sample's gate (its answer, or half a period) before any more. Alone on the thread
    # with nothing pending (`quiet_conn`), a sample takes the quiet path instead: a blocking
    # sleep, the write and the read off the socket, with no timer, gate or pass of the loop
    # (`fire_quiet`); the loop takes over only for what that path cannot finish.
    async def take(self, i: int, due: int, settle_by: int | None) -> int:
        """Take sample i, due at ``due``, and wait until it is finished or until ``settle_by``
        (None: until it is finished); return the time the probe woke for it."""
        conn = self.quiet_conn()
        if conn is not None:
            woke = sleep_until_ns(due)  # the loop waits too: nothing of ours is pending on it
            if self.fire_quiet(i, due, settle_by, woke, conn):
                return woke
        else:
            conn = self.arm(i, due, settle_by)
            woke = await async_sleep_until_ns(due)
            self.fire(i, woke, conn)
        await self.settled()
        return woke

    def quiet_conn(self) -> HttpConnection | None:
        """An idle connection to take the next sample on without the event loop, or None.
        Only for a prober alone on its thread's loop (``exclusive``: one engine in flight),
        only while no sample of the thread is unfinished but the one about to be taken (so
        the loop has no answer, connect or timeout of ours to see to: engine_series.py), and
        only on a plain-TCP connection `HttpConnection.wait_here` can read."""
        if not self.exclusive or unfinished() != 1:
            return None
        conn = self.idle_conn()
        if conn is not None and not conn.waits_here:
            self.idle.append(conn)
            return None
        return conn

    def fire_quiet(self, i: int, due: int, settle_by: int | None, woke: int,
                   conn: HttpConnection) -> bool:
        """Sample i on the quiet path: the probe woke at ``woke``; write it on ``conn`` and read
        its answer off the socket until ``settle_by`` (None: `WAIT_HERE_MAX_NS` after it was
        due). True when it finished here; else the loop's timeout and gate take over. A
        connection the engine closed while the probe slept is replaced through the loop, the
        sample starting when the probe woke, as on the loop's path (`fire`)."""
        s = self.s
        if not conn.quiet():
            conn.abort()
            self.open -= 1
            self.fire(i, woke, self.arm(i, due, settle_by))
            return False
        answer = conn.arm()
        s.psi0[i] = self.psi.stall_us()
        s.conn_of[i] = conn
        s.start[i] = s.sent[i] = now_ns()
        conn.write(self.request)
        conn.wait_here(min(_wait_by(due, settle_by), s.start[i] + self.timeout_ns))
        if answer.done():
            self.quiet_samples += 1
            self.on_response(i, conn, answer)
            return True
        answer.add_done_callback(partial(self.on_response, i, conn))
        self.deadlines(i, due, settle_by)
        return False

    def deadlines(self, i: int, due: int, settle_by: int | None) -> None:
        """Sample i's timeout, and its gate: opens when it is finished, or at ``settle_by``."""
        s = self.s
        s.timers[i] = self.loop.call_later(max(0, due + self.timeout_ns - now_ns()) / 1e9,
                                           self.on_timeout, i)
        gate: asyncio.Future[None] = self.loop.create_future()
        by = None if settle_by is None else self.loop.call_later(
            max(0, settle_by - now_ns()) / 1e9, _open, gate)
        self.gate = (i, gate, by)
        self.wait_by = _wait_by(due, settle_by)

    def arm(self, i: int, due: int, settle_by: int | None) -> HttpConnection | None:
        """Before sample i is due on the loop's path: its `deadlines`, and an idle connection
        with the parser and future of its answer ready (None when no connection is idle:
        `fire` finds one)."""
        self.deadlines(i, due, settle_by)
        conn = self.idle_conn()
        if conn is not None:
            conn.arm().add_done_callback(partial(self.on_response, i, conn))
        return conn

    def fire(self, i: int, woke: int, conn: HttpConnection | None) -> None:
        """Sample i is due (the timer woke at ``woke``): write it on its armed connection, or
        on one that freed up while the probe slept, or open one, or queue it. On the armed
        connection it starts just before the write (since the wake-up the time is the
        probe's), and alone in flight its answer is read off the socket until the gate would
        open (`HttpConnection.wait_here`; docs/probes.md, "What the probe does per request").
        Otherwise it starts when the timer woke, so a wait for a connection counts."""
        s = self.s
        s.psi0[i] = self.psi.stall_us()
        if conn is not None and conn.armed:
            s.conn_of[i] = conn
            s.start[i] = s.sent[i] = now_ns()
            conn.write(self.request)
            if in_flight() == 1:
                conn.wait_here(min(self.wait_by, s.start[i] + self.timeout_ns))
            return
        s.start[i] = woke
        # (an armed connection that closed while the probe slept settles its future, and
        # the answer's callback counts it out: it never carried this sample)
        conn = self.idle_conn()
        if conn is not None:
            self.send(i, conn)
        elif self.open < self.max_connections:
            self.open += 1
            self.loop.create_task(self.connect_and_send(i))
        else:
            self.waiting.append(i)

    def idle_conn(self) -> HttpConnection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
            self.open -= 1
        return None

    async def settled(self) -> None:
        """Wait for the gate of the sample armed last (`arm`)."""
        _, gate, by = self.gate
        await gate
        if by is not None:
            by.cancel()

    async def connect_and_send(self, i: int) -> None:
        remaining = (self.s.start[i] + self.timeout_ns - now_ns()) / 1e9
        try:
            conn = await self.connect(max(remaining, 0.001))
        except Exception as exc:  # a failed sample
            self.open -= 1
            err = "timeout" if isinstance(exc, TimeoutError) else connect_error_text(exc)
            self.connect_error = err
            self.finish(i, now_ns(), False, 0, err)
            self.pump()
            return
        if self.s.finished[i]:
            self.release(conn)
        else:
            self.send(i, conn)

    def send(self, i: int, conn: HttpConnection) -> None:
        self.s.conn_of[i] = conn
        self.s.sent[i] = now_ns()
        fut = conn.request(self.request)
        fut.add_done_callback(partial(self.on_response, i, conn))

    def on_response(self, i: int, conn: HttpConnection, fut: asyncio.Future[Response]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            self.open -= 1
            if not self.s.finished[i] and self.s.conn_of[i] is conn:
                # A malformed or oversized reply is named as such, not as a closed connection.
                err = f"bad response: {exc}" if isinstance(exc, HttpParseError) \
                    else "connection closed"
                self.finish(i, now_ns(), False, 0, err)
            self.pump()
            return
        done, status, body, keep_alive = fut.result()
        if not self.s.finished[i] and self.s.conn_of[i] is conn:
            self.answered(i, done, status, body)
        if keep_alive and not conn.closed:
            self.release(conn)
        else:
            self.open -= 1
            self.pump()

    @property
    def bodies(self) -> list[str | None]:
        """Each sample's body status (the JSON body's ``status``), None without one."""
        return self.s.body

    def answered(self, i: int, done: int, status: int, body: bytes) -> None:
        """Sample i was answered. Its body is judged (health check) once the series is in
        (`judge_answers`), not now: work between requests, wherever it runs, makes the next
        request read slower on a VM (docs/benchmarks.md), so a request costs as little as
        it can. A body larger than ``JUDGE_NOW_BYTES`` is judged at once, not kept."""
        self.finish(i, done, True, status, None)
        if len(body) > JUDGE_NOW_BYTES:
            self.s.judge(i, body, self.rule)
        else:
            self.s.answer[i] = body

    def on_timeout(self, i: int) -> None:
        if self.s.finished[i]:
            return
        left = self.s.start[i] + self.timeout_ns - now_ns()
        if left > 0:  # armed from the due time; the timeout runs from the wake-up
            self.s.timers[i] = self.loop.call_later(left / 1e9, self.on_timeout, i)
            return
        self.finish(i, now_ns(), False, 0, "timeout")
        conn = self.s.conn_of[i]
        if conn is not None:
            conn.abort()  # its late answer must not be read as the next request's

    def release(self, conn: HttpConnection) -> None:
        while self.waiting:
            i = self.waiting.popleft()
            if not self.s.finished[i]:
                self.send(i, conn)
                return
        self.idle.append(conn)

    def pump(self) -> None:
        """A connection slot freed up: open a connection for the oldest waiting request."""
        while self.waiting and self.open < self.max_connections:
            i = self.waiting.popleft()
            if not self.s.finished[i]:
                self.open += 1
                self.loop.create_task(self.connect_and_send(i))

    def finish(self, i: int, done: int, ok: bool, status: int, error: str | None) -> None:
        s = self.s
        if s.finished[i]:  # a timeout and a failed connect at one instant: the first stands
            return
        s.finished[i] = True
        s.done[i] = done
        if not s.sent[i]:
            s.sent[i] = done  # never sent (no connection): the attempt ended here
        s.ok[i], s.status[i], s.error[i] = ok, status, error
        psi = self.psi.stall_us()
        if psi != UNKNOWN and s.psi0[i] != UNKNOWN:
            s.stall[i] = psi - s.psi0[i]
        timer = s.timers[i]
        if timer is not None:
            timer.cancel()
        s.settle()
        if self.gate[0] == i:
            _open(self.gate[1])

    # --- series -----------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Open one connection and warm it up (failures leave the samples to tell)."""
        try:
            conn = await self.connect(self.settings.engine_timeout_s)
        except Exception as exc:  # samples will retry
            self.connect_error = ("timeout" if isinstance(exc, TimeoutError)
                                  else connect_error_text(exc))
            return
        self.open += 1
        await self.warm_up(conn)
        if conn.closed:
            self.open -= 1
        else:
            self.idle.append(conn)

    async def send_paced(self, count: int, start: int | None = None) -> int:
        """Send ``count`` requests on the paced schedule from ``start`` (default: just after
        now); return the last send's due time. Late wake-ups go to the watch: re-takes are
        decided once the answers are in (engine.py, retake.py)."""
        first = start if start is not None else now_ns() + START_DELAY_NS
        due = first
        for k in range(count):
            due = first + k * self.interval_ns
            woke = await self.take(self.s.new(due), due, settle_by=due + self.interval_ns // 2)
            self.watch.woke(due, woke)
        return due

    async def collect(self, kind: SampleKind = "engine_http") -> SampleBatch:
        """Wait for the answers still out (each request times out on its own), close the
        connections and return the series' samples."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.s.all_done.wait(),
                                   self.settings.engine_timeout_s + 1.0)
        for i, done in enumerate(self.s.finished):  # belt and braces: nothing stays open
            if not done:
                self.finish(i, now_ns(), False, 0, "timeout")
        self.s.judge_answers(self.rule)
        self.close_all()
        return self.s.batch(self.engine.name, kind)

    async def paced(self, count: int, start: int | None = None) -> SampleBatch:
        """A whole paced series: prepare, send, collect."""
        await self.prepare()
        await self.send_paced(count, start)
        return await self.collect()

    async def warm_up(self, conn: HttpConnection) -> None:
        """A few unrecorded GETs on the pre-opened connection, so the first samples measure
        the steady keep-alive path, not cold code paths on either side."""
        for _ in range(WARMUP_REQUESTS):
            try:
                _, _, _, keep_alive = await asyncio.wait_for(
                    conn.request(self.request), self.settings.engine_timeout_s)
            except Exception:  # warm-up failures are not samples; the schedule will tell
                conn.abort()
                return
            if not keep_alive:
                conn.abort()
                return

    def close_all(self) -> None:
        for conn in self.idle:
            conn.abort()
        for used in self.s.conn_of:
            if used is not None:
                used.abort()
        self.idle.clear()
        self.open = 0
        self.waiting.clear()
