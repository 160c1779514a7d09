"""The dead-man switch, the pipeline-failure alert, and `dualbus alerts` on a real warehouse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from dualbus_pipeline.alerts import check_deadman, dispatch_alerts, notify_pipeline_failure
from dualbus_pipeline.cli import main
from dualbus_pipeline.store import Warehouse
from tests.integration.alerts.support import T0, CaptureSink, Result, record_run, rows, topology


def test_deadman_fires_after_two_intervals_and_resolves_when_runs_resume(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], schedule="*/15 * * * *")
    assert check_deadman(wh, topo, T0).state == "no_runs"  # nothing scheduled yet
    record_run(wh, "run-1", [], at=T0)

    ok = check_deadman(wh, topo, T0 + timedelta(minutes=29))
    assert (ok.state, ok.allowed_s) == ("ok", 1800.0)
    assert sink.posts == []

    stale = check_deadman(wh, topo, T0 + timedelta(minutes=31))
    assert (stale.state, stale.transition) == ("firing", "fired")
    assert sink.titles() == ["FIRING error: dualbus.deadman on Testplat"]
    assert sink.posts[0].json["type"] == "failure"
    assert "Last successful run: 2025-03-03T12:00:00" in sink.posts[0].json["message"]

    # Still stale: no repeat before remind_every (4h).
    assert check_deadman(wh, topo, T0 + timedelta(minutes=50)).transition is None
    # A failed run does not count as fresh results.
    record_run(wh, "run-2", [], at=T0 + timedelta(minutes=45), status="failed")
    assert check_deadman(wh, topo, T0 + timedelta(minutes=52)).state == "firing"
    assert len(sink.posts) == 1

    record_run(wh, "run-3", [], at=T0 + timedelta(minutes=60))
    back = check_deadman(wh, topo, T0 + timedelta(minutes=61))
    assert (back.state, back.transition) == ("resolved", "resolved")
    assert sink.titles()[-1] == "RESOLVED error: dualbus.deadman on Testplat"
    assert sink.posts[-1].json["type"] == "success"
    assert check_deadman(wh, topo, T0 + timedelta(minutes=62)).state == "ok"
    assert len(sink.posts) == 2


def test_deadman_interval_follows_irregular_cron(wh: Warehouse, sink: CaptureSink) -> None:
    # Weekdays at 09:00: Friday's run is still fresh on Monday morning (gap Fri→Mon = 3d).
    topo = topology([sink.url()], schedule="0 9 * * 1-5")
    friday = T0 - timedelta(days=3) + timedelta(hours=-3, minutes=5)  # Fri 2025-02-28 09:05
    record_run(wh, "fri", [], at=friday)
    assert check_deadman(wh, topo, T0).state == "ok"  # Monday 12:00
    # Wednesday noon with no run since Friday: Tuesday and Wednesday were missed.
    late = check_deadman(wh, topo, T0 + timedelta(days=2))
    assert late.state == "firing" and late.allowed_s == 2 * 86400


def test_deadman_check_retries_the_outbox(wh: Warehouse,
                                          sink_factory: Callable[..., CaptureSink]) -> None:
    down = sink_factory(start=False)
    topo = topology([down.url()])
    record_run(wh, "run-1", [Result("slo_a", "risk", passed=False)], at=T0)
    assert dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0).pending == 1
    down.start()
    status = check_deadman(wh, topo, T0 + timedelta(minutes=5))  # no run happened since
    assert (status.delivered, status.pending) == (1, 0)
    assert down.titles() == ["FIRING error: slo_a on risk"]


def test_pipeline_failure_notifies_every_sink(wh: Warehouse, sink: CaptureSink) -> None:
    from dualbus_pipeline.config import AlertSink

    topo = topology([AlertSink(url=sink.url("/a"), slos=["engine_*"]),
                     AlertSink(url=sink.url("/b"), min_severity="error")])
    s = notify_pipeline_failure(wh, topo, "run-x", "ProbeError: no bus reachable\ntraceback...")
    assert (s.delivered, s.pending) == (2, 0)
    assert sink.titles("/a") == sink.titles("/b") == ["FIRING error: pipeline run failed on "
                                                      "Testplat"]
    msg = sink.posts[0].json["message"]
    assert "ProbeError: no bus reachable" in msg and "Run: run-x" in msg
    assert rows(wh, "SELECT slo, transition, run_id FROM alert_events") == [
        ("dualbus.pipeline", "fired", "run-x")]


def test_pipeline_failure_still_notifies_when_the_warehouse_is_unusable(
        tmp_path: Path, sink: CaptureSink) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the warehouse directory should be")
    broken = Warehouse(tmp_path / "not-a-dir" / "dualbus.duckdb", lock_timeout_s=1)
    s = notify_pipeline_failure(broken, topology([sink.url()]), "run-y", "WarehouseError: x")
    assert s.delivered == 1
    assert sink.titles() == ["FIRING error: pipeline run failed on Testplat"]


def _config(tmp_path: Path, sink_urls: list[str]) -> Path:
    sinks = "".join(f"  - url: {u}\n" for u in sink_urls)
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("platform: Testplat\nbuses:\n  - name: bus\n    url: redis://127.0.0.1:1/0\n"
                   f"alerts:\n{sinks}" + f"warehouse: {tmp_path / 'dualbus.duckdb'}\n")
    return cfg


def test_cli_lists_state_and_delivery(tmp_path: Path, wh: Warehouse,
                                      sink_factory: Callable[..., CaptureSink],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    up, down = sink_factory(), sink_factory(start=False)
    secret_url = down.url(userinfo="bob:hunter2hunter2")
    topo = topology([up.url(), secret_url], group_by="alert")
    record_run(wh, "run-1", [Result("engine_latency_p99", "risk", passed=False, grade="F"),
                             Result("bus_ping", "marketdata", passed=False, severity="warning"),
                             Result("engine_success", "ml", passed=True)])
    dispatch_alerts(wh, "run-1", topo, report_path=None, now=T0)
    record_run(wh, "run-2", [Result("engine_latency_p99", "risk", passed=False, grade="F"),
                             Result("bus_ping", "marketdata", passed=True, severity="warning")],
               at=T0 + timedelta(minutes=1))
    dispatch_alerts(wh, "run-2", topo, report_path=None, now=T0 + timedelta(minutes=1))
    cfg = _config(tmp_path, [up.url(), secret_url])
    capsys.readouterr()

    assert main(["alerts", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("FIRING    error   engine_latency_p99 on risk: value 12.5")
    assert any(ln.startswith("RESOLVED  warning bus_ping on marketdata") for ln in lines)
    assert f"firing → {up.url()}: delivered" in out
    assert "firing → json://bob:***@127.0.0.1" in out and ": PENDING (attempts" in out
    assert "resolved → json://bob:***@127.0.0.1" in out
    assert "outbox: 3 delivered, 3 pending, 0 expired" in out
    assert "(attempts 6, next" in out and "A Connection error occurred" in out
    assert "hunter2hunter2" not in out

    assert main(["alerts", "--config", str(cfg), "--state", "firing"]) == 0
    out = capsys.readouterr().out
    assert "engine_latency_p99" in out and "bus_ping on marketdata:" not in out


def test_cli_alerts_test_reports_each_sink(tmp_path: Path,
                                           sink_factory: Callable[..., CaptureSink],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    up, down = sink_factory(), sink_factory(start=False)
    assert main(["alerts", "test", "--config", str(_config(tmp_path, [up.url()]))]) == 0
    assert up.titles() == ["TEST dualbus notification from Testplat"]
    assert up.posts[0].json["type"] == "info"
    capsys.readouterr()
    cfg = _config(tmp_path, [up.url(), down.url(userinfo="u:pa55word99")])
    assert main(["alerts", "test", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert f"delivered  {up.url()}" in out
    assert "FAILED     json://u:***@127.0.0.1" in out
    assert "1/2 sinks delivered" in out and "pa55word99" not in out


def test_cli_without_warehouse_says_so(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, ["json://127.0.0.1:9/x"])
    assert main(["alerts", "--config", str(cfg)]) == 0
    assert "no run has happened" in capsys.readouterr().out
    assert not (tmp_path / "dualbus.duckdb").exists()


def test_cli_alerts_flush_delivers_the_backlog_now_backoff_or_not(
        tmp_path: Path, wh: Warehouse, sink_factory: Callable[..., CaptureSink],
        capsys: pytest.CaptureFixture[str]) -> None:
    down = sink_factory(start=False)
    cfg = _config(tmp_path, [down.url()])
    record_run(wh, "run-1", [Result("engine_latency_p99", "risk", passed=False, grade="F")])
    dispatch_alerts(wh, "run-1", topology([down.url()]), report_path=None)
    (nxt,), = rows(wh, "SELECT next_attempt_at FROM outbox")
    assert nxt is not None  # backing off: the next run or sensor tick would wait for it

    assert main(["alerts", "flush", "--config", str(cfg)]) == 1  # still down
    out = capsys.readouterr().out
    assert "outbox flushed: 0 delivered, 1 pending" in out and "FAILED json://" in out

    down.start()  # the sink is back: no need to wait for the backoff
    assert main(["alerts", "flush", "--config", str(cfg)]) == 0
    assert "outbox flushed: 1 delivered, 0 pending" in capsys.readouterr().out
    assert down.titles() == ["FIRING error: engine_latency_p99 on risk"]


def test_cli_silence_add_list_remove_and_the_report_shows_it(
        tmp_path: Path, wh: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    from dualbus_pipeline.report.render import render_reports
    from dualbus_pipeline.report.results import build_results
    from dualbus_pipeline.store.queries import run_bundle
    from tests.report_fixtures import write_run

    cfg = _config(tmp_path, ["json://127.0.0.1:9/unused"])
    base = ["silence", "--config", str(cfg)]
    assert main([*base, "add", "--target", "vpin", "--for", "2h"]) == 2
    assert "silence add: --reason is required" in capsys.readouterr().err
    assert main([*base, "add", "--target", "vpin", "--for", "2x", "--reason", "r"]) == 2
    assert "silence add: --for '2x': must be a duration" in capsys.readouterr().err
    assert main([*base, "add", "--for", "2h", "--reason", "r"]) == 2
    assert "--target GLOB, --slo GLOB, or --all" in capsys.readouterr().err
    assert main([*base, "add", "--target", "vpin", "--for", "2h", "--reason",
                 "disk swap <b>"]) == 0
    assert capsys.readouterr().out.startswith("silence #1: SLO * on vpin from ")
    assert main([*base, "list"]) == 0
    out = capsys.readouterr().out
    assert "ACTIVE   #1 SLO * on vpin" in out and "disk swap" in out

    write_run(wh, "run-9")  # a run during the silence: its report names it
    with wh.connect() as con:
        results = build_results(run_bundle(con, "run-9"))
    assert [(s["id"], s["target"], s["reason"]) for s in results["silences"]] == [
        (1, "vpin", "disk swap <b>")]
    rendered = render_reports(results)
    assert "- #1 every SLO on vpin, " in rendered["md"]
    assert "disk swap &lt;b&gt;" in rendered["html"]  # escaped like every user string

    assert main([*base, "remove", "1"]) == 0
    assert main([*base, "list"]) == 0
    assert "0 silence(s) active or upcoming" in capsys.readouterr().out
    assert main([*base, "remove", "1"]) == 2  # already over
