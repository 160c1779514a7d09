"""YAML sources with line numbers, `${VAR}` expansion and one-line validation problems.

Shared by the topology loader (config.py) and the SLO spec loader (slospec/): both report
problems as ``FILE[:LINE]: dotted.path: message (got 'value')`` and collect every problem
before failing, the way slok/sloth does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URL_SECRET_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<pw>[^@/]*)@")


@dataclass
class YamlDoc:
    """A parsed YAML file: its data, where each path starts, and raw text of expanded values."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    raw: dict[Loc, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unset: set[Loc] = field(default_factory=set)  # values naming an unset variable

    def line_of(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def shown(self, loc: Loc, value: Any) -> str:
        """The value as shown in a message: never an expanded secret, never a password."""
        if loc in self.raw:
            return self.raw[loc]
        return mask_secrets(str(value))


def mask_secrets(text: str) -> str:
    """Replace the password part of any URL in ``text`` with ``***``."""
    return _URL_SECRET_RE.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _walk_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[str],
                where: str) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    f"{where}:{key_node.start_mark.line + 1}: {dotted((*loc, key))}: "
                    "duplicate key (each key may appear once)"
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk_lines(value_node, (*loc, key), lines, problems, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk_lines(item, (*loc, i), lines, problems, where)


def _expand(value: Any, loc: Loc, doc: YamlDoc, env: Mapping[str, str], shown_as: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, str(k)), doc, env, shown_as) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), doc, env, shown_as) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        line = doc.line_of(loc)
        doc.unset.add(loc)
        doc.problems.append(
            f"{shown_as}:{line}: {dotted(loc)}: environment variable {name!r} is not set "
            f"(set it, or write ${{{name}:-default}}) (got {value!r})"
        )
        return ""

    doc.raw[loc] = value
    return _ENV_RE.sub(sub, value)


# libyaml's parser when PyYAML was built with it (the wheels are): ~10x faster on a
# 1,000-engine topology. Same safe constructor, same marks, same errors.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, loader_cls: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree (for line numbers) and the data built from it."""
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def load_yaml(path: Path, *, shown_as: str | None = None,
              env: Mapping[str, str] | None = None, expand_env: bool = True) -> YamlDoc:
    """Parse ``path`` with the safe loader; syntax errors become problems, not exceptions."""
    where = shown_as or str(path)
    doc = YamlDoc(path=path, data=None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc.problems.append(f"{where}: file not found")
        return doc
    except OSError as exc:
        doc.problems.append(f"{where}: cannot read file: {exc.strerror}")
        return doc
    try:
        try:
            node, data = _parse(text, _SafeLoader)
        except yaml.YAMLError:
            # Report the pure-Python parser's wording: it names what it found ("expected
            # the node content, but found '<stream end>'"), libyaml's does not.
            node, data = _parse(text, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        doc.problems.append(f"{where}{line}: invalid YAML: {problem}")
        return doc
    if node is not None:
        _walk_lines(node, (), doc.lines, doc.problems, where)
    doc.data = _expand(data, (), doc, os.environ if env is None else env, where) \
        if expand_env else data
    return doc


def load_yaml_documents(path: Path, *, shown_as: str | None = None) -> list[YamlDoc]:
    """Every document of a multi-document file (``---``), each with its own line map.

    No ``${VAR}`` expansion (foreign formats such as OpenSLO do not have it). A syntax error
    gives one document holding the problem and no data."""
    where = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) \
            else f"cannot read file: {exc.strerror}"
        return [YamlDoc(path=path, data=None, problems=[f"{where}: {reason}"])]
    docs: list[YamlDoc] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = YamlDoc(path=path, data=None)
            _walk_lines(node, (), doc.lines, doc.problems, where)
            doc.data = loader.construct_document(node)
            docs.append(doc)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [YamlDoc(path=path, data=None,
                        problems=[f"{where}{line}: invalid YAML: {problem}"])]
    finally:
        loader.dispose()
    return docs


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """Walk ``model`` along ``loc`` (minus the offending key) to list the keys allowed there."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fld = None
        for name, info in current.model_fields.items():
            if part in (name, info.alias):
                fld = info
                break
        if fld is None:
            return None
        current = _inner_model(fld.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(info.alias or name for name, info in current.model_fields.items())
    return None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validation_problems(exc: ValidationError, doc: YamlDoc, model: type[BaseModel], *,
                        shown_as: str, with_line: bool, prefix: Loc = ()) -> list[str]:
    """Turn a pydantic ValidationError into one line per problem."""
    out: list[str] = []
    for err in exc.errors():
        loc: Loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and
                                                             p.startswith("function-"))))
        etype = err["type"]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if etype == "extra_forbidden":
            allowed = _allowed_keys(model, loc[len(prefix):])
            msg = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif etype == "missing":
            msg = "required key is missing"
        got = ""
        if etype not in ("missing",) and not isinstance(err.get("input"), dict | list):
            got = f" (got {doc.shown(loc, err.get('input'))!r})"
        where = f"{shown_as}:{doc.line_of(loc)}" if with_line else shown_as
        out.append(f"{where}: {dotted(loc)}: {msg}{got}")
    return out
