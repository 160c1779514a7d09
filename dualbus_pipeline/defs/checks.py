"""Asset checks generated from the SLO YAML: one `multi_asset_check`, one spec per SLO.

Each check sits on the asset whose data its indicator reads (catalogue `asset`) and depends on
`slo_results`, the asset that evaluates the run; the check only reads this run's verdicts back
from the warehouse. Severity follows the SLO; `blocking` only where the spec says so.

A blocking check sits on `trend_tables`, so a failing one holds back the graded report (the
run's promotion) and never the alerts: `alert_dispatch` hangs off `slo_results` directly.
Blocking a measurement asset would make `slo_results` wait for a check that waits for
`slo_results` (Dagster 1.13 rejects that cycle); blocking `slo_results` would skip the alert
of the very SLO that failed.

A check fails when a target breached or had no data. Inconclusive and pending-baseline targets
are neither: they never fail a check, and the description and metadata
(`inconclusive_targets`, `pending_targets`, `outcomes`) name them so a green check with blind
spots does not read as a clean pass.

No `from __future__ import annotations` here: Dagster inspects the check function's
`context` annotation at definition time and needs the real class, not a string.
"""


from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from dualbus_pipeline.slospec.gate import outcome_of
from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store.slo_queries import results_by_slo

SLO_RESULTS = AssetKey("slo_results")
GATED = AssetKey("trend_tables")  # what blocking checks sit on: the report comes after it


def check_asset(slo: Slo) -> AssetKey:
    """The asset the check is shown on (see the module docstring for blocking checks)."""
    return GATED if slo.blocking else AssetKey(slo.spec.asset)


def make_slo_checks(slos: Sequence[Slo],
                    warehouse_resource_key: str = "warehouse") -> list[AssetChecksDefinition]:
    """The asset checks for `slos` (already loaded and validated by load_slo_dir)."""
    if not slos:
        return []
    by_key: dict[AssetCheckKey, Slo] = {}
    specs = []
    for slo in slos:
        asset = check_asset(slo)
        spec = AssetCheckSpec(
            name=slo.name, asset=asset,
            additional_deps=[] if asset == GATED else [SLO_RESULTS],
            blocking=slo.blocking,
            description=(slo.description or slo.name) + f" [{slo.indicator} {slo.aggregate} "
            f"{slo.objective.text()}, {slo.severity}]",
            metadata={"indicator": slo.indicator, "aggregate": slo.aggregate,
                      "objective": slo.objective.text(), "severity": slo.severity,
                      "key": slo.key, "window": slo.window or "this run"})
        specs.append(spec)
        by_key[spec.key] = slo

    @multi_asset_check(specs=specs, name="slo_checks", can_subset=True,
                       required_resource_keys={warehouse_resource_key},
                       description="SLO verdicts of this run, one check per SLO in slo/*.yaml")
    def slo_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        wh = getattr(context.resources, warehouse_resource_key).warehouse()
        with wh.connect() as con:
            stored = results_by_slo(con, context.run.run_id)
        for key in context.selected_asset_check_keys:
            yield check_result(by_key[key], key, stored.get(by_key[key].name, []),
                               evaluated=bool(stored))

    return [slo_checks]


def check_result(slo: Slo, key: AssetCheckKey, rows: list[dict[str, Any]],
                 evaluated: bool) -> AssetCheckResult:
    """One AssetCheckResult from the SLO's stored rows for this run."""
    severity = AssetCheckSeverity.WARN if slo.severity == "warning" else AssetCheckSeverity.ERROR
    common: dict[str, Any] = {"objective": slo.objective.text(), "indicator": slo.indicator,
                              "aggregate": slo.aggregate}
    if not rows:
        passed = evaluated  # no target in scope is not a failure; no evaluation at all is
        text = (f"no {slo.scope} targets in this run" if evaluated
                else "no SLO results stored for this run (slo_results did not evaluate)")
        return AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=passed,
                                severity=severity, description=text,
                                metadata={**common, "targets": 0})
    outcomes = {r["target"]: outcome_of(r) for r in rows}
    gated = [r for r in rows if outcomes[r["target"]] in ("breach", "no_data")]
    return AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=not gated,
                            severity=severity,
                            description=_description(slo, rows, gated, outcomes)[:2000],
                            metadata={**common, **_metadata(rows, gated, outcomes)})


def _worst(rows: list[dict[str, Any]], gated: list[dict[str, Any]]) -> dict[str, Any]:
    graded = [r for r in rows if r["attainment"] is not None]
    return min(graded, key=lambda r: r["attainment"]) if graded else (gated or rows)[0]


def _named(outcomes: dict[str, str], outcome: str) -> list[str]:
    return [t for t, o in outcomes.items() if o == outcome]


def _metadata(rows: list[dict[str, Any]], gated: list[dict[str, Any]],
              outcomes: dict[str, str]) -> dict[str, Any]:
    worst = _worst(rows, gated)
    metadata: dict[str, Any] = {
        "targets": len(rows),
        "failed_targets": ", ".join(r["target"] for r in gated) or "none",
        "inconclusive_targets": ", ".join(_named(outcomes, "inconclusive")) or "none",
        "pending_targets": ", ".join(_named(outcomes, "pending_baseline")) or "none",
        "worst_target": worst["target"],
        "values": MetadataValue.json({r["target"]: r["value"] for r in rows}),
        "grades": MetadataValue.json({r["target"]: r["grade"] for r in rows}),
        "outcomes": MetadataValue.json(outcomes),
    }
    if worst["value"] is not None:
        metadata["worst_value"] = float(worst["value"])
    if len(rows) == 1 and rows[0]["value"] is not None:
        metadata["value"] = float(rows[0]["value"])
    budgets = [r["error_budget_remaining"] for r in rows
               if r["error_budget_remaining"] is not None]
    if budgets:
        metadata["error_budget_remaining"] = float(min(budgets))
    return metadata


def _description(slo: Slo, rows: list[dict[str, Any]], gated: list[dict[str, Any]],
                 outcomes: dict[str, str]) -> str:
    objective = slo.objective.text()
    judged = [r for r in rows if outcomes[r["target"]] in ("pass", "breach", "no_data")]
    if gated:
        worst = _worst(rows, gated)
        text = (f"{len(gated)} of {len(rows)} targets missed {objective}: "
                f"{worst['target']} — {worst['reason']}")
    elif judged:
        which = "targets" if len(judged) == len(rows) else "judged targets"
        text = f"all {len(judged)} {which} meet {objective}"
    else:
        text = f"no target was judged against {objective}"
    for outcome, label in (("inconclusive", "inconclusive"),
                           ("pending_baseline", "pending baseline")):
        named = _named(outcomes, outcome)
        if named:
            first = next(r for r in rows if r["target"] == named[0])
            text += (f"; {len(named)} {label} (not judged): {', '.join(named)} — "
                     f"{first['reason']}")
    return text
