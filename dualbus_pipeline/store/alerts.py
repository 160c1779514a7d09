"""Every statement about alerts: state rows, transition events, the notification outbox.

Tables (warehouse/migrations/001_initial.sql): `alerts` (one row per (slo, target)),
`alert_events` (append-only transitions), `outbox` (every notification per sink until it is
delivered or expires). Callers pass a connection from `Warehouse.transaction()` so a state
change and the notifications it causes commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from dualbus_pipeline.store.bulk import insert_arrow

ACTIVE_OUTBOX = "delivered_at IS NULL AND expired_at IS NULL"


@dataclass(frozen=True)
class AlertRow:
    slo: str
    target: str
    state: str  # pending | firing | resolved
    severity: str
    consecutive_breaches: int = 0
    first_breach_run: str | None = None
    last_run: str | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    value: float | None = None
    objective_text: str | None = None
    grade: str | None = None
    consecutive_passes: int = 0  # passing runs in a row while firing (keep_firing_for)


_ALERT_COLS = ("slo", "target", "state", "severity", "consecutive_breaches", "first_breach_run",
               "last_run", "fired_at", "resolved_at", "last_notified_at", "value",
               "objective_text", "grade", "consecutive_passes")
_TS = pa.timestamp("us", tz="UTC")
_ALERT_TYPES = {"consecutive_breaches": pa.int32(), "fired_at": _TS, "resolved_at": _TS,
                "last_notified_at": _TS, "value": pa.float64(),
                "consecutive_passes": pa.int32()}


@dataclass(frozen=True)
class AlertEvent:
    event_at: datetime
    run_id: str | None
    slo: str
    target: str
    transition: str
    detail: str | None = None


_EVENT_COLS = ("event_at", "run_id", "slo", "target", "transition", "detail")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    created_at: datetime
    run_id: str | None
    slo: str | None
    target: str | None
    kind: str
    sink: str
    sink_index: int
    title: str
    body: str
    notify_type: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    expired_at: datetime | None
    last_error: str | None


_OUTBOX_COLS = ("id", "created_at", "run_id", "slo", "target", "kind", "sink", "sink_index",
                "title", "body", "notify_type", "attempts", "next_attempt_at", "delivered_at",
                "expired_at", "last_error")


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in (cur.description or [])]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def run_verdicts(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT slo, scope, target, indicator, value, objective_text, passed, grade, severity, "
        "reason, outcome, burn_state, burn_text, burn_rate, error_budget_remaining "
        "FROM slo_results WHERE run_id = ? ORDER BY slo, target", [run_id]))


def load_alerts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], AlertRow]:
    cols = ", ".join(_ALERT_COLS)
    rows = con.execute(f"SELECT {cols} FROM alerts").fetchall()
    return {(r[0], r[1]): _alert(r) for r in rows}


def load_alert(con: duckdb.DuckDBPyConnection, slo: str, target: str) -> AlertRow | None:
    cols = ", ".join(_ALERT_COLS)
    r = con.execute(f"SELECT {cols} FROM alerts WHERE slo = ? AND target = ?",
                    [slo, target]).fetchone()
    return None if r is None else _alert(r)


def _alert(r: tuple[Any, ...]) -> AlertRow:
    fields = dict(zip(_ALERT_COLS, r, strict=True))
    fields["consecutive_passes"] = fields["consecutive_passes"] or 0  # rows from before v7
    return AlertRow(**fields)


def save_alerts(con: duckdb.DuckDBPyConnection, rows: Sequence[AlertRow]) -> None:
    """Upsert alert rows (keyed on (slo, target)) in one statement."""
    insert_arrow(con, "alerts", _columns(rows, _ALERT_COLS, _ALERT_TYPES), replace=True)


def save_alert(con: duckdb.DuckDBPyConnection, a: AlertRow) -> None:
    save_alerts(con, [a])


def add_events(con: duckdb.DuckDBPyConnection, events: Sequence[AlertEvent]) -> None:
    """Append transition events in one statement."""
    insert_arrow(con, "alert_events", _columns(events, _EVENT_COLS, {"event_at": _TS}))


def add_event(con: duckdb.DuckDBPyConnection, *, at: datetime, run_id: str | None, slo: str,
              target: str, transition: str, detail: str | None = None) -> None:
    add_events(con, [AlertEvent(at, run_id, slo, target, transition, detail)])


def last_event_detail(con: duckdb.DuckDBPyConnection, slo: str, target: str) -> str | None:
    """The detail of the newest event of one alert other than its resolve (for a pipeline
    failure: the error of the last failed run)."""
    row = con.execute("SELECT detail FROM alert_events WHERE slo = ? AND target = ? AND "
                      "transition <> 'resolved' ORDER BY event_at DESC LIMIT 1",
                      [slo, target]).fetchone()
    return None if row is None else row[0]


def _columns(rows: Sequence[Any], cols: tuple[str, ...],
             types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({c: pa.array([getattr(r, c) for r in rows], type=types.get(c, pa.string()))
                     for c in cols})


def enqueue(con: duckdb.DuckDBPyConnection, *, at: datetime, run_id: str | None,
            slo: str | None, target: str | None, kind: str, sink: str, sink_index: int,
            title: str, body: str, notify_type: str) -> int:
    row = con.execute(
        "INSERT INTO outbox (created_at, run_id, slo, target, kind, sink, sink_index, title, "
        "body, notify_type, attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
        " RETURNING id",
        [at, run_id, slo, target, kind, sink, sink_index, title, body, notify_type, at]
    ).fetchone()
    assert row is not None
    return int(row[0])


def expire_outbox(con: duckdb.DuckDBPyConnection, *, created_before: datetime,
                  now: datetime) -> int:
    row = con.execute(
        f"UPDATE outbox SET expired_at = ?, last_error = coalesce(last_error, "
        f"'expired before delivery') WHERE {ACTIVE_OUTBOX} AND created_at < ? RETURNING id",
        [now, created_before]).fetchall()
    return len(row)


def undelivered(con: duckdb.DuckDBPyConnection) -> list[OutboxRow]:
    """Rows still to deliver, oldest first (per sink order matters: FIRING before RESOLVED)."""
    cols = ", ".join(_OUTBOX_COLS)
    return [OutboxRow(*r) for r in con.execute(
        f"SELECT {cols} FROM outbox WHERE {ACTIVE_OUTBOX} ORDER BY id").fetchall()]


def hold(con: duckdb.DuckDBPyConnection, ids: list[int], until: datetime) -> None:
    """Claim rows for delivery: another dispatcher skips them until `until`."""
    for i in ids:
        con.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", [until, i])


def mark_delivered(con: duckdb.DuckDBPyConnection, outbox_id: int, *, attempts: int,
                   at: datetime) -> None:
    con.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + ?, "
                "next_attempt_at = NULL WHERE id = ?", [at, attempts, outbox_id])


def mark_failed(con: duckdb.DuckDBPyConnection, outbox_id: int, *, attempts: int,
                next_attempt_at: datetime, error: str | None) -> None:
    con.execute("UPDATE outbox SET attempts = attempts + ?, next_attempt_at = ?, "
                "last_error = coalesce(?, last_error) WHERE id = ?",
                [attempts, next_attempt_at, error, outbox_id])


def mark_expired(con: duckdb.DuckDBPyConnection, outbox_id: int, *, at: datetime,
                 error: str) -> None:
    con.execute("UPDATE outbox SET expired_at = ?, last_error = ? WHERE id = ?",
                [at, error, outbox_id])


def count_undelivered(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT count(*) FROM outbox WHERE {ACTIVE_OUTBOX}").fetchone()
    return int(row[0]) if row else 0


def last_completed_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute("SELECT max(coalesce(finished_at, started_at)) FROM runs "
                      "WHERE status = 'completed'").fetchone()
    return None if row is None or row[0] is None else row[0]


def first_run_started_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute("SELECT min(started_at) FROM runs").fetchone()
    return None if row is None or row[0] is None else row[0]


def list_alerts(con: duckdb.DuckDBPyConnection, state: str | None) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT slo, target, state, severity, consecutive_breaches, fired_at, resolved_at, "
        "last_notified_at, last_run, value, objective_text, grade FROM alerts "
        "WHERE ? IS NULL OR state = ? ORDER BY CASE state WHEN 'firing' THEN 0 "
        "WHEN 'pending' THEN 1 ELSE 2 END, severity DESC, slo, target", [state, state]))


def latest_deliveries(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per (slo, target, sink) and alert kind (breach, or inconclusive: kinds starting with
    'inconclusive', alerts/state.py): the most recent notification and how it went."""
    return _dicts(con.execute(
        "SELECT slo, target, sink, kind, created_at, attempts, delivered_at, expired_at, "
        "next_attempt_at, last_error FROM (SELECT *, row_number() OVER (PARTITION BY slo, "
        "target, sink_index, starts_with(kind, 'inconclusive') ORDER BY id DESC) AS rn "
        "FROM outbox WHERE slo IS NOT NULL) WHERE rn = 1 ORDER BY slo, target, sink"))


def outbox_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    row = con.execute(
        "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), "
        f"count(*) FILTER (WHERE {ACTIVE_OUTBOX}), "
        "count(*) FILTER (WHERE expired_at IS NOT NULL) FROM outbox").fetchone()
    assert row is not None
    return {"delivered": int(row[0]), "pending": int(row[1]), "expired": int(row[2])}


def undelivered_rows(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT id, created_at, kind, slo, target, sink, attempts, next_attempt_at, "
        f"last_error FROM outbox WHERE {ACTIVE_OUTBOX} ORDER BY id LIMIT ?", [limit]))
