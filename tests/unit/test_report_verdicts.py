"""The report and results.json under the new verdicts (issue 19, items 2, 4 and 8): the seed's
picture from raw samples judged by the shipped SLOs, inconclusive and pending results shown
as such (never as failures), "no verdict", hot and paced latency, notes and re-takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dualbus_pipeline.report.render import render_reports
from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.slospec.evaluate import Evaluation
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.queries import run_bundle
from tests.report_fixtures import (
    BUS_NOTE,
    INCONCLUSIVE,
    PAIR_NOTE,
    RE_MEASURED,
    write_run,
    write_seed_run,
)
from tests.slo_builders import add_run, engine
from tests.unit.test_report_render import section
from tests.unit.test_slo_outcomes import INCONCLUSIVE as EVAL_INCONCLUSIVE
from tests.unit.test_slo_outcomes import slo

Rendered = tuple[dict[str, Any], dict[str, str]]


def render(wh: Warehouse, run_id: str) -> Rendered:
    with wh.connect() as con:
        results = build_results(run_bundle(con, run_id))
    return results, render_reports(results)


def sub(md: str, heading: str) -> str:
    """A ### subsection: up to the next ### or ## heading."""
    start = md.index(heading)
    ends = [i for i in (md.find("\n### ", start + 1), md.find("\n## ", start + 1)) if i > 0]
    return md[start:min(ends)] if ends else md[start:]


def numbered(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if re.match(r"^\d+\. \*\*", ln)]


# ------------------------------------------------------------------ the seed's picture


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evaluation, dict[str, Any],
                                                             dict[str, str]]:
    wh = Warehouse(tmp_path_factory.mktemp("seed") / "w.duckdb")
    ev = write_seed_run(wh)
    return (ev, *render(wh, "seed-1"))


def test_seed_fails_only_where_the_seed_does(
        seed: tuple[Evaluation, dict[str, Any], dict[str, str]]) -> None:
    ev, results, _ = seed
    failed = {(r.slo, r.target) for r in ev.results if r.outcome in ("breach", "no_data")}
    assert {t for _, t in failed} == {"websocket", "vpin", "system", "strategy",
                                      "backtesting"}
    assert {s for s, t in failed if t in ("strategy", "backtesting")} == {
        "engine_latency_p50_optimization"}
    assert {s for s, t in failed if t == "system"} == {"system_availability",
                                                      "system_availability_7d"}
    # the regression SLO has no baseline on a first run: pending, not 13 failures
    assert ev.overall["pending"] == 13 and ev.overall["inconclusive"] == 0
    assert results["system"] == {"engines_total": 13, "engines_operational": 11,
                                 "availability": 0.8462,
                                 "combined_bus_throughput_msgs_per_s": 6680.0}
    # a healthy engine's 100 % success grades A+ (it was a C+ on value/objective)
    success = {s["target"]: s["grade"] for s in results["slos"]
               if s["name"] == "engine_success_ratio"}
    assert success["risk"] == "A+" and success["websocket"] == "F"


def test_seed_report_reads_like_the_seed(
        seed: tuple[Evaluation, dict[str, Any], dict[str, str]]) -> None:
    _, _, out = seed
    md = out["md"]
    summary = section(md, "## Executive summary")
    assert "Engines operational: 11/13 (84.62 %)" in summary
    assert "| error | system_availability (key) | system | 84.62 % | \\> 0.9 | F |" in summary
    assert "13 pending baseline (not judged)" in summary
    assert "engine_latency_p90_regression" not in sub(summary, "### Breaches")
    maintenance = section(md, "## Engines needing maintenance")
    assert [ln.split(" | ")[0] for ln in maintenance.splitlines()
            if ln.startswith("| ") and "Status" not in ln and "---" not in ln] == [
        "| VPIN", "| WebSocket"]
    ready = section(md, "## Production readiness")
    for heading in ("### Production ready (9/13)", "### Optimization candidates (2/13)",
                    "### Maintenance required (2/13)"):
        assert heading in ready
    candidates = sub(ready, "### Optimization candidates")
    assert "- Backtesting (hot p50 0.746 ms)" in candidates
    assert "- Strategy (hot p50 1.044 ms)" in candidates
    tiers = section(md, "## Engines by latency tier")
    above = sub(tiers, "### Above the optimization target")
    assert [ln.split(" | ")[0] for ln in above.splitlines() if ln.startswith("| ")
            and "Engine" not in ln and "---" not in ln] == ["| Backtesting", "| Strategy"]


