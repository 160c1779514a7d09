"""Silences (maintenance windows): stored in the warehouse, honoured by alerts and budgets.

A silence covers the SLO × target pairs whose SLO name matches `slo` and whose target matches
`target` (shell globs; NULL matches everything) from `starts_at` to `ends_at`. While one
covers a pair, its alerts change state but send nothing, and its events stay out of the error
budget (docs/alerts.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

import duckdb


@dataclass(frozen=True)
class Silence:
    id: int
    starts_at: datetime
    ends_at: datetime
    target: str | None
    slo: str | None
    reason: str
    created_by: str | None = None

    def covers(self, slo: str, target: str) -> bool:
        return ((self.slo is None or fnmatchcase(slo, self.slo))
                and (self.target is None or fnmatchcase(target, self.target)))

    def describe(self) -> str:
        what = f"SLO {self.slo or '*'} on {self.target or '*'}"
        return (f"#{self.id} {what} from {self.starts_at.isoformat(timespec='minutes')} to "
                f"{self.ends_at.isoformat(timespec='minutes')}: {self.reason}")


_COLS = "id, starts_at, ends_at, target, slo, reason, created_by"


def add(con: duckdb.DuckDBPyConnection, *, starts_at: datetime, ends_at: datetime,
        target: str | None, slo: str | None, reason: str, created_by: str | None,
        now: datetime) -> int:
    row = con.execute(
        "INSERT INTO silences (created_at, starts_at, ends_at, target, slo, reason, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [now, starts_at, ends_at, target, slo, reason, created_by]).fetchone()
    assert row is not None
    return int(row[0])


def end(con: duckdb.DuckDBPyConnection, silence_id: int, now: datetime) -> bool:
    """End a silence now (an upcoming one ends before it starts). False if unknown or over."""
    row = con.execute("UPDATE silences SET ends_at = greatest(starts_at, ?) WHERE id = ? AND "
                      "ends_at > ? RETURNING id", [now, silence_id, now]).fetchone()
    return row is not None


def active(con: duckdb.DuckDBPyConnection, at: datetime) -> list[Silence]:
    rows = con.execute(f"SELECT {_COLS} FROM silences WHERE starts_at <= ? AND ends_at > ? "
                       "ORDER BY id", [at, at]).fetchall()
    return [Silence(*r) for r in rows]


def current_and_upcoming(con: duckdb.DuckDBPyConnection, now: datetime) -> list[Silence]:
    rows = con.execute(f"SELECT {_COLS} FROM silences WHERE ends_at > ? ORDER BY starts_at, id",
                       [now]).fetchall()
    return [Silence(*r) for r in rows]


def covering(silences: Sequence[Silence], slo: str, target: str) -> Silence | None:
    return next((s for s in silences if s.covers(slo, target)), None)
