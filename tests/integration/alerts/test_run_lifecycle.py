"""A run's own lifecycle on a real warehouse: 'completed' only when the report and the alerts
are done, the stateful pipeline-failure alert, and the heartbeat of completed runs."""

from __future__ import annotations

from datetime import timedelta

from dualbus_pipeline.alerts import notify_pipeline_failure, run_completed
from dualbus_pipeline.alerts.deadman import check_deadman
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import begin_run, fail_run, mark_evaluated, mark_stage_done
from dualbus_pipeline.store.slo_queries import prior_good_runs, run_row
from tests.integration.alerts.support import T0, CaptureSink, rows, topology


def _status(wh: Warehouse, run_id: str) -> tuple[str, str | None]:
    ((status, error),) = rows(wh, "SELECT status, error FROM runs WHERE run_id = ?", [run_id])
    return status, error


def _evaluated(wh: Warehouse, run_id: str, minute: int = 0) -> None:
    begin_run(wh, run_id, "Testplat", started_at=T0 + timedelta(minutes=minute))
    with wh.transaction() as con:
        mark_evaluated(con, run_id, settings={}, overall={"grade": "A"})


def test_a_run_completes_when_report_and_alerts_are_both_done_in_either_order(
        wh: Warehouse) -> None:
    for run_id, order in (("r1", ("report", "alerts")), ("r2", ("alerts", "report"))):
        _evaluated(wh, run_id)
        with wh.transaction() as con:
            assert mark_stage_done(con, run_id, order[0]) is False  # type: ignore[arg-type]
        assert _status(wh, run_id) == ("evaluated", None)
        with wh.transaction() as con:
            assert mark_stage_done(con, run_id, order[1]) is True  # type: ignore[arg-type]
            assert mark_stage_done(con, run_id, order[1]) is False  # type: ignore[arg-type]
        assert _status(wh, run_id) == ("completed", None)


def test_a_failure_before_the_verdicts_fails_the_run_and_after_them_leaves_it_partial(
        wh: Warehouse) -> None:
    begin_run(wh, "early", "Testplat", started_at=T0 - timedelta(minutes=1))
    assert fail_run(wh, "early", "ProbeError: no bus") == "failed"
    _evaluated(wh, "late", minute=1)
    assert fail_run(wh, "late", "pipeline failed at graded_report: TemplateSyntaxError") \
        == "partial"
    assert _status(wh, "late") == ("partial",
                                   "pipeline failed at graded_report: TemplateSyntaxError")
    assert fail_run(wh, "late", "again") is None  # a finished run keeps its first reason
    _evaluated(wh, "next", minute=2)
    with wh.connect() as con:
        # a partial run's data stands: the next run's baseline reads it, the failed one not
        assert prior_good_runs(con, run_row(con, "next"), 10) == ["late"]
    # ...but it is not fresh results: the dead-man switch still waits for a completed run
    topo = topology([], schedule="*/15 * * * *")
    assert check_deadman(wh, topo, T0 + timedelta(minutes=31)).state == "firing"


def test_pipeline_failure_fires_once_reminds_and_resolves_on_the_next_completed_run(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([sink.url()], remind_every="4h", heartbeat_url=sink.ping_url())
    firing = "FIRING error: pipeline run failed on Testplat"
    assert notify_pipeline_failure(wh, topo, "run-1", "ProbeError: bus ticks died",
                                   now=T0).fired == 1
    assert sink.titles() == [firing]
    # the daemon's sensor and the CLI both report run-1: counted once
    assert notify_pipeline_failure(wh, topo, "run-1", "ProbeError: bus ticks died",
                                   now=T0).fired == 0
    # the next failed run within remind_every: recorded, not sent again
    notify_pipeline_failure(wh, topo, "run-2", "WarehouseLockedError: busy",
                            now=T0 + timedelta(minutes=15))
    assert sink.titles() == [firing]
    notify_pipeline_failure(wh, topo, "run-3", "pipeline failed at graded_report: boom",
                            now=T0 + timedelta(hours=5))
    assert sink.titles() == [firing, "FIRING (reminder) error: pipeline run failed on Testplat"]
    assert sink.pings == []  # failed runs never ping the heartbeat

    done = run_completed(wh, topo, "run-4", now=T0 + timedelta(hours=6))
    assert done.resolved_failure and done.heartbeat is not None
    assert done.heartbeat.startswith("ok 200 from 127.0.0.1")
    assert sink.titles()[-1] == "RESOLVED error: pipeline run failed on Testplat"
    msg = sink.posts[-1].json["message"]
    assert "Last failure: pipeline failed at graded_report: boom" in msg and "run-4" in msg
    assert sink.posts[-1].json["type"] == "success"
    assert sink.pings == [("GET", "/ping/3f1c9a", "")]

    again = run_completed(wh, topo, "run-5", now=T0 + timedelta(hours=7))
    assert not again.resolved_failure and len(sink.posts) == 3  # nothing left to resolve
    assert len(sink.pings) == 2
    transitions = rows(wh, "SELECT run_id, transition FROM alert_events WHERE slo = "
                       "'dualbus.pipeline' ORDER BY event_at")
    assert transitions == [("run-1", "fired"), ("run-2", "failed"), ("run-3", "reminded"),
                           ("run-4", "resolved")]


def test_heartbeat_post_carries_the_run_and_a_dead_endpoint_never_raises(
        wh: Warehouse, sink: CaptureSink) -> None:
    topo = topology([], heartbeat_url=sink.ping_url("/ping/abc"), heartbeat_method="POST")
    assert run_completed(wh, topo, "run-9").heartbeat == "ok 200 from 127.0.0.1"
    ((method, path, body),) = sink.pings
    assert (method, path) == ("POST", "/ping/abc") and "run-9 completed on Testplat" in body
    sink.stop()
    down = run_completed(wh, topo, "run-10").heartbeat
    assert down is not None and down.startswith("failed: 127.0.0.1:")
    assert "/ping/abc" not in down  # the check's id is a secret: never in a message
