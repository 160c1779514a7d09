"""`dualbus report`: export a stored run's report (md, html, json) from the warehouse alone.

Output: with one format and no `-o`, the report goes to stdout; with several formats and no
`-o`, files `report.md` / `report.html` / `results.json` are written to the current directory;
with `-o`, one format writes that file and several formats write into that directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dualbus_pipeline.config import load_config
from dualbus_pipeline.errors import DualbusError, InputError
from dualbus_pipeline.report.render import FILE_NAMES, FORMATS, atomic_write
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.queries import find_run_id, get_report, latest_run_id


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report", parents=[common], help="export a stored run's report (md, html, json)",
        description="Export the report of a stored run from the warehouse. One format without "
        "-o prints to stdout; several formats without -o write report.md/report.html/"
        "results.json into the current directory; -o names the file (one format) or the "
        "directory (several).")
    p.add_argument("--run", metavar="ID", default="latest",
                   help="run id or a unique prefix of one, or 'latest' (default)")
    p.add_argument("--format", metavar="FMT", default="md",
                   help="comma-separated formats among md, html, json (default: md)")
    p.add_argument("-o", "--output", metavar="PATH", default=None,
                   help="file (one format) or directory (several formats)")
    p.add_argument("--compliance", action="store_true",
                   help="instead of a run's report: per SLO and calendar month, attainment "
                   "and error budget used over every stored run (--format md or json)")
    p.add_argument("--months", type=int, default=12, metavar="N",
                   help="with --compliance: the last N months (default 12)")
    p.set_defaults(func=run)


def _formats(text: str) -> list[str]:
    fmts = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise InputError(f"--format: unknown format {','.join(bad) or text!r} "
                         f"(expected a comma-separated list of {', '.join(FORMATS)})")
    return list(dict.fromkeys(fmts))


def run(args: argparse.Namespace) -> int:
    fmts = _formats(args.format)
    path = load_config(args.config).warehouse_path(args.warehouse)
    if not path.exists():
        raise DualbusError(f"warehouse {path} does not exist: no run has been stored yet "
                           "(run `dualbus run` or `dualbus demo` first)")
    if args.compliance:
        return _compliance(path, fmts, args.months, args.output)
    with Warehouse(path).connect() as con:
        run_id = resolve_run(con, args.run, path)
        contents: dict[str, str] = {}
        for fmt in fmts:
            content = get_report(con, run_id, fmt)
            if content is None:
                raise DualbusError(f"run {run_id} has no stored {fmt} report (the report step "
                                   "did not complete for this run)")
            contents[fmt] = content
    if args.output is None and len(fmts) == 1:
        sys.stdout.write(contents[fmts[0]])
        if not contents[fmts[0]].endswith("\n"):
            sys.stdout.write("\n")
        return 0
    if len(fmts) == 1:
        target = Path(args.output)
        if target.is_dir():
            target = target / FILE_NAMES[fmts[0]]
        target.parent.mkdir(parents=True, exist_ok=True)
        print(atomic_write(target, contents[fmts[0]]))
        return 0
    folder = Path(args.output) if args.output is not None else Path.cwd()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o: {folder} is a file; with several formats -o must be a directory")
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in fmts:
        print(atomic_write(folder / FILE_NAMES[fmt], contents[fmt]))
    return 0


def _compliance(path: Path, fmts: list[str], months: int, output: str | None) -> int:
    import json

    from dualbus_pipeline.report.formatting import fmt_pct
    from dualbus_pipeline.store.compliance import monthly_compliance

    if len(fmts) != 1 or fmts[0] not in ("md", "json"):
        raise InputError("--compliance: --format must be md or json")
    if months < 1:
        raise InputError("--months: must be at least 1")
    with Warehouse(path).connect() as con:
        rows = monthly_compliance(con, months=months)
    if fmts[0] == "json":
        text = json.dumps(rows, indent=2)
    else:
        lines = ["| Month | SLO | Runs | Attainment | SLI target | Budget used |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r['month']} | {r['slo']} | {r['runs']} | {fmt_pct(r['attainment'])} "
                  f"({r['basis']}) | {fmt_pct(r['sli_target'])} | {fmt_pct(r['budget_used'])} |"
                  for r in rows]
        text = "\n".join(lines) if rows else "no stored runs to summarise yet"
    if output is None:
        print(text)
    else:
        print(atomic_write(Path(output), text + "\n"))
    return 0


def resolve_run(con: Any, wanted: str, path: Path) -> str:
    if wanted == "latest":
        run_id = latest_run_id(con)
        if run_id is None:
            raise DualbusError(f"warehouse {path} holds no completed run yet "
                               "(run `dualbus run` or `dualbus demo` first)")
        return run_id
    matches = find_run_id(con, wanted)
    if not matches:
        raise InputError(f"--run: no run {wanted!r} in {path} (`dualbus report --run latest` "
                         "exports the newest)")
    if len(matches) > 1 and wanted not in matches:
        raise InputError(f"--run: {wanted!r} matches {len(matches)} runs "
                         f"({', '.join(matches[:3])}...); give more characters")
    return wanted if wanted in matches else matches[0]
