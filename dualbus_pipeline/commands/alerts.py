"""`dualbus alerts`: alert state and delivery status; `dualbus alerts test`: try every sink."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from dualbus_pipeline.config import Topology, load_config


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "alerts", parents=[common],
        help="list alert state and delivery; `alerts test`; `alerts flush`",
        description="Without an action: list every alert (one per SLO and target) with its "
        "state and how its latest notification was delivered per sink, then what the outbox "
        "still holds. `dualbus alerts test` sends a test notification to every sink and "
        "exits 1 if any sink failed. `dualbus alerts flush` delivers every undelivered "
        "notification now, backoff or not (a sink is back), and exits 1 if any is still "
        "pending.")
    p.add_argument("action", nargs="?", choices=["list", "test", "flush"], default="list",
                   help="list (default), test or flush")
    p.add_argument("--state", choices=["firing", "pending", "resolved", "all"], default="all",
                   help="which alerts to list (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.action == "test":
        return _test(cfg.topology)
    if args.action == "flush":
        return _flush(cfg.topology, cfg.warehouse_path(args.warehouse))
    return _list(cfg.warehouse_path(args.warehouse), None if args.state == "all" else args.state)


def _test(topology: Topology) -> int:
    from dualbus_pipeline.alerts import send_test

    if not topology.alerts:
        print("no alert sinks configured (add `alerts:` to dualbus.yaml)")
        return 0
    failed = 0
    for r in send_test(topology):
        if r.delivered:
            print(f"delivered  {r.sink}")
        else:
            failed += 1
            print(f"FAILED     {r.sink}: {r.error}")
    print(f"{len(topology.alerts) - failed}/{len(topology.alerts)} sinks delivered")
    return 1 if failed else 0


def _flush(topology: Topology, path: Path) -> int:
    from dualbus_pipeline.alerts.outbox import deliver_pending
    from dualbus_pipeline.store import Warehouse

    if not path.exists():
        print(f"no warehouse at {path} yet: nothing to deliver")
        return 0
    report = deliver_pending(Warehouse(path), topology, force=True)
    print(f"outbox flushed: {report.delivered} delivered, {report.pending} pending, "
          f"{report.expired} expired")
    for sink, error in report.errors.items():
        print(f"  FAILED {sink}: {error}")
    return 1 if report.pending else 0


def _ts(v: datetime | None) -> str:
    return "-" if v is None else v.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _num(v: float | None) -> str:
    return "no data" if v is None else f"{v:.4g}"


def _delivery(d: dict[str, Any]) -> str:
    if d["delivered_at"] is not None:
        return f"delivered {_ts(d['delivered_at'])}"
    if d["expired_at"] is not None:
        return f"EXPIRED ({d['last_error'] or 'undelivered'})"
    err = f", last error: {d['last_error']}" if d["last_error"] else ""
    return (f"PENDING (attempts {d['attempts']}, next {_ts(d['next_attempt_at'])}{err})")


def _list(path: Path, state: str | None) -> int:
    from dualbus_pipeline.alerts.state import INCONCLUSIVE_SUFFIX
    from dualbus_pipeline.store import Warehouse
    from dualbus_pipeline.store import alerts as store

    if not path.exists():
        print(f"no warehouse at {path} yet: no run has happened, so no alerts")
        return 0
    with Warehouse(path).connect() as con:
        alerts = store.list_alerts(con, state)
        deliveries = store.latest_deliveries(con)
        counts = store.outbox_counts(con)
        stuck = store.undelivered_rows(con)
    by_alert: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in deliveries:
        # an inconclusive alert's row is keyed `<slo>:inconclusive`; its notifications name
        # the SLO itself (so sink filters match what the user wrote)
        key = d["slo"] + (INCONCLUSIVE_SUFFIX if d["kind"].startswith("inconclusive") else "")
        by_alert.setdefault((key, d["target"]), []).append(d)
    if not alerts:
        print("no alerts" + (f" in state {state}" if state else ""))
    for a in alerts:
        since = a["fired_at"] if a["state"] != "resolved" else a["resolved_at"]
        print(f"{a['state'].upper():9} {a['severity']:7} {a['slo']} on {a['target']}: "
              f"value {_num(a['value'])}, objective {a['objective_text'] or '-'}, "
              f"grade {a['grade'] or '-'}; since {_ts(since)}, last run {a['last_run'] or '-'}")
        for d in by_alert.get((a["slo"], a["target"]), []):
            print(f"          {d['kind']} → {d['sink']}: {_delivery(d)}")
    print(f"outbox: {counts['delivered']} delivered, {counts['pending']} pending, "
          f"{counts['expired']} expired")
    for r in stuck:
        subject = f"{r['slo']} on {r['target']}" if r["slo"] else r["kind"]
        err = f": {r['last_error']}" if r["last_error"] else ""
        print(f"  pending #{r['id']} {r['kind']} {subject} → {r['sink']} (attempts "
              f"{r['attempts']}, next {_ts(r['next_attempt_at'])}){err}")
    return 0
