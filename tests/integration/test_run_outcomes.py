"""`dualbus run` from the command line (cron, CI) on a real stack: a run that fails alerts like
one under the daemon, a blocking SLO holds back the report but never its alert, and only a
completed run pings the heartbeat and resolves the pipeline-failure alert."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import free_port
from dualbus_pipeline.store import Warehouse
from tests.integration.alerts.support import CaptureSink, rows
from tests.integration.test_pipeline import SMALL_PROBE
from tests.stack_fixtures import make_topology

BLOCKING_SLO = """\
version: dualbus/v1
slos:
  - name: engines_available
    scope: system
    indicator: system.availability
    aggregate: ratio
    objective: {op: ">=", value: 1.0}
    severity: error
    blocking: true
"""


@pytest.fixture
def sink() -> Iterator[CaptureSink]:
    s = CaptureSink(free_port()).start()
    yield s
    s.stop()


def _status(wh: Path, run_id: str) -> tuple[str, str | None]:
    ((status, error),) = rows(Warehouse(wh), "SELECT status, error FROM runs WHERE run_id = ?",
                              [run_id])
    return status, error


def _last_run(wh: Path) -> str:
    ((run_id,),) = rows(Warehouse(wh), "SELECT run_id FROM runs ORDER BY started_at DESC "
                        "LIMIT 1")
    return str(run_id)


def test_cli_runs_alert_on_failure_hold_back_blocked_reports_and_ping_when_completed(
        tmp_path: Path, sink: CaptureSink, stack_factory: Callable[..., StackManager],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_topology(
        tmp_path, ["alpha", "beta"], platform="Cronplat", faults={"beta": {"down": True}},
        extra={**SMALL_PROBE, "alerts": [{"url": sink.url()}],
               "alerting": {"heartbeat_url": sink.ping_url()}})
    stack_factory(config)
    wh = tmp_path / "wh.duckdb"
    run = ["run", "--config", str(config), "--warehouse", str(wh), "--quiet"]

    # 1. The report step breaks (a template error): the CLI alerts like the daemon would.
    broken = tmp_path / "templates"
    shutil.copytree(shipped_dir("templates"), broken)
    (broken / "report.md.j2").write_text("{% if %}")
    monkeypatch.setenv("DUALBUS_TEMPLATES", str(broken))
    assert main(run) == 1
    assert "pipeline failed at graded_report: " in capsys.readouterr().err
    first = _last_run(wh)
    status, error = _status(wh, first)
    assert status == "partial" and error is not None and "graded_report" in error
    titles = sink.titles()
    assert "FIRING error: pipeline run failed on Cronplat" in titles
    # the alerts were decided from the verdicts, not from the report: beta's breaches went
    # out, in the run's one grouped message
    group = [p for p in sink.posts if p.title.endswith("alerts on Cronplat")]
    assert len(group) == 1 and group[0].title.startswith("FIRING error: ")
    assert "- FIRING error: engine_success_ratio on beta" in group[0].json["message"]
    assert not (wh.parent / "reports" / first / "report.html").exists()
    assert sink.pings == []

    # 2. A good run completes: the failure alert resolves and the heartbeat is pinged once.
    monkeypatch.delenv("DUALBUS_TEMPLATES")
    sent = len(sink.posts)
    assert main(run) == 0
    second = _last_run(wh)
    assert _status(wh, second) == ("completed", None)
    assert "RESOLVED error: pipeline run failed on Cronplat" in sink.titles()[sent:]
    assert [p[:2] for p in sink.pings] == [("GET", "/ping/3f1c9a")]
    md = (wh.parent / "reports" / second / "report.md").read_text()
    compliance = md[md.index("## Monthly compliance"):]
    month = compliance.split("\n| ")[2].split(" |")[0]  # the first row's month, this month
    # two runs stored (the first is partial: its data stands): beta was down in both
    assert f"| {month} | engine_success_ratio | 2 | 50 % (events) | 95 % | 1000 % |" in \
        compliance

    # 3. A blocking SLO fails: its breach alert is sent, the report is held back, the run is
    #    partial with that reason, and no pipeline-failure alert pages anyone.
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    (slo_dir / "gate.yaml").write_text(BLOCKING_SLO)
    sent = len(sink.posts)
    assert main([*run, "--slo", str(slo_dir)]) == 1
    assert "report held back: blocking SLO check failed: engines_available" in \
        capsys.readouterr().err
    third = _last_run(wh)
    assert _status(wh, third) == (
        "partial", "report held back: blocking SLO check failed: engines_available")
    (msg,) = sink.posts[sent:]  # one grouped message, and no pipeline-failure alert
    assert msg.title.startswith("FIRING error: 1 alert on Cronplat, ")
    lines = msg.json["message"].splitlines()
    assert lines[0].startswith("- FIRING error: engines_available on system")
    # this run evaluated only the gate's SLO: the shipped SLOs' alerts resolve as gone
    assert all(ln.startswith("- RESOLVED") for ln in lines[1:] if ln.startswith("- "))
    assert not (wh.parent / "reports" / third / "report.html").exists()
    assert len(sink.pings) == 1
