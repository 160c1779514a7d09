"""`dualbus discover URL… [-o FILE]`: read the buses, write a starting dualbus.yaml.

Exit 0 written; 2 bad arguments (one line each, passwords masked); 1 a bus cannot be reached
or read (one line naming it), nothing written. Progress and notes go to stderr; stdout (or
``-o FILE``, written atomically) carries the YAML only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dualbus_pipeline.errors import InputError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "discover", help="read the buses and write a starting dualbus.yaml",
        description="Read Redis buses (read-only: SCAN TYPE stream, XINFO GROUPS, XINFO "
        "CONSUMERS) and write a starting dualbus.yaml: the buses, one engine per consumer "
        "group, the streams nobody consumes as a group, with comments saying what was "
        "inferred and how sure. Passwords become ${BUS_<NAME>_PASSWORD} placeholders.")
    p.add_argument("urls", nargs="+", metavar="URL", help="redis:// or rediss:// bus URL")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="write the YAML to FILE (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--platform", default="My platform", help="platform name")
    p.add_argument("--bus-names", metavar="A,B", default=None,
                   help="bus names, one per URL (default: from the hosts, else bus1, bus2…)")
    p.add_argument("--health-url-template", metavar="TEMPLATE", default=None,
                   help="engine health URL, e.g. 'http://{name}:{port}/health' ({name} is "
                   "filled; {port} becomes an ${ENGINE_<NAME>_PORT} placeholder)")
    p.add_argument("--max-streams", type=int, default=500, metavar="N",
                   help="streams kept per bus (default 500)")
    p.add_argument("--max-keys", type=int, default=1_000_000, metavar="N",
                   help="stop scanning a bus after about N keys (default 1,000,000)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="per Redis call (default 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline import progress
    from dualbus_pipeline.discover import check_template, discover, parse_targets
    from dualbus_pipeline.report.render import atomic_write

    problems: list[str] = []
    try:
        targets = parse_targets(args.urls, args.bus_names)
    except InputError as exc:
        problems += exc.problems
    if args.health_url_template is not None:
        problems += [p for p in [check_template(args.health_url_template)] if p]
    for flag, value in (("--max-streams", args.max_streams), ("--max-keys", args.max_keys),
                        ("--timeout", args.timeout)):
        if value <= 0:
            problems.append(f"{flag}: must be greater than 0 (got {value!r})")
    if not args.platform.strip():
        problems.append("--platform: must not be empty")
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        problems.append(f"{out}: already exists (use --force to overwrite it)")
    if out is not None and not out.parent.is_dir():
        problems.append(f"{out}: directory {str(out.parent)!r} does not exist")
    if problems:
        raise InputError(problems)

    def show(step: str, message: str) -> None:
        if not args.quiet:
            print(f"dualbus discover: {message}", file=sys.stderr, flush=True)

    with progress.listening(show):
        found = discover(targets, timeout_s=args.timeout, max_streams=args.max_streams,
                         max_keys=args.max_keys)
    for scan in found.scans:
        if scan.capped:  # said even with --quiet: the file is incomplete
            print(f"dualbus discover: bus {scan.target.name}: {scan.capped}", file=sys.stderr)
    text = found.render(args.platform, args.health_url_template)
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write(out, text)
    n = len(found.lonely)
    print(f"dualbus discover: {'wrote ' + str(out) if out else 'YAML on stdout'}: "
          f"{len(found.scans)} bus(es), {len(found.engines)} engine(s), {n} stream(s) without "
          "a consumer group. Fill in the ${…} placeholders, then: dualbus validate --config "
          f"{out if out is not None else 'FILE'}", file=sys.stderr)
    return 0
