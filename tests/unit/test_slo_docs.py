"""`dualbus slo docs`: a page of every SLO, from the spec alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.slospec.docs import slo_docs
from dualbus_pipeline.slospec.loader import load_slo_dir
from dualbus_pipeline.slospec.model import Slo


def test_every_shipped_slo_has_a_section_with_its_budget_and_alerts() -> None:
    slos = load_slo_dir(shipped_dir("slo"))
    page = slo_docs(slos, source="slo/")
    for s in slos:
        assert f"\n## {s.name}\n" in page and f"[{s.name}](#{s.name})" in page
    p99 = page[page.index("## engine_latency_p99\n"):]
    p99 = p99[:p99.index("\n## ", 4)]
    assert "- **Error budget**: 0.99 of events good over 30d; a good event is a request " \
        "under 10 ms; budget = 0.01 of the events" in p99
    assert "page at 14.4× over 1h and 5m; page at 6× over 6h and 30m; ticket at 3× over 1d " \
        "and 2h; ticket at 1× over 3d and 6h" in p99
    tput = page[page.index("## bus_throughput\n"):]
    assert "- **Error budget**: none" in tput[:tput.index("\n## ", 4)]


def test_a_weekly_budget_scales_its_windows_and_a_warning_line_shows() -> None:
    s = Slo.model_validate({
        "name": "lat", "scope": "engine", "indicator": "engine.latency_ms", "aggregate": "p90",
        "objective": {"op": "<", "value": 5}, "warning": {"op": "<", "value": 8},
        "budget": {"period": "7d", "alerts": "burn"}})
    page = slo_docs([s], source="x")
    assert "p90 < 5 (warning < 8)" in page and "0.9 over 7d" in page
    assert "page at 14.4× over 14m and 70s" in page
    assert "per run:" not in page  # budget.alerts: burn


def test_slo_docs_command_writes_the_page(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "slos.md"
    assert main(["slo", "docs", "-o", str(out)]) == 0
    assert out.read_text().startswith("# Service level objectives\n")
    assert main(["slo", "docs", "--slo", str(tmp_path / "nope")]) == 2
    assert "SLO directory not found" in capsys.readouterr().err
