"""The SLO spec (`version: dualbus/v1`) as frozen pydantic models, plus its cross-field rules.

A file is ``{version: dualbus/v1, slos: [...]}``. Field types are checked by pydantic; rules
that relate fields (the indicator belongs to the scope, the aggregate suits the indicator, a
relative objective has an offset) live in `cross_problems` so the loader can point each one
at the exact field and line. See docs/slos.md for the reference.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dualbus_pipeline.indicators import (
    ALL_AGGREGATES,
    CATALOGUE,
    Indicator,
    Scope,
)

VERSION = "dualbus/v1"
OPS = ("<", "<=", ">", ">=")
SCOPES = ("engine", "bus", "pair", "system")
SEVERITIES = ("warning", "error")
GRADE_ORDER = ("A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F")

_OFFSET_RE = re.compile(r"^([+-])(\d+(?:\.\d+)?)(%?)$")
_WINDOW_RE = re.compile(r"^(?:(\d+)\s*(d|h)|(\d+)\s*runs?)$")

Op = Literal["<", "<=", ">", ">="]
Loc = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_of(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


class Objective(_Model):
    """`{op: "<", value: 10}` or `{op: "<=", value: "+10%", relative_to: baseline}`, the
    latter optionally with `min_delta: 1`: the threshold is never closer to the baseline than
    that, in the indicator's unit (a sub-millisecond p90 doubles on host noise alone)."""

    op: Op
    value: float | str
    relative_to: Literal["baseline"] | None = None
    min_delta: float | None = Field(default=None, ge=0)

    @field_validator("op", mode="before")
    @classmethod
    def _op(cls, v: Any) -> str:
        return _one_of(v, OPS)

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError("must be a number, or an offset like '+10%' with "
                             "relative_to: baseline")
        return v

    @field_validator("relative_to", mode="before")
    @classmethod
    def _relative_to(cls, v: Any) -> Any:
        if v is not None and v != "baseline":
            raise ValueError("must be baseline (or leave it out for an absolute objective)")
        return v

    @property
    def relative(self) -> bool:
        return self.relative_to is not None

    def offset(self) -> tuple[float, bool]:
        """(signed amount, is_percent) of a relative objective."""
        m = _OFFSET_RE.match(str(self.value).strip())
        if not m:
            raise ValueError(f"not an offset: {self.value!r}")
        amount = float(m.group(2)) * (-1 if m.group(1) == "-" else 1)
        return amount, bool(m.group(3))

    def threshold(self, baseline: float | None = None) -> float:
        """The absolute number the value is compared with."""
        if not self.relative:
            return float(self.value)
        if baseline is None:
            raise ValueError("a relative objective needs a baseline")
        amount, percent = self.offset()
        delta = baseline * amount / 100 if percent else amount
        if self.min_delta is not None and abs(delta) < self.min_delta:
            up = amount > 0 or (amount == 0 and self.op in ("<", "<="))
            delta = self.min_delta if up else -self.min_delta
        return baseline + delta

    def text(self) -> str:
        if self.relative:
            floor = "" if self.min_delta is None else (
                f" (at least {'-' if str(self.value).strip().startswith('-') else '+'}"
                f"{_num(self.min_delta)})")
            return f"{self.op} {self.value} of baseline{floor}"
        return f"{self.op} {_num(float(self.value))}"

    def met(self, value: float, threshold: float) -> bool:
        return {"<": value < threshold, "<=": value <= threshold,
                ">": value > threshold, ">=": value >= threshold}[self.op]


def _num(x: float) -> str:
    return f"{x:g}"


Name = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=64)]
_PERIOD_RE = re.compile(r"^(\d+)\s*(d|h)$")


