"""Asset checks generated from the SLO YAML: one `multi_asset_check`, one spec per SLO.

Each check sits on the asset whose data its indicator reads (catalogue `asset`) and depends on
`slo_results`, the asset that evaluates the run; the check only reads this run's verdicts back
from the warehouse. Severity follows the SLO; `blocking` only where the spec says so.

A blocking check sits on `slo_results` itself: blocking a measurement asset would make
`slo_results` wait for a check that waits for `slo_results` (Dagster 1.13 rejects that cycle),
and what a blocking SLO should hold back is what comes after the verdicts (trends, report).

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

from dualbus_pipeline.slospec.model import Slo
from dualbus_pipeline.store.slo_queries import results_by_slo

SLO_RESULTS = AssetKey("slo_results")


def check_asset(slo: Slo) -> AssetKey:
    """The asset the check is shown on (see the module docstring for blocking checks)."""
    return SLO_RESULTS if slo.blocking else AssetKey(slo.spec.asset)


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
            additional_deps=[] if asset == SLO_RESULTS else [SLO_RESULTS],
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
    gated = [r for r in rows if r["outcome"] in ("breach", "no_data")]
    failed_targets = [r["target"] for r in gated]
    graded = [r for r in rows if r["attainment"] is not None]
    worst = min(graded, key=lambda r: r["attainment"]) if graded else (gated or rows)[0]
    metadata: dict[str, Any] = {
        **common,
        "targets": len(rows),
        "failed_targets": ", ".join(failed_targets) or "none",
        "worst_target": worst["target"],
        "values": MetadataValue.json({r["target"]: r["value"] for r in rows}),
        "grades": MetadataValue.json({r["target"]: r["grade"] for r in rows}),
        "outcomes": MetadataValue.json({r["target"]: r["outcome"] for r in rows}),
    }
    if worst["value"] is not None:
        metadata["worst_value"] = float(worst["value"])
    if len(rows) == 1 and rows[0]["value"] is not None:
        metadata["value"] = float(rows[0]["value"])
    budgets = [r["error_budget_remaining"] for r in rows
               if r["error_budget_remaining"] is not None]
    if budgets:
        metadata["error_budget_remaining"] = float(min(budgets))
    description = (f"{len(gated)} of {len(rows)} targets missed {slo.objective.text()}: "
                   f"{worst['target']} — {worst['reason']}" if gated
                   else f"all {len(rows)} targets meet {slo.objective.text()}")
    return AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=not gated,
                            severity=severity, description=description[:2000],
                            metadata=metadata)
