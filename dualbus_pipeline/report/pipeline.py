"""Build, write and store one run's report (called by the graded_report asset)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.compliance import monthly_compliance
from dualbus_pipeline.store.queries import history, run_bundle, store_report

HISTORY_RUNS = 30


@dataclass(frozen=True)
class ReportOutput:
    results: dict[str, Any]
    rendered: dict[str, str]
    paths: dict[str, Path]


def build_and_store_report(wh: Warehouse, run_id: str, templates_dir: Path | None, *,
                           baseline_runs: int = 5, regression_pct: float = 20.0,
                           pass_score: float = 90.0) -> ReportOutput:
    """The run's report with the topology's `baseline` and `scoring` settings (the same ones
    the trend tables and the grading used)."""
    from dualbus_pipeline.report.render import render_reports, write_report_files
    from dualbus_pipeline.store.trends import report_trends

    with wh.connect() as con:
        bundle = run_bundle(con, run_id)
        trends = report_trends(con, run_id, baseline_runs=baseline_runs,
                               regression_pct=regression_pct)
        past = history(con, before_run=run_id, limit=HISTORY_RUNS)
        run = bundle["run"] or {}
        compliance = monthly_compliance(con, until=run.get("started_at"))
    results = build_results(bundle)
    rendered = render_reports(results, trends=trends, history=past, templates_dir=templates_dir,
                              pass_score=pass_score, compliance=compliance)
    paths = write_report_files(run_id, rendered, wh.reports_dir)
    with wh.transaction() as con:
        for fmt, content in rendered.items():
            store_report(con, run_id, fmt, content)
    return ReportOutput(results=results, rendered=rendered, paths=paths)
