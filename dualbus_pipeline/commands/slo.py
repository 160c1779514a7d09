"""`dualbus slo docs|export|import`: SLO tools that measure nothing.

* ``slo docs [--slo DIR] [-o FILE]``: a Markdown page of every SLO, for a wiki;
* ``slo export --format openslo [--slo DIR] [-o FILE]``: the SLOs as OpenSLO v1;
* ``slo import FILE… [-o FILE]``: OpenSLO v1 files as a dualbus SLO file (exit 2 with one
  line per field that cannot be mapped).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "slo", parents=[common],
        help="SLO tools: docs (a page of every SLO), export/import (OpenSLO v1)",
        description="`dualbus slo docs` renders one Markdown page of every SLO (what, how it "
        "is measured, objective, window, severity, error budget, alert rules). `dualbus slo "
        "export --format openslo` writes the SLOs as OpenSLO v1 documents; `dualbus slo "
        "import FILE...` reads OpenSLO v1 documents (metricSource type: dualbus) into a "
        "dualbus SLO file, or names every field it cannot map (exit 2). Nothing is "
        "measured.")
    p.add_argument("action", choices=["docs", "export", "import"])
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="import: the OpenSLO files (multi-document YAML and lists are read)")
    p.add_argument("--slo", metavar="DIR", default=None,
                   help="docs/export: SLO directory (default: slo/ next to the config, else "
                   "shipped)")
    p.add_argument("--format", choices=["openslo"], default="openslo",
                   help="export: the format (openslo: OpenSLO v1)")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write it to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline.errors import InputError
    from dualbus_pipeline.report.render import atomic_write

    if args.action == "import":
        text = _import(args.files, args.output)
    elif args.files:
        raise InputError(f"dualbus slo {args.action}: takes no files (got "
                         f"{' '.join(args.files)}); --slo DIR picks the SLOs")
    else:
        text = _from_spec(args)
    if args.output is None:
        print(text, end="")
    else:
        print(atomic_write(Path(args.output), text))
    return 0


def _from_spec(args: argparse.Namespace) -> str:
    from dualbus_pipeline.config import load_config
    from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir

    cfg = load_config(args.config)
    directory = resolve_slo_dir(args.slo or os.environ.get("DUALBUS_SLO_DIR") or None, cfg)
    slos = load_slo_dir(directory)
    if args.action == "docs":
        from dualbus_pipeline.slospec.docs import slo_docs

        return slo_docs(slos, source=str(directory))
    from dualbus_pipeline.slospec.openslo_export import export_openslo

    return export_openslo(slos, source=str(directory), schedule=cfg.topology.schedule)


def _import(files: list[str], output: str | None) -> str:
    from dualbus_pipeline.errors import InputError
    from dualbus_pipeline.slospec.openslo_import import dualbus_yaml, import_openslo

    if not files:
        raise InputError("dualbus slo import: give the OpenSLO files to read "
                         "(dualbus slo import FILE... [-o slo/imported.yaml])")
    imported = import_openslo([Path(f) for f in files])
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(imported.slos)} SLOs imported from {len(files)} file"
          f"{'s' * (len(files) != 1)}", file=sys.stderr)
    return dualbus_yaml(imported.slos, sources=files)
