"""What dualbus's OpenSLO v1 import and export share: names, durations, the mapping rules.

The mapping (docs/openslo.md has the full table):

* one dualbus SLO = one OpenSLO ``SLO`` with one objective and an inline indicator whose
  metric source is ``type: dualbus`` with ``spec.indicator`` (and ``aggregate``, ``targets``,
  ``window``, ``relative_to``/``offset`` when they apply);
* SLOs with a per-request form (latency ``pNN < X``, success ratios, availability) are
  ``Occurrences`` (a request, or an engine found operational, is the event); SLOs counted one
  event per run (``budget.target``) are ``Timeslices`` whose slice is one run;
* ``budget.period`` is the rolling ``timeWindow``; burn-rate alerts are ``alertPolicies``
  referencing ``AlertPolicy`` objects whose ``burnrate`` conditions are the workbook's rules
  (slospec/budget.py) scaled to the period;
* what OpenSLO has no field for (severity, weight, key, blocking, kind, grades, the warning
  line, ``budget.alerts``, "no budget") travels in ``metadata.annotations`` under
  ``dualbus/``.
"""

from __future__ import annotations

import re

from dualbus_pipeline.slospec.budget import rules_for

API_VERSION = "openslo/v1"
SOURCE_TYPE = "dualbus"
ANNOTATION = "dualbus/"
# OpenSLO requires a target in [0, 1); a dualbus SLO without an error budget is judged run by
# run and has none. Its export carries this placeholder and `dualbus/budget: none`.
PLACEHOLDER_TARGET = 0.99

OPS_TO_OPENSLO = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
OPS_FROM_OPENSLO = {v: k for k, v in OPS_TO_OPENSLO.items()}

# OpenSLO's duration shorthand: m minute, h hour, d day, w week, M month (30 d), Q quarter
# (90 d), Y year (365 d) -- case matters: 5m is five minutes, 5M five months.
_DURATION_RE = re.compile(r"^(\d+)([mhdwMQY])$")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400,
                "Q": 90 * 86400, "Y": 365 * 86400}


def duration_seconds(text: object) -> int | None:
    """Seconds of an OpenSLO duration shorthand like ``30d`` or ``5m``; None if not one."""
    m = _DURATION_RE.match(str(text).strip()) if isinstance(text, str | int) else None
    return int(m.group(1)) * UNIT_SECONDS[m.group(2)] if m else None


def shorthand(seconds: float) -> str:
    """The shortest exact shorthand of ``seconds``, rounded to whole minutes (at least 1m)."""
    minutes = max(1, round(seconds / 60))
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def dns_name(name: str) -> str:
    """A dualbus name (``[a-z0-9_.]``) as an RFC 1123 label, the way OpenSLO names objects."""
    return re.sub(r"[_.]", "-", name).strip("-")[:63].rstrip("-") or "slo"


def burn_policies(period_s: float) -> list[tuple[str, float, str, str, str]]:
    """(policy name, factor, lookback, short window, severity) of each burn-rate rule."""
    period = shorthand(period_s)
    return [(f"dualbus-burn-{period}-{r.severity}-{shorthand(r.long_s)}", r.factor,
             shorthand(r.long_s), shorthand(r.short_s), r.severity)
            for r in rules_for(period_s)]
