"""Baseline control: pin a run as the baseline, exclude runs from baselines and windows.

Rules (docs/slos.md): the baseline of a relative objective or a trend is the latest pinned
run if there is one, else the median of the last N good runs before the run (verdicts stored,
not excluded). Excluded runs are also left out of SLO windows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from dualbus_pipeline.errors import InputError


def _require_run(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise InputError(f"unknown run id {run_id!r} (see `dualbus baseline show` for "
                         "recent runs)")
    return str(row[0])


def pin(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    status = _require_run(con, run_id)
    if status not in ("evaluated", "partial", "completed"):
        raise InputError(f"run {run_id!r} is {status}; only a run whose verdicts were stored "
                         "can be the baseline")
    con.execute("INSERT INTO baseline_pins (pinned_at, run_id) VALUES (?, ?)",
                [datetime.now(UTC), run_id])


def unpin(con: duckdb.DuckDBPyConnection) -> int:
    """Remove every pin (baselines fall back to the median of recent runs)."""
    row = con.execute("SELECT count(*) FROM baseline_pins").fetchone()
    con.execute("DELETE FROM baseline_pins")
    return int(row[0]) if row else 0


def set_excluded(con: duckdb.DuckDBPyConnection, run_id: str, excluded: bool = True) -> None:
    _require_run(con, run_id)
    con.execute("UPDATE runs SET excluded = ? WHERE run_id = ?", [excluded, run_id])


def pinned_run(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT run_id FROM baseline_pins ORDER BY pinned_at DESC LIMIT 1"
                      ).fetchone()
    return str(row[0]) if row else None


def show(con: duckdb.DuckDBPyConnection, limit: int = 20) -> dict[str, Any]:
    """The pin, excluded runs and the most recent runs, as plain data."""
    runs = con.execute(
        "SELECT run_id, started_at, status, excluded, overall_grade, overall_score "
        "FROM runs ORDER BY started_at DESC LIMIT ?", [limit]).fetchall()
    excluded = con.execute("SELECT run_id FROM runs WHERE excluded ORDER BY started_at"
                           ).fetchall()
    return {
        "pinned": pinned_run(con),
        "excluded": [r[0] for r in excluded],
        "recent": [{"run_id": r[0], "started_at": r[1], "status": r[2], "excluded": r[3],
                    "grade": r[4], "score": r[5]} for r in runs],
    }
