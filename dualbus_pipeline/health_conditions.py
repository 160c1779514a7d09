"""The grammar of an engine's health conditions (`health.conditions`, Gatus-style) and of
`health.status_field`: parsed here, at the configuration layer, so that `dualbus validate`
names a bad condition and the probes (`probes/health.py`) apply the parsed form. Standard
library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_COND_RE = re.compile(
    r"^\s*(?P<left>\[STATUS\]|\[RESPONSE_TIME\]|(?:\[BODY\]|\$)(?:\.[A-Za-z0-9_\-]+|\[\d+\])*)"
    r"\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<right>.+?)\s*$")
_STEP_RE = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Condition:
    text: str
    source: str                  # STATUS | RESPONSE_TIME | BODY
    path: tuple[str | int, ...]  # inside the body
    op: str
    value: Any


def parse_condition(text: str) -> Condition:
    """One condition; ValueError with what is wrong (the config names the field)."""
    m = _COND_RE.match(text)
    if not m:
        raise ValueError("must look like '[BODY].status == UP', '[STATUS] == 200', "
                         "'[RESPONSE_TIME] < 300' or '$.checks[0].ok == true'")
    left = m["left"]
    if left in ("[STATUS]", "[RESPONSE_TIME]"):
        source, rest = left[1:-1], ""
    else:
        source, rest = "BODY", left[len("[BODY]"):] if left.startswith("[BODY]") else left[1:]
    path = tuple(int(i) if i else name for name, i in _STEP_RE.findall(rest))
    raw = m["right"]
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if m["op"] in ("<", "<=", ">", ">=") and not is_number(value):
        raise ValueError(f"{m['op']} compares numbers: {raw!r} is not one")
    return Condition(text.strip(), source, path, m["op"], value)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def path_of(field: str) -> tuple[str | int, ...]:
    """`status`, `health.state`, `$.checks[0].status` → the steps into the body."""
    rest = field[1:] if field.startswith("$") else "." + field
    return tuple(int(i) if i else name for name, i in _STEP_RE.findall(rest))
