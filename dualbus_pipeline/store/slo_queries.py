"""Every SQL statement SLO evaluation needs: indicator values, windows, baselines, results.

SQL is built only from catalogue entries (allow-listed tables, columns and aggregate
expressions below); every value — run ids, target names, sample kinds — is bound with `?`.
Functions take the caller's connection, so evaluation runs inside the run's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from dualbus_pipeline.indicators import PERCENTILES, SYSTEM_TARGET, Indicator
from dualbus_pipeline.store.bulk import insert_arrow
from dualbus_pipeline.store.warehouse import STORED

Connection = duckdb.DuckDBPyConnection  # so slospec/ can type its argument without duckdb

_SAMPLE_TABLES = {"engine_samples", "bus_samples", "pair_samples"}
_STREAM_COLUMNS = {"lag", "pending", "lag_ms", "pending_age_ms", "consumed"}


def _agg(aggregate: str, col: str) -> str:
    """SQL for an aggregate over `col` (both from fixed sets, never user text)."""
    assert col in ("s.latency_ms", "v")
    if aggregate in PERCENTILES:
        # quantile_disc is the nearest rank, the definition of probes/stats.py: the SLO value
        # and the report's figure of the same samples are the same number
        return f"quantile_disc({col}, {PERCENTILES[aggregate]!r})"
    return {"mean": f"avg({col})", "min": f"min({col})", "max": f"max({col})",
            "value": f"avg({col})", "rate": f"avg({col})"}[aggregate]


@dataclass(frozen=True)
class Measured:
    """An indicator's value for one target, pooled over runs (run_id None) or for one run.

    good/total: successful/all samples (samples, ratio), operational/all checks
    (availability, status), runs with a value/runs (value, sum).
    """

    run_id: str | None
    target: str
    value: float | None
    good: int
    total: int


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started_at: datetime
    status: str
    excluded: bool


def run_row(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRow | None:
    row = con.execute("SELECT run_id, started_at, status, excluded FROM runs WHERE run_id = ?",
                      [run_id]).fetchone()
    return RunRow(row[0], row[1], row[2], bool(row[3])) if row else None


def run_targets(con: duckdb.DuckDBPyConnection, run_id: str, scope: str,
                table: str | None = None) -> list[str]:
    """The targets measured in the run (from `targets`, so any topology works).

    Stream indicators (consumer lag, pending) apply only where engine streams are declared:
    a bus that carries no engine stream has no lag to judge (not "no data"), while a bus that
    could not be reached is kept, so its missing figures still count against it.
    """
    if scope == "system":
        return [SYSTEM_TARGET]
    if table == "stream_stats" and scope == "bus":
        rows = con.execute(
            "SELECT DISTINCT bus FROM stream_stats WHERE run_id = ? UNION "
            "SELECT target FROM targets WHERE run_id = ? AND scope = 'bus' "
            "AND status = 'unreachable' ORDER BY 1", [run_id, run_id]).fetchall()
        return [r[0] for r in rows]
    rows = con.execute("SELECT target FROM targets WHERE run_id = ? AND scope = ? "
                       "ORDER BY target", [run_id, scope]).fetchall()
    return [r[0] for r in rows]


def window_run_ids(con: duckdb.DuckDBPyConnection, run: RunRow, *, runs: int | None = None,
                   seconds: float | None = None) -> list[str]:
    """The current run plus the completed, non-excluded runs before it inside the window."""
    if runs is not None:
        rows = con.execute(
            f"SELECT run_id FROM runs WHERE {STORED} AND NOT excluded "
            "AND run_id <> ? AND started_at <= ? ORDER BY started_at DESC LIMIT ?",
            [run.run_id, run.started_at, max(runs - 1, 0)]).fetchall()
    else:
        assert seconds is not None
        rows = con.execute(
            f"SELECT run_id FROM runs WHERE {STORED} AND NOT excluded "
            "AND run_id <> ? AND started_at <= ? AND started_at > ? ORDER BY started_at DESC",
            [run.run_id, run.started_at, run.started_at - timedelta(seconds=seconds)]
        ).fetchall()
    return [run.run_id, *(r[0] for r in rows)]


def prior_good_runs(con: duckdb.DuckDBPyConnection, run: RunRow, limit: int) -> list[str]:
    """Completed, non-excluded runs that started before `run`, newest first."""
    rows = con.execute(
        f"SELECT run_id FROM runs WHERE {STORED} AND NOT excluded AND run_id <> ? "
        "AND started_at < ? ORDER BY started_at DESC LIMIT ?",
        [run.run_id, run.started_at, limit]).fetchall()
    return [r[0] for r in rows]


def measure(con: duckdb.DuckDBPyConnection, ind: Indicator, aggregate: str,
            run_ids: Sequence[str], targets: Sequence[str], *,
            per_run: bool = False) -> list[Measured]:
    """The indicator over `run_ids` for `targets`: pooled, or one row per run and target."""
    if not run_ids or not targets:
        return []
    sql, params = _measure_sql(ind, aggregate, per_run)
    rows = con.execute(sql, [*params, list(run_ids), list(targets)]).fetchall()
    return [Measured(run_id=r[1] if per_run else None, target=r[0],
                     value=None if r[2] is None else float(r[2]),
                     good=int(r[3] or 0), total=int(r[4] or 0)) for r in rows]


# A success ratio stays meaningful when the probe ran late or slow (that skews latency, not
# whether requests succeeded); only too few samples makes it "no data".
# A target whose shard failed was not measured (sharding.py): no run of its availability.
_MEASURED = "NOT starts_with(coalesce(status_reason, ''), 'shard failed')"
_RATIO_USABLE = "(m.valid OR NOT starts_with(coalesce(m.invalid_reason, ''), 'too few samples'))"


def _measure_sql(ind: Indicator, aggregate: str, per_run: bool) -> tuple[str, list[Any]]:
    run_col = "run_id" if per_run else "NULL"
    group = "target, run_id" if per_run else "target"
    if ind.kind in ("samples", "ratio"):
        assert ind.table in _SAMPLE_TABLES and ind.sample_kind and ind.metric
        value = (_agg(aggregate, "s.latency_ms") + " FILTER (WHERE s.ok)"
                 if ind.kind == "samples"
                 else "count(*) FILTER (WHERE s.ok)::DOUBLE / count(*)")
        # re-taken samples (the probe host delayed them) are in no figure
        sql = (f"SELECT s.target, {'s.run_id' if per_run else 'NULL'}, {value}, "
               "count(*) FILTER (WHERE s.ok), count(*) "
               f"FROM {ind.table} s JOIN summaries m ON m.run_id = s.run_id "
               "AND m.target = s.target AND m.scope = ? AND m.metric = ? AND "
               f"{'m.valid' if ind.kind == 'samples' else _RATIO_USABLE} "
               "WHERE s.kind = ? AND NOT coalesce(s.replaced, false) "
               "AND list_contains(?, s.run_id) AND list_contains(?, s.target) "
               f"GROUP BY s.target{', s.run_id' if per_run else ''}")
        return sql, [ind.scope, ind.metric, ind.sample_kind]
    if ind.kind in ("status", "availability") and ind.scope == "engine":
        base = ("SELECT run_id, target, CASE WHEN status = 'operational' THEN 1.0 ELSE 0.0 END "
                f"AS v FROM targets WHERE scope = 'engine' AND {_MEASURED} "
                "AND list_contains(?, run_id) AND list_contains(?, target)")
        value = _agg(aggregate, "v") if ind.kind == "status" else "sum(v) / count(*)"
        return (f"SELECT target, {run_col}, {value}, sum(v), count(*) FROM ({base}) "
                f"GROUP BY {group}"), []
    if ind.kind == "availability" and ind.scope == "system":
        base = ("SELECT run_id, ? AS target, count(*) FILTER (WHERE status = 'operational') "
                f"AS good, count(*) AS total FROM targets WHERE scope = 'engine' AND {_MEASURED} "
                "AND list_contains(?, run_id) GROUP BY run_id")
        return (f"SELECT target, {run_col}, sum(good)::DOUBLE / nullif(sum(total), 0), "
                f"sum(good), sum(total) FROM ({base}) WHERE list_contains(?, target) "
                f"GROUP BY {group}"), [SYSTEM_TARGET]
    if ind.kind == "value" and ind.table == "targets":
        assert ind.column == "throughput"
        base = ("SELECT run_id, target, throughput AS v FROM targets WHERE scope = ? "
                "AND list_contains(?, run_id) AND list_contains(?, target)")
        return (f"SELECT target, {run_col}, {_agg(aggregate, 'v')}, count(v), count(*) "
                f"FROM ({base}) GROUP BY {group}"), [ind.scope]
    if ind.kind == "value" and ind.table == "stream_stats":
        assert ind.column in _STREAM_COLUMNS
        key = "bus" if ind.scope == "bus" else "engine"
        # the worst stream of the target; `consumed` is judged on absent streams too (0)
        worst = "min" if ind.direction == "higher" else "max"
        where = "true" if ind.column == "consumed" else "present"
        base = (f"SELECT run_id, {key} AS target, {worst}({ind.column}) AS v FROM stream_stats "
                f"WHERE {where} AND list_contains(?, run_id) AND list_contains(?, {key}) "
                f"GROUP BY run_id, {key}")
        return (f"SELECT target, {run_col}, {_agg(aggregate, 'v')}, count(v), count(*) "
                f"FROM ({base}) GROUP BY {group}"), []
    if ind.kind == "sum":
        assert ind.column == "throughput"
        base = ("SELECT run_id, ? AS target, CASE WHEN count(*) = count(throughput) "
                "THEN sum(throughput) END AS v FROM targets WHERE scope = 'bus' "
                "AND list_contains(?, run_id) GROUP BY run_id")
        return (f"SELECT target, {run_col}, {_agg(aggregate, 'v')}, count(v), count(*) "
                f"FROM ({base}) WHERE list_contains(?, target) GROUP BY {group}"), \
            [SYSTEM_TARGET]
    raise ValueError(f"no query for indicator {ind.name!r}")


def sample_events(con: duckdb.DuckDBPyConnection, ind: Indicator, run_id: str,
                  targets: Sequence[str], *, under: tuple[str, float] | None = None
                  ) -> dict[str, tuple[int, int]]:
    """Per target: (good, total) samples of one run. Good = succeeded, and with `under`
    (op, threshold) answered under the latency line too. Re-taken samples and summaries the
    probe marked inconclusive are left out: they are no event of the target's. With `under`,
    the successes of an invalid summary are left out too (their latency is not trusted), its
    failures are not (a request that failed did, whatever the probe's timing)."""
    assert ind.table in _SAMPLE_TABLES and ind.sample_kind and ind.metric
    good, counted = "s.ok", "true"
    params: list[Any] = []
    if under is not None:
        op, threshold = under
        assert op in ("<", "<=")
        good += f" AND s.latency_ms {op} ? AND coalesce(m.valid, false)"
        counted = "coalesce(m.valid, false) OR NOT s.ok"
        params.append(threshold)
    rows = con.execute(
        f"SELECT s.target, count(*) FILTER (WHERE {good}), count(*) FILTER (WHERE {counted}) "
        f"FROM {ind.table} s "
        "LEFT JOIN summaries m ON m.run_id = s.run_id AND m.target = s.target "
        "AND m.scope = ? AND m.metric = ? WHERE s.run_id = ? AND s.kind = ? "
        "AND NOT coalesce(s.replaced, false) AND NOT coalesce(m.inconclusive, false) "
        "AND list_contains(?, s.target) GROUP BY s.target",
        [*params, ind.scope, ind.metric, run_id, ind.sample_kind, list(targets)]).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def window_events(con: duckdb.DuckDBPyConnection, run: RunRow, slo: str,
                  windows_s: Sequence[float]) -> dict[tuple[str, float], tuple[int, int, int]]:
    """Per (target, window): (runs, good, total) of the SLO's events in the stored,
    non-excluded runs before `run` that started within the window (the run itself is added
    by the caller: its rows are being written in this transaction)."""
    rows = con.execute(
        "SELECT r.target, w.s, count(*), sum(r.good), sum(r.total) FROM slo_results r "
        "JOIN runs u ON u.run_id = r.run_id, (SELECT unnest(?::DOUBLE[]) AS s) w "
        f"WHERE r.slo = ? AND u.{STORED} AND NOT u.excluded AND r.run_id <> ? "
        "AND r.total > 0 AND u.started_at <= ? "
        "AND u.started_at > ? - to_microseconds((w.s * 1e6)::BIGINT) "
        "GROUP BY r.target, w.s",
        [list(windows_s), slo, run.run_id, run.started_at, run.started_at]).fetchall()
    return {(r[0], float(r[1])): (int(r[2]), int(r[3]), int(r[4])) for r in rows}


def summary_states(con: duckdb.DuckDBPyConnection, run_id: str, scope: str,
                   metric: str) -> dict[str, dict[str, Any]]:
    """Per target: count, ok, valid, invalid_reason, inconclusive of one summary (why data may
    be missing, and whether that makes the verdict inconclusive rather than "no data")."""
    rows = con.execute("SELECT target, count, ok, valid, invalid_reason, "
                       "coalesce(inconclusive, false) FROM summaries "
                       "WHERE run_id = ? AND scope = ? AND metric = ?",
                       [run_id, scope, metric]).fetchall()
    return {r[0]: {"count": r[1], "ok": r[2], "valid": r[3], "invalid_reason": r[4],
                   "inconclusive": bool(r[5])} for r in rows}


def stream_states(con: duckdb.DuckDBPyConnection,
                  run_id: str) -> dict[str, list[tuple[str, str, str | None, str | None]]]:
    """Per engine: (stream, group, consumer status, reason) of each stream it consumes."""
    rows = con.execute("SELECT engine, stream, grp, status, coalesce(status_reason, error) "
                       "FROM stream_stats WHERE run_id = ? ORDER BY engine, bus, stream",
                       [run_id]).fetchall()
    out: dict[str, list[tuple[str, str, str | None, str | None]]] = {}
    for engine, stream, group, status, why in rows:
        out.setdefault(engine, []).append((stream, group, status, why))
    return out


def target_states(con: duckdb.DuckDBPyConnection, run_id: str,
                  scope: str) -> dict[str, tuple[str, str | None]]:
    rows = con.execute("SELECT target, status, status_reason FROM targets WHERE run_id = ? "
                       "AND scope = ?", [run_id, scope]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


RESULT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("run_id", pa.string()), ("slo", pa.string()), ("scope", pa.string()),
    ("target", pa.string()), ("indicator", pa.string()), ("aggregate", pa.string()),
    ("value", pa.float64()), ("objective_op", pa.string()), ("objective", pa.float64()),
    ("objective_text", pa.string()), ("baseline", pa.float64()), ("passed", pa.bool_()),
    ("attainment", pa.float64()), ("grade", pa.string()), ("severity", pa.string()),
    ("weight", pa.float64()), ("is_key", pa.bool_()), ("reason", pa.string()),
    ("error_budget_remaining", pa.float64()), ("burn_rate", pa.float64()),
    ("outcome", pa.string()), ("unit", pa.string()), ("direction", pa.string()),
    ("window_text", pa.string()), ("window_runs", pa.int32()), ("samples", pa.int64()),
    ("description", pa.string()), ("good", pa.int64()), ("total", pa.int64()),
    ("sli_target", pa.float64()), ("burn_state", pa.string()), ("burn_text", pa.string()),
    ("slo_kind", pa.string()), ("burn_windows", pa.string()),
)
_RESULT_SCHEMA = pa.schema(list(RESULT_COLUMNS))
_RESULT_NAMES = [c for c, _ in RESULT_COLUMNS]


def write_results(con: duckdb.DuckDBPyConnection, run_id: str,
                  rows: Sequence[dict[str, Any]]) -> None:
    """Replace the run's SLO results (bulk, via Arrow) inside the caller's transaction."""
    con.execute("DELETE FROM slo_results WHERE run_id = ?", [run_id])
    if not rows:
        return
    insert_arrow(con, "slo_results",
                 pa.Table.from_pylist([{c: r.get(c) for c in _RESULT_NAMES} for r in rows],
                                      schema=_RESULT_SCHEMA))


def read_results(con: duckdb.DuckDBPyConnection, run_id: str,
                 slo: str | None = None) -> list[dict[str, Any]]:
    """The run's SLO results as plain dicts (all SLOs, or one), ordered by SLO and target."""
    cols = ", ".join(_RESULT_NAMES)
    sql = f"SELECT {cols} FROM slo_results WHERE run_id = ?"
    params: list[Any] = [run_id]
    if slo is not None:
        sql += " AND slo = ?"
        params.append(slo)
    cur = con.execute(sql + " ORDER BY slo, target", params)
    return [dict(zip(_RESULT_NAMES, r, strict=True)) for r in cur.fetchall()]


def results_by_slo(con: duckdb.DuckDBPyConnection,
                   run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's SLO results grouped by SLO name (one query for every SLO's check)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in read_results(con, run_id):
        out.setdefault(row["slo"], []).append(row)
    return out
