"""`dualbus slo docs [--slo DIR] [-o FILE]`: a Markdown page of every SLO, for a wiki."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "slo", parents=[common], help="SLO tools: `slo docs` writes a page of every SLO",
        description="`dualbus slo docs` renders one Markdown page of every SLO (what, how it "
        "is measured, objective, window, severity, error budget, alert rules) from the SLO "
        "files, for a team's wiki. Nothing is measured.")
    p.add_argument("action", choices=["docs"])
    p.add_argument("--slo", metavar="DIR", default=None,
                   help="SLO directory (default: slo/ next to the config, else shipped)")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write it to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline.config import load_config
    from dualbus_pipeline.report.render import atomic_write
    from dualbus_pipeline.slospec.docs import slo_docs
    from dualbus_pipeline.slospec.loader import load_slo_dir, resolve_slo_dir

    cfg = load_config(args.config)
    directory = resolve_slo_dir(args.slo or os.environ.get("DUALBUS_SLO_DIR") or None, cfg)
    text = slo_docs(load_slo_dir(directory), source=str(directory))
    if args.output is None:
        print(text, end="")
    else:
        print(atomic_write(Path(args.output), text))
    return 0
