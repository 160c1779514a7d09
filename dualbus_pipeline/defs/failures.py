"""A failed Dagster run, read the same way from `dualbus run` and from the run-failure sensor.

Two kinds of failure end a dualbus run early:

* the pipeline broke (a step raised: warehouse locked, probe process died, a template error):
  the run is 'failed' (before its verdicts were stored) or 'partial' (after), and the
  stateful pipeline-failure alert fires (alerts/pipeline.py);
* only blocking SLO checks failed: the pipeline worked and the breach alerts went out, but the
  report is held back (defs/checks.py). The run is 'partial' with that reason and the
  pipeline-failure alert stays quiet: the SLO's own breach alert is the news.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dualbus_pipeline.alerts import notify_pipeline_failure
from dualbus_pipeline.config import Topology
from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.runs import fail_run

_BLOCKED = "DagsterAssetCheckFailedError"


@dataclass(frozen=True)
class RunFailure:
    line: str       # one line: which step and why
    blocked: bool   # only blocking SLO checks failed (the report was held back)


def run_failure(step_failures: Iterable[Any], fallback: str) -> RunFailure:
    """From a run's step-failure events (DagsterEvent), the user's error, unwrapped."""
    lines: list[str] = []
    blocked = True
    for event in step_failures:
        data = event.step_failure_data
        err = getattr(data, "error", None)
        if err is None:
            blocked = False
            continue
        if err.cls_name == _BLOCKED:
            checks = [ln.split(":", 1)[1].strip() for ln in err.message.splitlines()[1:]
                      if ":" in ln]
            lines.append("report held back: blocking SLO check failed: "
                         + (", ".join(checks) or "?"))
            continue
        blocked = False
        while err.cause is not None:  # Dagster wraps the user's exception; show that one
            err = err.cause
        msg = err.message.strip().splitlines()
        lines.append(f"pipeline failed at {event.step_key}: {msg[0] if msg else err.cls_name}")
    if not lines:
        return RunFailure(fallback.strip().splitlines()[0] if fallback.strip() else
                          "pipeline failed (see the Dagster run log)", blocked=False)
    return RunFailure("; ".join(lines), blocked=blocked)


def record_run_failure(wh: Warehouse, topology: Topology, run_id: str,
                       failure: RunFailure) -> str:
    """Alert (unless only a blocking check failed) and mark the run; one line saying what
    was done, for a log."""
    said = "blocking check: no pipeline alert"
    if not failure.blocked:
        # Notify first: if the warehouse is the problem, the alert still goes out directly.
        s = notify_pipeline_failure(wh, topology, run_id, failure.line)
        said = (f"pipeline alert {'fired' if s.fired else 'reminded' if s.reminded else 'held'}"
                f", {s.delivered} delivered, {s.pending} pending")
    try:
        status = fail_run(wh, run_id, failure.line)
    except WarehouseError as exc:
        return f"{said}; could not mark the run in the warehouse: {exc}"
    return f"{said}; run marked {status or 'unchanged (already finished)'}"
