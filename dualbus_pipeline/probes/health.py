"""What a health response means: HTTP codes, body status words, Gatus-style conditions.

A sample is healthy when its HTTP code is one of ``ok_codes`` (default any 2xx), its body
status (the JSON body's ``status_field``, default ``status``; case-insensitive) is not an
unhealthy or starting word (and, when ``healthy`` lists words, is one of them), every
condition holds and it answered within ``max_response_ms``. Otherwise the sample fails and its
error names what failed: ``http 503``, ``status unhealthy``, ``starting: initializing``,
``status 'busy' is not healthy (healthy: ok, up)``, ``condition [BODY].redis.connected ==
true failed (got false)``, ``slow: 312.0 ms > 200 ms``.

Conditions, as Gatus writes them: ``<placeholder> <op> <value>`` with placeholders
``[STATUS]`` (the HTTP code), ``[RESPONSE_TIME]`` (ms), ``[BODY]`` followed by a path
(``[BODY].checks[0].name``), or the same path as JSONPath (``$.checks[0].name``); operators
``== != < <= > >=``; values JSON literals (``200``, ``true``, ``null``, ``"a b"``) or bare words
(``UP``). Ordering operators need numbers on both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dualbus_pipeline.health_conditions import Condition, is_number, parse_condition, path_of

_MISSING = object()


def _at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        found = (isinstance(step, int) and isinstance(doc, list) and step < len(doc)) or (
            isinstance(step, str) and isinstance(doc, dict) and step in doc)
        if not found:
            return _MISSING
        doc = doc[step]
    return doc


def _holds(c: Condition, actual: Any) -> bool:
    if c.op in ("==", "!="):
        same = actual == c.value or (isinstance(c.value, str) and not isinstance(actual, str)
                                     and json.dumps(actual) == c.value)
        return same if c.op == "==" else not same
    if not is_number(actual):
        return False
    a, b = float(actual), float(c.value)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[c.op]


@dataclass(frozen=True)
class HealthRule:
    """An engine's health check, compiled from its `health:` settings."""

    ok_codes: frozenset[int] | None
    status_path: tuple[str | int, ...]
    healthy: frozenset[str] | None
    starting: frozenset[str]
    degraded: frozenset[str]
    unhealthy: frozenset[str]
    conditions: tuple[Condition, ...]
    max_response_ms: float | None

    def body_status(self, doc: Any) -> str | None:
        v = _at(doc, self.status_path)
        return None if v is _MISSING or v is None else str(v).lower()

    def judge(self, code: int, body: bytes, latency_ms: float) -> tuple[bool, str | None,
                                                                        str | None]:
        """(healthy, the error when not, the body status word)."""
        doc = _json(body)
        word = self.body_status(doc) if doc is not None else None
        if not (code in self.ok_codes if self.ok_codes is not None else 200 <= code < 300):
            return False, f"http {code}", word
        if word is not None and word in self.unhealthy:
            return False, f"status {word}", word
        if word is not None and word in self.starting:
            return False, f"starting: {word}", word
        if self.healthy is not None and word not in self.healthy and \
                (word is None or word not in self.degraded):
            return False, (f"status {word!r} is not healthy (healthy: "
                           f"{', '.join(sorted(self.healthy))})"), word
        failed = []
        for c in self.conditions:
            actual = (code if c.source == "STATUS" else round(latency_ms, 3)
                      if c.source == "RESPONSE_TIME" else _at(doc, c.path))
            if actual is _MISSING or not _holds(c, actual):
                got = "missing" if actual is _MISSING else json.dumps(actual)[:60]
                failed.append(f"condition {c.text} failed (got {got})")
        if failed:
            return False, "; ".join(failed), word
        if self.max_response_ms is not None and latency_ms > self.max_response_ms:
            return False, f"slow: {latency_ms:.1f} ms > {self.max_response_ms:g} ms", word
        return True, None, word


def compile_rule(check: Any) -> HealthRule:
    """The rule of a `HealthCheck` (settings.py) an engine's probe applies."""
    return HealthRule(
        ok_codes=frozenset(check.ok_codes) if check.ok_codes is not None else None,
        status_path=path_of(check.status_field),
        healthy=frozenset(check.healthy) if check.healthy is not None else None,
        starting=frozenset(check.starting), degraded=frozenset(check.degraded),
        unhealthy=frozenset(check.unhealthy),
        conditions=tuple(parse_condition(c) for c in check.conditions),
        max_response_ms=check.max_response_ms)


def _json(body: bytes) -> Any:
    if not body.lstrip().startswith((b"{", b"[")):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
