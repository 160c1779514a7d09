"""Reading a run back out of the warehouse (for results.json, reports and the CLI)."""

from __future__ import annotations

from typing import Any

import duckdb

from dualbus_pipeline.store.runs import now_utc
from dualbus_pipeline.store.warehouse import STORED


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in (cur.description or [])]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def latest_run_id(con: duckdb.DuckDBPyConnection, *, completed_only: bool = True) -> str | None:
    sql = "SELECT run_id FROM runs " + (f"WHERE {STORED} " if completed_only else "")
    row = con.execute(sql + "ORDER BY started_at DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def run_row(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = _dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
    return rows[0] if rows else None


def list_runs(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT run_id, platform, started_at, finished_at, status, error, overall_grade, "
        "overall_score, overall_result, breaches, excluded FROM runs "
        "ORDER BY started_at DESC LIMIT ?", [limit]))


def run_bundle(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """Every stored fact about one run, as plain rows (no samples: those stay in SQL; only
    their counts, and how many were re-taken)."""
    q = {
        "targets": "SELECT * FROM targets WHERE run_id = ? ORDER BY scope, target",
        "summaries": "SELECT * FROM summaries WHERE run_id = ? ORDER BY scope, target, metric",
        "bus_info": "SELECT bus, metric, value FROM bus_info WHERE run_id = ? ORDER BY 1, 2",
        "streams": "SELECT * FROM stream_stats WHERE run_id = ? ORDER BY bus, engine",
        "slo_results": "SELECT * FROM slo_results WHERE run_id = ? ORDER BY slo, target",
    }
    out: dict[str, Any] = {"run": run_row(con, run_id)}
    for key, sql in q.items():
        out[key] = _dicts(con.execute(sql, [run_id]))
    run = out["run"] or {}
    out["silences"] = _dicts(con.execute(
        "SELECT id, starts_at, ends_at, target, slo, reason FROM silences WHERE starts_at <= "
        "coalesce(?, now()) AND ends_at > ? ORDER BY id",
        [run.get("finished_at"), run.get("started_at")])) if run else []
    out["sample_counts"] = {}
    out["replaced_samples"] = {}
    for kind in ("engine", "bus", "pair"):  # a fixed list: the table name is never user text
        row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE replaced) "
                          f"FROM {kind}_samples WHERE run_id = ?", [run_id]).fetchone()
        assert row is not None
        out["sample_counts"][kind] = int(row[0])
        out["replaced_samples"][kind] = int(row[1])
    return out


def history(con: duckdb.DuckDBPyConnection, *, before_run: str | None, limit: int) -> list[
        dict[str, Any]]:
    """The last `limit` completed runs up to and including `before_run`, oldest first."""
    rows = _dicts(con.execute(
        "SELECT run_id, started_at, overall_grade, overall_score, overall_result, breaches "
        f"FROM runs WHERE {STORED} AND (? IS NULL OR started_at <= "
        "(SELECT started_at FROM runs WHERE run_id = ?)) ORDER BY started_at DESC LIMIT ?",
        [before_run, before_run, limit]))
    return list(reversed(rows))


def store_report(con: duckdb.DuckDBPyConnection, run_id: str, fmt: str, content: str) -> None:
    con.execute("DELETE FROM reports WHERE run_id = ? AND format = ?", [run_id, fmt])
    con.execute("INSERT INTO reports (run_id, format, content, created_at) VALUES (?, ?, ?, ?)",
                [run_id, fmt, content, now_utc()])


def get_report(con: duckdb.DuckDBPyConnection, run_id: str, fmt: str) -> str | None:
    row = con.execute("SELECT content FROM reports WHERE run_id = ? AND format = ?",
                      [run_id, fmt]).fetchone()
    return None if row is None else str(row[0])


def find_run_id(con: duckdb.DuckDBPyConnection, prefix: str) -> list[str]:
    """Run ids starting with `prefix` (users paste short ids)."""
    return [str(r[0]) for r in con.execute(
        "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY started_at DESC",
        [prefix]).fetchall()]
