"""The layer rules of docs/architecture.md, read from the imports of every module (static:
`ast`, so lazy imports inside functions count too)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "dualbus_pipeline"


def imports() -> Iterator[tuple[str, str]]:
    """(layer of the importing module, imported module) for every import in the package."""
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG).parts
        layer = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield layer, node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield layer, alias.name


def imported_layers(layer: str) -> set[str]:
    out = set()
    for who, module in imports():
        if who != layer:
            continue
        top, _, rest = module.partition(".")
        out.add(rest.split(".")[0] if top == "dualbus_pipeline" else f"<{top}>")
    return out - {layer}


def test_probes_know_no_storage_no_dagster_and_not_the_reference_stack() -> None:
    used = imported_layers("probes")
    assert {"config", "errors"} <= used
    assert not used & {"store", "slospec", "report", "alerts", "defs", "commands", "stack",
                       "responder", "<dagster>", "<duckdb>"}, used


def test_the_reference_stack_shares_no_code_with_the_probes() -> None:
    used = imported_layers("stack")
    assert "probes" not in used and not used & {"store", "slospec", "report", "defs",
                                                "<dagster>", "<duckdb>"}, used


def test_the_store_sits_below_the_slo_language() -> None:
    used = imported_layers("store")
    assert not used & {"slospec", "report", "alerts", "defs", "commands", "<dagster>"}, used


def test_only_defs_and_the_cli_wiring_know_dagster() -> None:
    knows = {layer for layer, module in imports() if module.split(".")[0] == "dagster"}
    assert knows <= {"defs", "commands", "definitions"}, knows


def test_only_store_and_its_readers_open_duckdb() -> None:
    knows = {layer for layer, module in imports() if module.split(".")[0] == "duckdb"}
    assert knows <= {"store", "report", "alerts", "slospec", "commands", "defs"}, knows


def test_the_responder_is_standard_library_only() -> None:
    """Engines import `responder.py` alone: no dualbus module (the probes above all: the
    instrument and the platform's side of the protocol share no code), no third-party
    package at run time; redis types only under TYPE_CHECKING."""
    tree = ast.parse((PKG / "responder.py").read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    runtime, typed = set(), set()
    for node in ast.walk(tree):
        names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            (typed if id(node) in typing_only else runtime).add(name.split(".")[0])
    assert runtime and runtime <= set(sys.stdlib_module_names) | {"__future__"}, runtime
    assert typed == {"redis"}, typed
