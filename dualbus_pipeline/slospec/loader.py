"""Loading `slo/*.yaml`: every problem of every file, one line each, then SpecError.

Problems look like ``slo/engines.yaml:12: slos[2].objective.op: must be one of <, <=, >, >=
(got '<>')``. Each SLO is validated on its own, so one broken SLO does not hide the problems
of the next; names must be unique across all files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dualbus_pipeline.config import LoadedConfig, shipped_dir
from dualbus_pipeline.errors import SpecError
from dualbus_pipeline.slospec.model import Slo, SloFile, cross_problems
from dualbus_pipeline.yamlsrc import YamlDoc, dotted, load_yaml, validation_problems


def resolve_slo_dir(arg: str | None, cfg: LoadedConfig | None) -> Path:
    """--slo DIR, else `slo/` next to the config file if present, else the shipped SLOs."""
    if arg:
        return Path(arg)
    if cfg is not None:
        beside = cfg.base_dir / "slo"
        if beside.is_dir():
            return beside
    return shipped_dir("slo")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def slo_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix in (".yaml", ".yml"))


def load_slo_dir(directory: str | Path) -> list[Slo]:
    """Load and validate every SLO file in `directory`; raise SpecError listing all problems."""
    d = Path(directory)
    if not d.is_dir():
        raise SpecError(f"{_shown(d)}: SLO directory not found (pass --slo DIR)")
    files = slo_files(d)
    if not files:
        raise SpecError(f"{_shown(d)}: no SLO files (*.yaml) in this directory")
    problems: list[str] = []
    slos: list[Slo] = []
    first_seen: dict[str, str] = {}
    for path in files:
        shown = _shown(path)
        file_slos, file_problems = load_slo_file(path, shown_as=shown)
        problems += file_problems
        for index, slo, line in file_slos:
            where = f"{shown}:{line}"
            if slo.name in first_seen:
                problems.append(f"{where}: slos[{index}].name: duplicate SLO name {slo.name!r} "
                                f"(first defined at {first_seen[slo.name]}; names must be "
                                "unique across all files)")
                continue
            first_seen[slo.name] = where
            slos.append(slo)
    if problems:
        raise SpecError(problems)
    return slos


def load_slo_file(path: Path, *, shown_as: str) -> tuple[list[tuple[int, Slo, int | None]],
                                                        list[str]]:
    """The valid SLOs of one file (index, SLO, line of its name) and the file's problems."""
    doc = load_yaml(path, shown_as=shown_as)
    problems = list(doc.problems)
    if doc.data is None and problems:
        return [], problems
    if not isinstance(doc.data, dict):
        return [], [*problems, f"{shown_as}:{doc.line_of(()) or 1}: (top level): must be a "
                    "mapping with keys version and slos"]
    try:
        envelope = SloFile.model_validate(doc.data)
    except ValidationError as exc:
        problems += validation_problems(exc, doc, SloFile, shown_as=shown_as, with_line=True)
        raw = doc.data.get("slos")
        items = raw if isinstance(raw, list) else []
    else:
        items = envelope.slos
    out: list[tuple[int, Slo, int | None]] = []
    for i, item in enumerate(items):
        slo = _validate_one(item, i, doc, shown_as, problems)
        if slo is not None:
            out.append((i, slo, doc.line_of(("slos", i, "name"))))
    return out, problems


def _validate_one(item: Any, i: int, doc: YamlDoc, shown_as: str,
                  problems: list[str]) -> Slo | None:
    prefix = ("slos", i)
    if not isinstance(item, dict):
        problems.append(f"{shown_as}:{doc.line_of(prefix)}: {dotted(prefix)}: must be a "
                        f"mapping (name, scope, indicator, ...) (got {item!r})")
        return None
    try:
        slo = Slo.model_validate(item)
    except ValidationError as exc:
        problems += validation_problems(exc, doc, Slo, shown_as=shown_as, with_line=True,
                                        prefix=prefix)
        return None
    cross = cross_problems(slo)
    for loc, message, value in cross:
        full = (*prefix, *loc)
        problems.append(f"{shown_as}:{doc.line_of(full)}: {dotted(full)}: {message} "
                        f"(got {doc.shown(full, _raw(item, loc, value))!r})")
    return None if cross else slo


def _raw(item: Any, loc: tuple[str | int, ...], default: Any) -> Any:
    """The value as written in the file (pydantic may have coerced 90 to 90.0)."""
    node = item
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return default
    return node
