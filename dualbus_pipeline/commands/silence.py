"""`dualbus silence add|list|remove`: maintenance windows, stored in the warehouse."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime, timedelta
from typing import Any

from dualbus_pipeline.config import load_config, parse_duration_s
from dualbus_pipeline.errors import InputError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "silence", parents=[common], help="maintenance windows: add, list, remove",
        description="A silence holds back the alerts of the SLO × target pairs it covers "
        "(state still changes; a firing alert is told when the silence ends) and leaves their "
        "events out of error budgets. Shown in the report of every run it covers.")
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("id", nargs="?", type=int, help="the silence to remove")
    p.add_argument("--target", metavar="GLOB", help="targets covered (shell glob)")
    p.add_argument("--slo", metavar="GLOB", help="SLOs covered (shell glob)")
    p.add_argument("--all", action="store_true", help="every SLO on every target")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 1d")
    p.add_argument("--start", metavar="ISO", help="when it starts (default: now), e.g. "
                   "2026-12-24T22:00+00:00")
    p.add_argument("--reason", default="", help="why (required for add)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline.store import Warehouse, silences

    cfg = load_config(args.config)
    wh = Warehouse(cfg.warehouse_path(args.warehouse))
    now = datetime.now(UTC)
    if args.action == "list":
        if not wh.path.exists():
            print("no silences (no warehouse yet)")
            return 0
        with wh.connect() as con:
            found = silences.current_and_upcoming(con, now)
        for s in found:
            print(("ACTIVE   " if s.starts_at <= now else "UPCOMING ") + s.describe())
        print(f"{len(found)} silence(s) active or upcoming")
        return 0
    wh.migrate()
    if args.action == "remove":
        if args.id is None:
            raise InputError("silence remove: give the silence id (see `dualbus silence list`)")
        with wh.transaction() as con:
            if not silences.end(con, args.id, now):
                raise InputError(f"silence remove: no active or upcoming silence #{args.id}")
        print(f"silence #{args.id} ended")
        return 0
    starts, ends = _window(args, now)
    if not (args.target or args.slo or args.all):
        raise InputError("silence add: say what it covers: --target GLOB, --slo GLOB, or --all")
    if not args.reason.strip():
        raise InputError("silence add: --reason is required (it is shown in alerts and the "
                         "report)")
    with wh.transaction() as con:
        sid = silences.add(con, starts_at=starts, ends_at=ends, target=args.target,
                           slo=args.slo, reason=args.reason.strip(), created_by=_user(),
                           now=now)
    print(f"silence #{sid}: SLO {args.slo or '*'} on {args.target or '*'} from "
          f"{starts.isoformat(timespec='minutes')} to {ends.isoformat(timespec='minutes')}")
    return 0


def _window(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    if not args.duration:
        raise InputError("silence add: --for is required (a duration like 30m, 2h or 1d)")
    try:
        seconds = parse_duration_s(args.duration)
    except ValueError as exc:
        raise InputError(f"silence add: --for {args.duration!r}: {exc}") from None
    if seconds <= 0:
        raise InputError("silence add: --for must be longer than 0")
    starts = now
    if args.start:
        try:
            starts = datetime.fromisoformat(args.start)
        except ValueError:
            raise InputError(f"silence add: --start {args.start!r}: not an ISO 8601 time "
                             "like 2026-12-24T22:00+00:00") from None
        if starts.tzinfo is None:
            raise InputError("silence add: --start needs a UTC offset, e.g. +00:00")
    return starts, starts + timedelta(seconds=seconds)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: the silence still counts
        return None
