"""OpenSLO v1 objects as read from YAML files, and the context an import works in.

Each object keeps the document and path it came from, so every problem names its file and
line (``FILE:LINE: SLO name: dotted.path: why``); references (``indicatorRef``,
``alertPolicyRef``, ``conditionRef``) resolve by kind and name across every file given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualbus_pipeline.slospec.openslo import API_VERSION
from dualbus_pipeline.yamlsrc import Loc, YamlDoc, dotted, load_yaml_documents

KINDS = ("SLO", "SLI", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "Service",
         "DataSource")
UNUSED = {"Service": "dualbus's targets come from dualbus.yaml",
          "DataSource": "dualbus measures with its own probes",
          "AlertNotificationTarget": "dualbus sends alerts to the sinks under alerting: in "
                                     "dualbus.yaml"}


@dataclass(frozen=True)
class Obj:
    """One OpenSLO object and where it is written."""

    kind: str
    name: str
    data: dict[str, Any]
    doc: YamlDoc
    loc: Loc       # where the object starts in its YAML document (a top-level list index)
    shown: str

    def get(self, *path: str | int) -> Any:
        node: Any = self.data
        for part in path:
            found = (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node))
            if found:
                node = node[part]
            else:
                return None
        return node

    def at(self, *path: str | int) -> str:
        return (f"{self.shown}:{self.doc.line_of((*self.loc, *path))}: {self.kind} "
                f"{self.name}: {dotted(path)}")


Where = tuple[Obj, Loc]



@dataclass
class Context:
    """What an import collects: the objects by (kind, name), its problems and notes."""

    registry: dict[tuple[str, str], Obj] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, where: Where, message: str) -> None:
        obj, loc = where
        self.problems.append(f"{obj.at(*loc)}: {message}")

    def find(self, kind: str, name: object) -> Obj | None:
        return self.registry.get((kind, str(name)))

    def add(self, objects: Sequence[Obj]) -> None:
        for o in objects:
            first = self.registry.get((o.kind, o.name))
            if first is not None:
                self.problems.append(f"{o.at('metadata', 'name')}: a second {o.kind} named "
                                     f"{o.name!r} (first at {first.at()})")
                continue
            self.registry[(o.kind, o.name)] = o


def read_objects(paths: Sequence[Path], problems: list[str]) -> list[Obj]:
    out: list[Obj] = []
    for path in paths:
        shown = str(path)
        for doc in load_yaml_documents(path, shown_as=shown):
            problems += doc.problems
            if doc.data is None:
                continue
            items = list(enumerate(doc.data)) if isinstance(doc.data, list) else [(None,
                                                                                   doc.data)]
            for i, item in items:
                loc: Loc = () if i is None else (i,)
                obj = _object(item, doc, loc, shown, problems)
                if obj is not None:
                    out.append(obj)
    return out


def _object(item: Any, doc: YamlDoc, loc: Loc, shown: str, problems: list[str]) -> Obj | None:
    where = f"{shown}:{doc.line_of(loc)}: {dotted(loc)}"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be an OpenSLO object (apiVersion, kind, metadata, "
                        "spec)")
        return None
    version, kind = item.get("apiVersion"), item.get("kind")
    name = (item.get("metadata") or {}).get("name") if isinstance(item.get("metadata"),
                                                                   dict) else None
    if version != API_VERSION:
        problems.append(f"{shown}:{doc.line_of((*loc, 'apiVersion'))}: "
                        f"{dotted((*loc, 'apiVersion'))}: dualbus reads {API_VERSION} "
                        f"(got {version!r})")
        return None
    if kind not in KINDS:
        problems.append(f"{shown}:{doc.line_of((*loc, 'kind'))}: {dotted((*loc, 'kind'))}: "
                        f"must be one of {', '.join(KINDS)} (got {kind!r})")
        return None
    if not isinstance(name, str) or not name:
        problems.append(f"{shown}:{doc.line_of((*loc, 'metadata'))}: {kind}: metadata.name: "
                        "required")
        return None
    return Obj(str(kind), name, item, doc, loc, shown)
