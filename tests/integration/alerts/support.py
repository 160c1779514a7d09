"""Alert test support: a real HTTP server capturing Apprise json:// posts, and helpers that
write `runs`/`slo_results` rows into a real DuckDB warehouse to drive runs."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from dualbus_pipeline.config import Alerting, AlertSink, Bus, Topology
from dualbus_pipeline.store import Warehouse

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    json: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.json["title"])


@dataclass
class CaptureSink:
    """An aiohttp server on its own loop in a background thread; records every POST, and
    every request under /ping (a heartbeat endpoint, healthchecks.io-style) in `pings`."""

    port: int
    posts: list[Post] = field(default_factory=list)
    pings: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, body
    status: int = 200
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook", *, userinfo: str = "", query: str = "") -> str:
        auth = f"{userinfo}@" if userinfo else ""
        return f"json://{auth}127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def ping_url(self, path: str = "/ping/3f1c9a") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path.startswith("/ping"):
            self.pings.append((request.method, request.path, await request.text()))
            return web.Response(text="OK", status=self.status)
        body = await request.json()
        self.posts.append(Post(request.path, dict(request.headers), body))
        return web.json_response({"ok": self.status < 400}, status=self.status)

    def start(self) -> CaptureSink:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def boot() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(boot())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert ready.wait(5), "capture server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop = self._thread = None

    def titles(self, path: str | None = None) -> list[str]:
        return [p.title for p in self.posts if path is None or p.path == path]


def topology(sinks: list[AlertSink] | list[str], *, remind_every: str = "4h", for_runs: int = 1,
             schedule: str = "*/15 * * * *", deadman: bool = True,
             outbox_expiry: str = "24h", inconclusive_runs: int = 3,
             heartbeat_url: str | None = None, heartbeat_method: str = "GET",
             keep_firing_for: int = 1, group_by: str = "run") -> Topology:
    return Topology(
        platform="Testplat", buses=[Bus(name="bus", url="redis://127.0.0.1:1/0")],
        schedule=schedule,
        alerts=[s if isinstance(s, AlertSink) else AlertSink(url=s) for s in sinks],
        alerting=Alerting(remind_every=remind_every, for_runs=for_runs, deadman=deadman,
                          outbox_expiry=outbox_expiry, inconclusive_runs=inconclusive_runs,
                          heartbeat_url=heartbeat_url, keep_firing_for=keep_firing_for,
                          group_by=group_by,
                          heartbeat_method=heartbeat_method))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Result:
    """One slo_results row. `outcome` None writes what rows stored before outcomes existed
    looked like (NULL: the verdict is read from passed, grade and reason)."""

    slo: str
    target: str
    passed: bool | None
    value: float | None = 12.5
    severity: str = "error"
    grade: str | None = None
    reason: str | None = None
    objective_text: str = "< 10"
    outcome: str | None = None

    def row(self, run_id: str) -> list[Any]:
        grade = self.grade if self.grade is not None or self.reason else (
            "A" if self.passed else "F")
        return [run_id, self.slo, "engine", self.target, "engine.latency_ms", "p99", self.value,
                "<", 10.0, self.objective_text, None, self.passed, None, grade, self.severity,
                1.0, False, self.reason, None, None, self.outcome]


_SLO_COLS = ("run_id", "slo", "scope", "target", "indicator", "aggregate", "value",
             "objective_op", "objective", "objective_text", "baseline", "passed", "attainment",
             "grade", "severity", "weight", "is_key", "reason", "error_budget_remaining",
             "burn_rate", "outcome")


def record_run(wh: Warehouse, run_id: str, results: list[Result], *,
               at: datetime = T0, status: str = "completed") -> None:
    """What the pipeline writes for a run: its `runs` row and its `slo_results`."""
    with wh.transaction() as con:
        con.execute("INSERT INTO runs (run_id, platform, started_at, finished_at, status) "
                    "VALUES (?, 'Testplat', ?, ?, ?)",
                    [run_id, at - timedelta(seconds=5), at if status == "completed" else None,
                     status])
        for r in results:
            con.execute(f"INSERT INTO slo_results ({', '.join(_SLO_COLS)}) VALUES "
                        f"({', '.join('?' * len(_SLO_COLS))})", r.row(run_id))


def rows(wh: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with wh.connect() as con:
        return con.execute(sql, params or []).fetchall()