def test_seed_recommendations_one_cause_one_line(
        seed: tuple[Evaluation, dict[str, Any], dict[str, str]]) -> None:
    _, _, out = seed
    recs = numbered(section(out["md"], "## Recommendations"))
    assert [r.split(" — ")[0] for r in recs] == [
        "1. **Investigate engine VPIN**",
        "2. **Restart engine WebSocket**",
        "3. **Bring the system back within system_availability, system_availability_7d**",
        "1. **Optimize 2 engines above the 0.5 ms optimization target on the hot path**",
    ]
    assert "Strategy (1.044 ms), Backtesting (0.746 ms) vs \\< 0.5 ms" in recs[3]
    assert "not operational: VPIN, WebSocket" in recs[2]


def test_seed_methodology_and_json(
        seed: tuple[Evaluation, dict[str, Any], dict[str, str]]) -> None:
    _, results, out = seed
    assert results["methodology"]["probe_cpu_s"] == 1.25
    meth = section(out["md"], "## Methodology")
    assert "The probe's own CPU time in this run: 1.250 s" in meth
    assert "like `wrk -t1 -c1`" in meth and "idle wake-ups" in meth
    risk = next(e for e in results["engines"] if e["name"] == "risk")
    assert set(risk["hot_latency_ms"]) == {"mean", "p50", "p90", "p99", "p999", "max"}
    assert risk["hot_latency_ms"]["p50"] < risk["latency_ms"]["p50"]
    assert (risk["inconclusive"], risk["replaced"], risk["note"]) == (False, 0, None)
    websocket = next(e for e in results["engines"] if e["name"] == "websocket")
    assert websocket["hot_latency_ms"]["p50"] is None and websocket["hot_requests"] == 0
    assert "<strong>Hot</strong> = back-to-back requests" in out["html"]


# ------------------------------------------------------------------ inconclusive, pending


