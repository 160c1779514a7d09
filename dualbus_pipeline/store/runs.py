"""Writing a run: the `runs` row lifecycle and bulk loads of samples and summaries via Arrow.

Lifecycle: `begin_run` records status 'running' (own short transaction); `store_measurements`
writes every sample, summary and target row inside the caller's transaction, which also
writes the SLO verdicts and flips the row to 'evaluated' (`mark_evaluated`). The report and
the alerts then each record that they are done (`mark_stage_done`); the second of them flips
the row to 'completed'. A run that fails before its verdicts are stored is marked 'failed'
with its reason, one that fails after is 'partial' (its data stands; the reason says what is
missing); one that was killed is found 'running' with a dead PID and marked 'aborted' by the
next writer. No sample row exists for a run that did not reach 'evaluated'.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import pyarrow as pa

from dualbus_pipeline.probes.model import (
    BusResult,
    EngineResult,
    PairResult,
)
from dualbus_pipeline.store.bulk import insert_arrow
from dualbus_pipeline.store.tables import (
    MEASUREMENT_TABLES,
    SAMPLE_DERIVED,
    SAMPLE_TABLES,
    default_vantage,
    measurement_tables,
)
from dualbus_pipeline.store.warehouse import Warehouse

SAMPLE_COLUMNS = ("run_id", "target", "kind", "seq", "intended_ns", "start_ns", "sent_ns",
                  "done_ns", "latency_ms", "service_ms", "ok", "status", "error", "replaced",
                  "stall_us")


def now_utc() -> datetime:
    return datetime.now(UTC)


_begun: set[tuple[str, str]] = set()


def run_begun(wh: Warehouse, run_id: str) -> bool:
    """Whether this process already recorded the run's start (begin_run is then a no-op)."""
    return (str(wh.path), run_id) in _begun


def begin_run(wh: Warehouse, run_id: str, platform: str, *, config_path: str | None = None,
              topology: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None,
              started_at: datetime | None = None) -> None:
    """Record that a run started (idempotent; once per process and run costs one
    transaction), and mark runs whose writer died as aborted."""
    if run_begun(wh, run_id):
        return
    with wh.transaction() as con:
        _mark_dead_runs_aborted(con)
        exists = con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if not exists:
            con.execute(
                "INSERT INTO runs (run_id, platform, started_at, status, pid, config_path, "
                "topology, settings) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                [run_id, platform, started_at or now_utc(), os.getpid(), config_path,
                 json.dumps(topology or {}), json.dumps(settings or {})])
    _begun.add((str(wh.path), run_id))


def _mark_dead_runs_aborted(con: duckdb.DuckDBPyConnection) -> None:
    """Runs whose writer died: 'aborted' before their verdicts were stored, 'partial' after
    (their data stands; the report or alerts never came)."""
    rows = con.execute("SELECT run_id, pid, status FROM runs "
                       "WHERE status IN ('running', 'evaluated')").fetchall()
    for run_id, pid, status in rows:
        if pid is None or not _pid_alive(int(pid)):
            if status == "running":
                con.execute("UPDATE runs SET status = 'aborted', finished_at = ?, error = "
                            "'the run stopped before completing (process killed or crashed)' "
                            "WHERE run_id = ?", [now_utc(), run_id])
            else:
                con.execute("UPDATE runs SET status = 'partial', error = 'the run stopped "
                            "after its verdicts were stored (process killed or crashed): "
                            "report or alerts missing' WHERE run_id = ?", [run_id])


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_run(wh: Warehouse, run_id: str, error: str) -> str | None:
    """Record why a run failed: 'failed' before its verdicts were stored, 'partial' after
    (its data stands; the report or alerts are missing). Returns the status set, or None
    when the run was already finished (or unknown)."""
    with wh.transaction() as con:
        row = con.execute("UPDATE runs SET status = CASE status WHEN 'running' THEN 'failed' "
                          "ELSE 'partial' END, finished_at = ?, error = ? WHERE run_id = ? "
                          "AND status IN ('running', 'evaluated') RETURNING status",
                          [now_utc(), error[:2000], run_id]).fetchone()
    return None if row is None else str(row[0])


def mark_evaluated(con: duckdb.DuckDBPyConnection, run_id: str, *, settings: dict[str, Any],
                   overall: dict[str, Any], probe_cpu_s: float | None = None) -> None:
    """The run's samples and verdicts are stored (same transaction as they are)."""
    con.execute(
        "UPDATE runs SET status = 'evaluated', finished_at = ?, settings = ?, "
        "overall_grade = ?, overall_score = ?, overall_passed = ?, overall_result = ?, "
        "breaches = ?, probe_cpu_s = ? WHERE run_id = ?",
        [now_utc(), json.dumps(settings), overall.get("grade"), overall.get("score"),
         overall.get("passed"), overall.get("result"), overall.get("breaches"), probe_cpu_s,
         run_id])


def mark_stage_done(con: duckdb.DuckDBPyConnection, run_id: str,
                    stage: Literal["report", "alerts"]) -> bool:
    """Record that the run's report or its alerts are done; the run becomes 'completed' when
    both are (whichever finishes second flips it). True when this call completed the run."""
    column = {"report": "report_at", "alerts": "alerts_at"}[stage]
    now = now_utc()
    con.execute(f"UPDATE runs SET {column} = ? WHERE run_id = ?", [now, run_id])
    row = con.execute(
        "UPDATE runs SET status = 'completed', finished_at = ? WHERE run_id = ? "
        "AND status = 'evaluated' AND report_at IS NOT NULL AND alerts_at IS NOT NULL "
        "RETURNING run_id", [now, run_id]).fetchone()
    return row is not None


def store_measurements(con: duckdb.DuckDBPyConnection, run_id: str, buses: list[BusResult],
                       engines: list[EngineResult], pairs: list[PairResult],
                       vantage: str | None = None) -> int:
    """Bulk-load one run's measurements inside the caller's transaction; returns sample count.
    ``vantage``: where they were measured from (default: this host's name)."""
    return store_tables(con, run_id, measurement_tables(run_id, buses, engines, pairs,
                                                        vantage or default_vantage()))


def store_tables(con: duckdb.DuckDBPyConnection, run_id: str,
                 tables: dict[str, pa.Table]) -> int:
    """Bulk-load a run's tables (``measurement_tables``, or every shard's concatenated: see
    handoff.py) inside the caller's transaction, replacing any earlier load of the run;
    returns the sample count."""
    for table in MEASUREMENT_TABLES:
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])  # re-materialization
    for name in MEASUREMENT_TABLES:
        data = tables.get(name)
        if data is not None:
            insert_arrow(con, name, data,
                         derived=SAMPLE_DERIVED if name in SAMPLE_TABLES else None)
    return sum(tables[t].num_rows for t in SAMPLE_TABLES if t in tables)
