"""One engine's paced open-loop GETs of ``health_path`` (product.md §4.2): `EngineProber`.

* Open loop: request i is due at ``start + i / engine_rate_per_s`` whatever happened to the
  previous ones. It goes out on an idle keep-alive connection, or a new one (at most
  ``max_connections``); if that cap is reached it waits for a free connection and the wait
  counts, because latency runs from the intended send time (coordinated omission corrected).
  ``service_ms`` (from the actual send) is kept too; the probe's own lateness is taken when
  its timer fired (``dispatch_ns``).
* A request not answered within ``engine_timeout_s`` of its intended send time is a failed
  sample ("timeout") and its connection is dropped, so a dead engine costs about one timeout
  after the schedule ends.
* One connection is opened and warmed with ``WARMUP_REQUESTS`` unrecorded GETs before the
  schedule starts, so samples measure the steady keep-alive state rather than the first TCP
  handshake and cold code paths.

Sample outcome: ok = HTTP 2xx and the body's ``status`` (when the body is a JSON object with
one) is not in ``UNHEALTHY_BODY``. Errors: "refused", "timeout", "connection closed",
"bad response: <why>" (not HTTP, body over 1 MiB, ...), "http 503", "status unhealthy", ...
Scheduling several engines and classifying them: engine.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from array import array
from collections import Counter, deque
from collections.abc import Callable
from functools import partial

from dualbus_pipeline.config import Engine, ProbeSettings
from dualbus_pipeline.probes.http import HttpConnection, HttpParseError, Response, build_get
from dualbus_pipeline.probes.model import SampleBatch
from dualbus_pipeline.probes.resp import connect_error_text
from dualbus_pipeline.probes.timing import async_sleep_until_ns, now_ns

UNHEALTHY_BODY = frozenset({"unhealthy", "down", "error", "failed", "fail", "critical",
                            "unavailable"})
DEGRADED_BODY = frozenset({"degraded", "warning", "warn"})
START_DELAY_NS = 2_000_000
# the next engine of a slot connects and warms up this long before its predecessor's last send
# (measured: 15-23 ms at the median, 32-47 ms at p90 from one engine's end to the next's start)
HANDOVER_LEAD_NS = 50_000_000
WARMUP_REQUESTS = 3


def _body_status(body: bytes) -> str | None:
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    status = doc.get("status") if isinstance(doc, dict) else None
    return str(status).lower() if status is not None else None


class EngineProber:
    def __init__(self, engine: Engine, settings: ProbeSettings,
                 max_connections: int | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.max_connections = max_connections or settings.engine_max_connections
        self.loop = asyncio.get_running_loop()
        self.request = build_get(engine.host, engine.port, engine.health_path)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if engine.url.startswith("https://") else None)
        n = settings.engine_requests
        self.n = n
        self.timeout_ns = int(settings.engine_timeout_s * 1e9)
        self.intended = array("q", [0]) * n
        self.sent = array("q", [0]) * n
        self.dispatched = array("q", [0]) * n
        self.done = array("q", [0]) * n
        self.ok = array("b", [0]) * n
        self.status = array("i", [0]) * n
        self.error: list[str | None] = [None] * n
        self.finished = [False] * n
        self.timers: list[asyncio.TimerHandle | None] = [None] * n
        self.conn_of: list[HttpConnection | None] = [None] * n
        self.left = n
        self.all_done = asyncio.Event()
        self.idle: list[HttpConnection] = []
        self.open = 0
        self.waiting: deque[int] = deque()
        self.connected_any = False
        self.connect_error: str | None = None
        self.bodies: Counter[str] = Counter()

    def _factory(self) -> HttpConnection:
        return HttpConnection(now_ns)

    async def connect(self, timeout_s: float) -> HttpConnection:
        _, proto = await asyncio.wait_for(
            self.loop.create_connection(self._factory, self.engine.host, self.engine.port,
                                        ssl=self.ssl), timeout_s)
        self.connected_any = True
        return proto

    # --- one sample -------------------------------------------------------------------------
    def dispatch(self, i: int) -> None:
        self.dispatched[i] = now_ns()
        self.timers[i] = self.loop.call_at(
            self.loop.time() + (self.intended[i] + self.timeout_ns - now_ns()) / 1e9,
            self.on_timeout, i)
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                self.open -= 1
                continue
            self.send(i, conn)
            return
        if self.open < self.max_connections:
            self.open += 1
            self.loop.create_task(self.connect_and_send(i))
        else:
            self.waiting.append(i)

    async def connect_and_send(self, i: int) -> None:
        remaining = (self.intended[i] + self.timeout_ns - now_ns()) / 1e9
        try:
            conn = await self.connect(max(remaining, 0.001))
        except Exception as exc:  # a failed sample
            self.open -= 1
            err = "timeout" if isinstance(exc, TimeoutError) else connect_error_text(exc)
            self.connect_error = err
            self.finish(i, now_ns(), False, 0, err)
            self.pump()
            return
        if self.finished[i]:
            self.release(conn)
        else:
            self.send(i, conn)

    def send(self, i: int, conn: HttpConnection) -> None:
        self.conn_of[i] = conn
        self.sent[i] = now_ns()
        fut = conn.request(self.request)
        fut.add_done_callback(partial(self.on_response, i, conn))

    def on_response(self, i: int, conn: HttpConnection, fut: asyncio.Future[Response]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            self.open -= 1
            if not self.finished[i]:
                # A malformed or oversized reply is named as such, not as a closed connection.
                err = f"bad response: {exc}" if isinstance(exc, HttpParseError) \
                    else "connection closed"
                self.finish(i, now_ns(), False, 0, err)
            self.pump()
            return
        done, status, body, keep_alive = fut.result()
        if not self.finished[i]:
            body_status = _body_status(body)
            if body_status is not None:
                self.bodies[body_status] += 1
            if not 200 <= status < 300:
                self.finish(i, done, False, status, f"http {status}")
            elif body_status in UNHEALTHY_BODY:
                self.finish(i, done, False, status, f"status {body_status}")
            else:
                self.finish(i, done, True, status, None)
        if keep_alive and not conn.closed:
            self.release(conn)
        else:
            self.open -= 1
            self.pump()

    def on_timeout(self, i: int) -> None:
        if self.finished[i]:
            return
        self.finish(i, now_ns(), False, 0, "timeout")
        conn = self.conn_of[i]
        if conn is not None:
            conn.abort()  # its late answer must not be read as the next request's

    def release(self, conn: HttpConnection) -> None:
        while self.waiting:
            i = self.waiting.popleft()
            if not self.finished[i]:
                self.send(i, conn)
                return
        self.idle.append(conn)

    def pump(self) -> None:
        """A connection slot freed up: open a connection for the oldest waiting request."""
        while self.waiting and self.open < self.max_connections:
            i = self.waiting.popleft()
            if not self.finished[i]:
                self.open += 1
                self.loop.create_task(self.connect_and_send(i))

    def finish(self, i: int, done: int, ok: bool, status: int, error: str | None) -> None:
        self.finished[i] = True
        self.done[i] = done
        if not self.sent[i]:
            self.sent[i] = done  # never sent (no connection): the attempt ended here
        self.ok[i] = ok
        self.status[i] = status
        self.error[i] = error
        timer = self.timers[i]
        if timer is not None:
            timer.cancel()
        self.left -= 1
        if self.left == 0:
            self.all_done.set()

    # --- the run ----------------------------------------------------------------------------
    async def run(self, start_for: Callable[[], int] | None = None,
                  handover: Callable[[int], None] | None = None) -> SampleBatch:
        """Warm up, send the paced schedule (starting at ``start_for()``), wait for the last
        answers. ``handover(last_intended_ns)`` is called once, ``HANDOVER_LEAD_NS`` before
        the last send is due (or at once for a shorter schedule): the caller may then prepare
        the engine that follows this one."""
        s = self.settings
        try:
            conn = await self.connect(s.engine_timeout_s)
        except Exception as exc:  # samples will retry
            self.connect_error = ("timeout" if isinstance(exc, TimeoutError)
                                  else connect_error_text(exc))
        else:
            self.open += 1
            await self.warm_up(conn)
            if conn.closed:
                self.open -= 1
            else:
                self.idle.append(conn)
        interval = 1e9 / s.engine_rate_per_s
        start = start_for() if start_for is not None else now_ns() + START_DELAY_NS
        for i in range(self.n):
            self.intended[i] = start + int(i * interval)
        last = self.intended[self.n - 1] if self.n else now_ns()
        for i in range(self.n):
            if handover is not None and last - self.intended[i] <= HANDOVER_LEAD_NS:
                handover(last)
                handover = None
            await async_sleep_until_ns(self.intended[i])
            self.dispatch(i)
        if handover is not None:
            handover(last)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), s.engine_timeout_s + 1.0)
        for i in range(self.n):  # belt and braces: nothing may stay unfinished
            if not self.finished[i]:
                self.finish(i, now_ns(), False, 0, "timeout")
        self.close_all()
        batch = SampleBatch(target=self.engine.name, kind="engine_http",
                            intended_ns=self.intended, sent_ns=self.sent, done_ns=self.done,
                            ok=self.ok, status=self.status, error=self.error,
                            dispatch_ns=self.dispatched)
        return batch

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
        for used in self.conn_of:
            if used is not None:
                used.abort()
        self.idle.clear()

    async def capacity(self) -> float | None:
        """Closed-loop requests on C connections for T seconds: completed 2xx per second."""
        cap = self.settings.engine_capacity
        timeout = self.settings.engine_timeout_s
        completed = 0
        deadline = now_ns() + int(cap.duration_s * 1e9)

        async def worker() -> None:
            nonlocal completed
            try:
                conn = await self.connect(timeout)
            except Exception:  # no capacity from this worker
                return
            try:
                while now_ns() < deadline and not conn.closed:
                    _, status, _, keep_alive = await asyncio.wait_for(
                        conn.request(self.request), timeout)
                    if 200 <= status < 300:
                        completed += 1
                    if not keep_alive:
                        break
            except Exception:  # the burst ends for this worker
                pass
            finally:
                conn.abort()

        t0 = now_ns()
        await asyncio.gather(*(worker() for _ in range(cap.connections)))
        elapsed = (now_ns() - t0) / 1e9
        return completed / elapsed if completed and elapsed > 0 else None