@pytest.fixture(scope="module")
def unjudged(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    wh = Warehouse(tmp_path_factory.mktemp("unjudged") / "w.duckdb")
    write_run(wh, "u-1", unjudged=True)
    return render(wh, "u-1")


def test_results_json_carries_outcomes_and_the_guard(unjudged: Rendered) -> None:
    results, _ = unjudged
    by = {(s["name"], s["target"]): s for s in results["slos"]}
    blind = by[("engine_latency", "ml")]
    assert (blind["outcome"], blind["passed"], blind["grade"]) == ("inconclusive", None, None)
    pending = by[("engine_latency_regression", "risk")]
    assert (pending["outcome"], pending["passed"]) == ("pending_baseline", None)
    assert by[("engine_latency", "risk")]["passed"] is True
    assert results["overall"]["inconclusive"] == 1 and results["overall"]["pending"] == 2
    ml = next(e for e in results["engines"] if e["name"] == "ml")
    assert (ml["valid"], ml["inconclusive"], ml["invalid_reason"], ml["solo_p50"]) == (
        False, True, INCONCLUSIVE, 0.42)
    assert ml["hot_latency_ms"]["p50"] == 0.2511
    features = next(e for e in results["engines"] if e["name"] == "features")
    assert (features["replaced"], features["note"]) == (3, RE_MEASURED)
    pair = next(p for p in results["pairs"] if p["to"] == "xss")
    assert (pair["replaced"], pair["solo_p50"], pair["note"]) == (2, 0.7, PAIR_NOTE)
    md_bus = next(b for b in results["buses"] if b["name"] == "marketdata")
    assert (md_bus["replaced"], md_bus["solo_p50"], md_bus["note"]) == (4, 0.4, BUS_NOTE)


def test_unjudged_results_are_shown_apart_from_failures(unjudged: Rendered) -> None:
    _, out = unjudged
    md = out["md"]
    summary = section(md, "## Executive summary")
    assert "· 1 inconclusive (not judged) · 2 pending baseline (not judged)" in summary
    assert f"- ❔ inconclusive — engine **ml** (engine_latency): {INCONCLUSIVE}" in summary
    assert "- ⏳ engine_latency_regression on 2 target(s): pending baseline: 2 of 5 runs" \
        in summary
    breaches = sub(summary, "### Breaches")
    assert "| ml |" not in breaches and "engine_latency_regression" not in breaches
    assert "| ML |" not in section(md, "## Engines needing maintenance")
    objectives = section(md, "## Performance vs objectives")
    assert "| engine_latency | ml | engine.latency_ms p99 | no data | \\< 10 | n/a | " \
        "❔ inconclusive (not judged) | — | error |" in objectives
    assert "⏳ pending baseline (not judged)" in objectives
    assert "1 inconclusive, 2 pending baseline |" in section(md, "## Grades by category")
    readiness = section(md, "## Production readiness")
    assert f"- ML (hot p50 0.251 ms): {INCONCLUSIVE}" in readiness
    recs = section(md, "## Recommendations")
    assert "**Re-run the probe for 1 inconclusive target(s) when the probe host is quieter" \
        in recs
    html = out["html"]
    assert "<strong>Not judged</strong>" in html
    objectives = html.split('<section id="objectives"')[1].split("</section>")[0]
    assert '<span class="pill none" title="inconclusive: p50 2.100 ms' in objectives
    assert '>pending baseline</span>' in objectives and '>missed</span>' in objectives


def test_notes_and_retakes_in_the_tables(unjudged: Rendered) -> None:
    _, out = unjudged
    md = out["md"]
    features = next(ln for ln in section(md, "## Engines by latency tier").splitlines()
                    if ln.startswith("| Features"))
    assert features.endswith(f"| {RE_MEASURED}; 3 sample(s) re-taken |")
    pairs = section(md, "## Cross-engine communication")
    assert f"| {PAIR_NOTE}; 2 sample(s) re-taken |" in pairs
    buses = section(md, "## Per-bus analysis")
    assert "success 100 %; 4 re-taken (the probe host delayed their send)" in buses
    assert f"- Measuring: {BUS_NOTE}" in buses


def test_nothing_judged_reads_no_verdict(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    add_run(wh, "blind", engines=[engine("ml", [2.1] * 100, reason=EVAL_INCONCLUSIVE,
                                         inconclusive=True)], slos=[slo("lat")])
    results, out = render(wh, "blind")
    assert results["overall"]["result"] == "no_verdict" and results["overall"]["grade"] is None
    summary = section(out["md"], "## Executive summary")
    assert summary.splitlines()[2] == (
        "**Overall: no verdict** · no SLO result of this run was a verdict (1 inconclusive, "
        "0 pending baseline): neither a pass nor a failure.")
    assert "Overall: **no verdict**" in section(out["md"], "## Grades by category")
    assert "A+" not in summary
    assert "<strong>Overall: no verdict</strong>" in out["html"]


def test_an_inconclusive_engine_is_tiered_by_its_hot_path(unjudged: Rendered) -> None:
    results, _ = unjudged
    # without tier SLOs the tiers read the hot path, which an inconclusive paced series
    # leaves intact: ML is tiered, its paced cells say why there is no figure
    out = render_reports({**results, "slos": [s for s in results["slos"]
                                              if "tier" not in s["name"]]})
    tiers = section(out["md"], "## Engines by latency tier")
    ml = next(ln for ln in tiers.splitlines() if ln.startswith("| ML |"))
    assert ml.startswith(f"| ML | 0.251 ms | 0.502 ms | {INCONCLUSIVE} | — | — | — | — | 100 |")
    assert tiers.index("### Ultra-low latency") < tiers.index("| ML |") < tiers.index(
        "### High performance")
    assert f'<td colspan="5"><span class="inconclusive">{INCONCLUSIVE}' \
        in out["html"]
