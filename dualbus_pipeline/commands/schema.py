"""`dualbus schema config|slo [-o FILE]`: the JSON Schema of dualbus.yaml or of an SLO file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "schema", help="print the JSON Schema of dualbus.yaml or of an SLO file",
        description="Print the JSON Schema (draft 2020-12) of dualbus.yaml (`config`) or of "
        "an SLO file (`slo`), generated from the models dualbus validates with; point an "
        "editor at it to validate as you type. The same files ship in the package "
        "(dualbus_pipeline/schemas/).")
    p.add_argument("which", choices=["config", "slo"])
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write it to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualbus_pipeline.report.render import atomic_write
    from dualbus_pipeline.schema import render

    text = render(args.which)
    if args.output is None:
        print(text, end="")
    else:
        print(atomic_write(Path(args.output), text))
    return 0
