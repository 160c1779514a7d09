"""Monthly compliance over a stored history (real DuckDB): attainment from events where an SLO
has a budget, from verdicts where it has not; the table in the report and from the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.compliance import monthly_compliance
from tests.slo_builders import add_run, bus, engine

P99 = Slo.model_validate({"name": "lat", "scope": "engine", "indicator": "engine.latency_ms",
                          "aggregate": "p99", "objective": {"op": "<", "value": 10}})
TPUT = Slo.model_validate({"name": "tput", "scope": "bus",
                           "indicator": "bus.throughput_msgs_per_s", "aggregate": "value",
                           "objective": {"op": ">", "value": 1000}})


def history(wh: Warehouse) -> None:
    """January: two runs, 2 of 200 requests over 10 ms, throughput met once of twice.
    February: one run, 5 of 100 over, throughput met."""
    runs = [(datetime(2026, 1, 10, tzinfo=UTC), 1, 3000.0),
            (datetime(2026, 1, 20, tzinfo=UTC), 1, 500.0),
            (datetime(2026, 2, 3, tzinfo=UTC), 5, 3000.0)]
    for i, (at, slow, tput) in enumerate(runs):
        add_run(wh, f"r{i}", started_at=at, slos=[P99, TPUT],
                engines=[engine("risk", [0.3] * (100 - slow) + [30.0] * slow)],
                buses=[bus("md", throughput=tput)])


def test_attainment_and_budget_per_month(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    history(wh)
    with wh.connect() as con:
        rows = {(r["month"], r["slo"]): r for r in monthly_compliance(con)}
        only_jan = monthly_compliance(con, until=datetime(2026, 1, 31, tzinfo=UTC))
    jan = rows[("2026-01", "lat")]
    assert (jan["runs"], jan["basis"], jan["good"], jan["total"]) == (2, "events", 198, 200)
    assert jan["attainment"] == pytest.approx(0.99)
    assert jan["budget_used"] == pytest.approx(1.0)  # 1 % bad against a 1 % budget
    feb = rows[("2026-02", "lat")]
    assert feb["attainment"] == pytest.approx(0.95) and feb["budget_used"] == pytest.approx(5)
    tput = rows[("2026-01", "tput")]  # no budget: the share of verdicts that passed
    assert (tput["basis"], tput["attainment"], tput["budget_used"]) == ("verdicts", 0.5, None)
    assert {r["month"] for r in only_jan} == {"2026-01"}


def test_report_compliance_from_the_cli(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    history(wh)
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("platform: P\nbuses:\n  - name: md\n    url: redis://127.0.0.1:1/0\n")
    base = ["report", "--config", str(cfg), "--warehouse", str(wh.path), "--compliance"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "| 2026-02 | lat | 1 | 95 % (events) | 99 % | 500 % |" in out
    assert "| 2026-01 | tput | 2 | 50 % (verdicts) | n/a | n/a |" in out
    assert main([*base, "--format", "json", "--months", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["month"] for r in rows} == {"2026-02"}
    assert main([*base, "--format", "html"]) == 2
    assert "--compliance: --format must be md or json" in capsys.readouterr().err