class Budget(_Model):
    """`budget: {target: 0.99, period: 30d, alerts: both}` (docs/slos.md, error budgets).

    target: the fraction of good events promised (default: from the objective, pNN → NN %,
    a ratio's own value; required for SLOs counted per run). period: the budget's rolling
    window. alerts: which alerts the SLO sends: `both` (per-run breach and burn rate), `burn`
    (burn rate only) or `run` (per-run breach only)."""

    target: float | None = Field(None, gt=0, lt=1)
    period: str = "30d"
    alerts: Literal["both", "burn", "run"] = "both"

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        m = _PERIOD_RE.match(v.strip())
        if not m or int(m.group(1)) == 0:
            raise ValueError("must be a duration like 30d, 7d or 24h")
        return v.strip()

    def period_seconds(self) -> float:
        m = _PERIOD_RE.match(self.period)
        assert m is not None  # validated
        return float(m.group(1)) * (86400 if m.group(2) == "d" else 3600)


class Slo(_Model):
    """One objective on one indicator over every target in scope."""

    name: Name
    description: str = ""
    scope: Scope
    targets: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)
    indicator: str
    aggregate: str
    objective: Objective
    # Keptn-style warning criteria: a miss of `objective` that still meets `warning` is a
    # warning-severity result (score 0.5, warning alert, no error gate), not an error
    warning: Objective | None = None
    window: str | None = None
    severity: Literal["warning", "error"] = "error"
    weight: float = Field(1.0, gt=0, le=1000)
    key: bool = False
    blocking: bool = False
    grades: dict[str, float] | None = None
    budget: Budget | None = None
    # what the report makes of it: an objective (default), a latency tier (engines grouped by
    # its grade bands) or the optimization target (docs/slos.md, latency tiers)
    kind: Literal["objective", "tier", "optimization"] = "objective"

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, v: Any) -> str:
        return _one_of(v, SCOPES)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> str:
        return _one_of(v, SEVERITIES)

    @field_validator("indicator")
    @classmethod
    def _indicator(cls, v: str) -> str:
        if v not in CATALOGUE:
            raise ValueError("unknown indicator (catalogue: " + ", ".join(CATALOGUE) + ")")
        return v

    @field_validator("aggregate", mode="before")
    @classmethod
    def _aggregate(cls, v: Any) -> str:
        return _one_of(v, ALL_AGGREGATES)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None and not _WINDOW_RE.match(v.strip()):
            raise ValueError("must be a duration like 7d or 24h, or a run count like '50 runs'")
        return v

    @field_validator("grades")
    @classmethod
    def _grades(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("needs at least one band like {'A': 2.0}")
        for grade, floor in v.items():
            if grade not in GRADE_ORDER:
                raise ValueError(f"unknown grade {grade!r} (grades: {', '.join(GRADE_ORDER)})")
            if grade == "F":
                raise ValueError("F needs no band: anything below the lowest band is F")
            if floor < 0:
                raise ValueError(f"band {grade} must be an attainment >= 0")
        ordered = sorted(v.items(), key=lambda kv: GRADE_ORDER.index(kv[0]))
        for (better, b_floor), (worse, w_floor) in pairwise(ordered):
            if w_floor >= b_floor:
                raise ValueError(f"bands must fall with the grade: {worse} ({w_floor:g}) "
                                 f"needs less attainment than {better} ({b_floor:g})")
        return dict(ordered)

    @property
    def spec(self) -> Indicator:
        return CATALOGUE[self.indicator]

    def window_runs(self) -> int | None:
        m = _WINDOW_RE.match((self.window or "").strip())
        return int(m.group(3)) if m and m.group(3) else None

    def window_seconds(self) -> float | None:
        m = _WINDOW_RE.match((self.window or "").strip())
        if not m or not m.group(1):
            return None
        return float(m.group(1)) * (86400 if m.group(2) == "d" else 3600)


class SloFile(_Model):
    """The envelope of one file; each SLO is validated on its own so every problem shows."""

    version: str
    slos: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        if v != VERSION:
            raise ValueError(f"must be {VERSION!r} (the only spec version this dualbus reads)")
        return str(v)


def _warning_problems(slo: Slo) -> list[tuple[Loc, str, Any]]:
    """The warning line must be an error SLO's looser line on the same side and footing."""
    obj, warn = slo.objective, slo.warning
    assert warn is not None
    loc: Loc = ("warning",)
    if slo.severity != "error":
        return [(loc, "a warning line turns an error into a warning: the SLO's severity must "
                 "be error", slo.severity)]
    if (obj.op in ("<", "<=")) != (warn.op in ("<", "<=")):
        return [(("warning", "op"), f"must point the same way as the objective ({obj.op})",
                 warn.op)]
    if obj.relative != warn.relative:
        return [(loc, "must be relative_to baseline exactly when the objective is", None)]
    try:
        mine = warn.offset()[0] if warn.relative else float(warn.value)
        theirs = obj.offset()[0] if obj.relative else float(obj.value)
    except (TypeError, ValueError):
        return []  # the value itself is reported by the objective rules
    looser = mine > theirs if obj.op in ("<", "<=") else mine < theirs
    if not looser:
        return [(("warning", "value"), f"must be looser than the objective "
                 f"({obj.text()}): a miss that meets it becomes a warning", warn.value)]
    return []


def cross_problems(slo: Slo) -> list[tuple[Loc, str, Any]]:
    """Rules between fields: (path inside the SLO, message, offending value)."""
    out: list[tuple[Loc, str, Any]] = []
    ind = slo.spec
    if ind.scope != slo.scope:
        out.append((("indicator",), f"belongs to scope {ind.scope}, not {slo.scope}",
                    slo.indicator))
    if slo.aggregate not in ind.aggregates:
        out.append((("aggregate",), f"must be one of {', '.join(ind.aggregates)} for "
                    f"{ind.name}", slo.aggregate))
    if slo.window is not None and slo.aggregate == "value":
        out.append((("aggregate",), "'value' reads one run; over a window use mean, min, max "
                    "or a percentile", slo.aggregate))
    if slo.scope == "system" and slo.targets is not None:
        out.append((("targets",), "system scope has a single target; remove targets",
                    slo.targets))
    obj = slo.objective
    if obj.relative:
        if not isinstance(obj.value, str) or not _OFFSET_RE.match(obj.value.strip()):
            out.append((("objective", "value"), "must be an offset like '+10%' or '-0.5' when "
                        "relative_to is baseline", obj.value))
        if slo.window is not None:
            out.append((("window",), "a relative objective compares one run with its "
                        "baseline; remove the window or use an absolute value", slo.window))
    elif isinstance(obj.value, str):
        out.append((("objective", "value"), "must be a number (an offset like '+10%' needs "
                    "relative_to: baseline)", obj.value))
    for part, o in (("objective", obj), ("warning", slo.warning)):
        if o is not None and o.min_delta is not None and not o.relative:
            out.append(((part, "min_delta"), "applies to a relative objective only "
                        "(relative_to: baseline)", o.min_delta))
    if slo.warning is not None:
        out += _warning_problems(slo)
    if slo.kind != "objective" and slo.indicator not in ("engine.latency_ms",
                                                          "engine.hot_latency_ms"):
        out.append((("kind",), f"a {slo.kind} SLO groups engines by latency: its indicator "
                    "must be engine.latency_ms or engine.hot_latency_ms", slo.kind))
    if slo.budget is not None:
        from dualbus_pipeline.slospec.budget import event_form  # budget.py imports this module

        if obj.relative:
            out.append((("budget",), "a relative objective has no error budget (no fixed "
                        "good/bad line per event); remove budget", "budget"))
        elif event_form(slo) is None:
            out.append((("budget", "target"), f"{slo.indicator} {slo.aggregate} has no "
                        "per-request form, so its budget counts one event per run and needs "
                        "a target (e.g. target: 0.99)", None))
    if not obj.relative and isinstance(obj.value, int | float) and ind.kind in (
            "ratio", "availability") and not 0 <= float(obj.value) <= 1:
        out.append((("objective", "value"), "ratios are fractions between 0 and 1 (write 0.95 "
                    "for 95 %)", obj.value))
    return out
