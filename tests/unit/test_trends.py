"""Trend tables and the baseline-vs-current comparison over real DuckDB warehouses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import baselines
from dualbus_pipeline.store.trends import (
    baseline_comparison,
    refresh_trends,
    regressions,
    report_trends,
    system_trend,
    target_trend,
)
from dualbus_pipeline.store.warehouse import Warehouse
from tests.slo_builders import add_run, bus, engine

NOW = datetime(2025, 8, 27, 3, 39, tzinfo=UTC)
P99 = Slo.model_validate({"name": "lat", "scope": "engine", "indicator": "engine.latency_ms",
                          "aggregate": "p99", "objective": {"op": "<", "value": 10}})


def run(wh: Warehouse, run_id: str, hours_ago: float, risk_ms: float, *,
        down: bool = False) -> dict[str, object]:
    engines = [engine("risk", [risk_ms] * 100), engine("ml", [0.3] * 100,
                                                        status="unreachable" if down
                                                        else "operational")]
    add_run(wh, run_id, started_at=NOW - timedelta(hours=hours_ago), engines=engines,
            buses=[bus("md", throughput=3000.0), bus("logic", throughput=3000.0 + hours_ago)],
            slos=[P99])
    with wh.transaction() as con:
        return refresh_trends(con, run_id, baseline_runs=3)


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_timeout_s=1)


def test_points_baseline_delta_and_regression(wh: Warehouse) -> None:
    assert run(wh, "r0", 5, 25.0)["with_baseline"] == 0  # first run: nothing to compare
    for i, v in enumerate([1.0, 2.0, 3.0]):
        run(wh, f"r{i + 1}", 4 - i, v)
    info = run(wh, "cur", 0, 4.0)
    assert info["regressions"] >= 1
    with wh.connect() as con:
        pts = target_trend(con, target="risk", indicator="engine.latency_ms", aggregate="p99")
        regs = regressions(con, "cur")
        ml = next(p for p in target_trend(con, target="ml", aggregate="p99")
                  if p["run_id"] == "cur")
    assert [p["value"] for p in pts] == pytest.approx([25.0, 1.0, 2.0, 3.0, 4.0])
    cur = pts[-1]
    assert cur["baseline"] == pytest.approx(2.0)  # median of the last 3 runs: 1, 2, 3
    assert cur["baseline_source"] == "median of 3 runs"
    assert cur["delta_pct"] == pytest.approx(100.0) and cur["regression"] is True
    assert {(r["target"], r["aggregate"]) for r in regs} >= {("risk", "p99"), ("risk", "p50")}
    assert ml["delta_pct"] == pytest.approx(0.0) and ml["regression"] is False


def test_pinned_and_excluded_baselines(wh: Warehouse) -> None:
    run(wh, "slow", 3, 30.0)
    run(wh, "fast", 2, 1.0)
    with wh.transaction() as con:
        baselines.set_excluded(con, "fast")
    run(wh, "cur", 0, 3.0)
    with wh.connect() as con:
        cur = target_trend(con, target="risk", aggregate="p99")[-1]
    assert cur["baseline"] == pytest.approx(30.0)  # fast is excluded
    assert cur["regression"] is False and cur["delta_pct"] == pytest.approx(-90.0)
    with wh.transaction() as con:
        baselines.pin(con, "fast")
    run(wh, "cur2", -1, 3.0)
    with wh.connect() as con:
        cur2 = target_trend(con, target="risk", aggregate="p99")[-1]
    assert cur2["run_id"] == "cur2" and cur2["baseline"] == pytest.approx(1.0)
    assert cur2["baseline_source"] == "pinned fast" and cur2["regression"] is True


def test_system_trend_and_comparison_factors(wh: Warehouse) -> None:
    run(wh, "before", 10, 25.0, down=True)
    run(wh, "after", 0, 0.43)
    with wh.connect() as con:
        rows = system_trend(con)
        comp = baseline_comparison(con, "after", baseline_runs=3)
        rep = report_trends(con, "after")
    assert [r["run_id"] for r in rows] == ["before", "after"]
    assert rows[0]["availability"] == 0.5 and rows[1]["availability"] == 1.0
    assert rows[1]["combined_throughput_msgs_per_s"] == pytest.approx(6000.0)
    assert rows[1]["overall_grade"] is not None
    m = {x["metric"]: x for x in comp["metrics"]}
    # before: risk 25 ms and ml 0.3 ms → mean 12.65 ms; after: (0.43 + 0.3) / 2 = 0.365 ms
    lat = m["mean_engine_latency_ms"]
    assert lat["baseline"] == pytest.approx(12.65) and lat["current"] == pytest.approx(0.365)
    assert lat["factor"] == pytest.approx(12.65 / 0.365) and lat["improved"] is True
    assert lat["change_pct"] == pytest.approx((0.365 - 12.65) / 12.65 * 100)
    assert m["availability"]["factor"] == pytest.approx(2.0)
    assert comp["baseline"] == {"source": "median of 1 previous runs", "run_ids": ["before"]}
    series = {(s["target"], s["indicator"], s["metric"]): s for s in rep["series"]}
    p99 = series[("risk", "engine.latency_ms", "p99")]
    assert [p["value"] for p in p99["points"]] == pytest.approx([25.0, 0.43])
    assert p99["objective"] == 10.0 and p99["baseline"] == pytest.approx(25.0)
    assert rep["baseline"]["run_ids"] == ["before"]


def test_baseline_command_pin_exclude_show_and_unknown_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dualbus_pipeline.cli import main

    repo = Path(__file__).resolve().parents[2]
    db = tmp_path / "cli.duckdb"
    wh = Warehouse(db, lock_timeout_s=1)
    run(wh, "r1", 1, 0.3)
    common = ["--config", str(repo / "dualbus.yaml"), "--warehouse", str(db)]
    assert main(["baseline", "pin", "r1", *common]) == 0
    assert main(["baseline", "exclude", "r1", *common]) == 0
    assert main(["baseline", "show", *common]) == 0
    out = capsys.readouterr().out
    assert "baseline pinned to run r1" in out and "excluded: r1" in out
    assert "r1" in out.splitlines()[-1] and out.splitlines()[-1].endswith("excluded pinned")
    assert main(["baseline", "pin", "nope", *common]) == 2
    assert capsys.readouterr().err.strip() == \
        "unknown run id 'nope' (see `dualbus baseline show` for recent runs)"
    assert main(["baseline", "include", "r1", *common]) == 0
    with wh.connect() as con:
        assert baselines.show(con)["excluded"] == []


def test_the_regression_threshold_is_the_configured_one(wh: Warehouse) -> None:
    for i, v in enumerate([2.0, 2.0, 2.0]):
        run(wh, f"b{i}", 4 - i, v)
    run(wh, "cur", 0, 2.6)  # +30 %: a regression at the default 20 %, not at 50 %
    with wh.transaction() as con:
        refresh_trends(con, "cur", baseline_runs=3, regression_pct=50.0)
        loose = next(p for p in target_trend(con, target="risk", aggregate="p99")
                     if p["run_id"] == "cur")
        refresh_trends(con, "cur", baseline_runs=1, regression_pct=20.0)
        strict = next(p for p in target_trend(con, target="risk", aggregate="p99")
                      if p["run_id"] == "cur")
    assert loose["delta_pct"] == pytest.approx(30.0) and loose["regression"] is False
    assert strict["regression"] is True and strict["baseline_source"] == "median of 1 runs"
