"""Rendering a warehouse of known runs: sections, numbers equal to the warehouse's, failures
first, escaping, invalid data, recommendations, and atomic report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dualbus_pipeline.errors import DualbusError
from dualbus_pipeline.report.formatting import fmt_ms, fmt_rate
from dualbus_pipeline.report.render import md_escape, render_reports, write_report_files
from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.queries import history, run_bundle
from dualbus_pipeline.store.trends import report_trends
from tests.report_fixtures import XSS, make_warehouse, write_run

MD_SECTIONS = ("## Executive summary", "## System overview", "## Engines by latency tier",
               "## Engines needing maintenance", "## Per-bus analysis",
               "## Cross-engine communication", "## Grades by category",
               "## Performance vs objectives", "## Recommendations", "## Production readiness",
               "## Trend vs baseline", "## Error budgets", "## Methodology")
HTML_SECTIONS = ("summary", "overview", "engines", "maintenance", "buses", "pairs", "grades",
                 "objectives", "recommendations", "readiness", "trends", "budgets",
                 "methodology")


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return make_warehouse(tmp_path_factory.mktemp("wh") / "w.duckdb", 3,
                          platform=f"Nautilus {XSS}")


@pytest.fixture(scope="module")
def rendered(wh: Warehouse) -> tuple[dict[str, Any], dict[str, str]]:
    with wh.connect() as con:
        results = build_results(run_bundle(con, "run-3"))
        trends = report_trends(con, "run-3")
        past = history(con, before_run="run-3", limit=30)
    return results, render_reports(results, trends=trends, history=past)


def section(md: str, heading: str) -> str:
    start = md.index(heading)
    nxt = md.find("\n## ", start + len(heading))
    return md[start:] if nxt < 0 else md[start:nxt]


def test_every_section_present_in_order(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    positions = [out["md"].index(h) for h in MD_SECTIONS]
    assert positions == sorted(positions)
    for sid in HTML_SECTIONS:
        assert f'<section id="{sid}"' in out["html"]


def test_engine_numbers_equal_the_warehouse(
        wh: Warehouse, rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    with wh.connect() as con:
        p50, p90, p99, p999, mx = con.execute(
            "SELECT p50, p90, p99, p999, max FROM summaries WHERE run_id = 'run-3' "
            "AND target = 'risk' AND metric = 'latency'").fetchone()  # type: ignore[misc]
        total = con.execute("SELECT sum(throughput) FROM targets WHERE run_id = 'run-3' "
                            "AND scope = 'bus'").fetchone()[0]  # type: ignore[index]
        lag = con.execute("SELECT lag FROM stream_stats WHERE run_id = 'run-3' AND "
                          "bus = 'engine_logic'").fetchone()[0]  # type: ignore[index]
        hot_p50, hot_p99 = con.execute(
            "SELECT p50, p99 FROM summaries WHERE run_id = 'run-3' AND target = 'risk' "
            "AND metric = 'hot'").fetchone()  # type: ignore[misc]
    row = (f"| Risk | {fmt_ms(hot_p50)} | {fmt_ms(hot_p99)} | {fmt_ms(p50)} | {fmt_ms(p90)} | "
           f"{fmt_ms(p99)} | {fmt_ms(p999)} | {fmt_ms(mx)} | 100 | 100 % |")
    tiers = section(out["md"], "## Engines by latency tier")
    assert row in tiers
    assert tiers.index("### Ultra low") < tiers.index("| Risk |") < tiers.index(
        "### High performance")
    assert "0.243 ms" in row and "0.486 ms" in row  # fixture: p50 0.2431, p99 = 2 × p50
    assert row.startswith("| Risk | 0.191 ms | 0.382 ms |")  # hot p50 0.1912, p99 = 2 × p50
    assert fmt_rate(total) == "6,680 msgs/s"
    assert "Combined bus throughput: 6,680 msgs/s" in out["md"]
    # consumers, length, lag in entries and in time, pending and its age, status
    assert (f"| risk-group | 2 | 42 | {lag} | {fmt_ms(lag * 50.0)} | {lag // 2} | "
            f"{fmt_ms(lag // 2 * 100.0)} | OK |") in section(out["md"], "## Per-bus analysis")
    assert "6,680 msgs/s" in out["html"]


def test_slo_numbers_and_error_budget(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    results, out = rendered
    objectives = section(out["md"], "## Performance vs objectives")
    assert ("| bus_throughput | marketdata | bus.throughput_msgs_per_s value | "
            "3,350 msgs/s | \\> 1000 | 3.35× | ✅ met | A- | error |") in objectives
    assert "| system_availability (key) | system | system.availability ratio | 75 % |" \
        in objectives
    budgets = section(out["md"], "## Error budgets")
    assert ("| system_availability | system | 6 / 8 | 90 % | 25 % | 2.50× | ok: burn rate "
            "below every alert threshold |") in budgets
    grades = section(out["md"], "## Grades by category")
    assert "| Latency | F | 3/5 |" in grades          # worst graded latency SLO
    assert "| Reliability and availability | C | 0/1 |" in grades
    assert len([s for s in results["slos"] if s["kind"] == "tier"]) == 4
    assert "tier" not in objectives                  # tiers group engines, they are not SLOs


def test_failures_lead_the_executive_summary(
        rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    summary = section(out["md"], "## Executive summary")
    assert "**Overall grade: C**" in summary
    assert summary.index("### Breaches") < summary.index("### Key figures")
    breaches = section(summary, "### Breaches")
    lines = [ln for ln in breaches.splitlines() if ln.startswith("| error") or
             ln.startswith("| warning")]
    assert lines[0].startswith("| error | system_availability (key)")
    assert any("engine_optimization_target | strategy | 1.142 ms" in ln for ln in lines)
    assert "❌ unreachable — engine **WebSocket**: connection refused" in summary
    assert "❌ unhealthy — engine **VPIN**" in summary
    assert "pair **ml → strategy**: no reply within 2.5 s" in summary
    assert "Engines operational: 6/8 (75 %)" in summary
    html_summary = out["html"].split('<section id="overview"')[0]
    assert "WebSocket" in html_summary and "unreachable" in html_summary


def test_healthy_platform_says_so(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "ok.duckdb")
    write_run(wh, "good-1", with_failures=False)
    with wh.connect() as con:
        out = render_reports(build_results(run_bundle(con, "good-1")))
    summary = section(out["md"], "## Executive summary")
    assert "Every engine, bus and cross-engine path was operational." in summary
    assert "**Overall grade: A**" in summary
    # no trend data passed: an honest statement, not an empty table
    assert "No history yet" in section(out["md"], "## Trend vs baseline")
    assert "No history yet" in out["html"]


def test_user_names_are_escaped(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    assert XSS not in out["html"]
    assert "<script" not in out["html"].lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out["html"]
    assert XSS not in out["md"]
    assert "# Nautilus \\<script\\>alert(1)\\</script\\>" in out["md"]
    assert "| \\<script\\>alert(1)\\</script\\> | 0.230 ms | 0.460 ms | 0.350 ms |" \
        in out["md"]


def test_markdown_escapes_pipes_and_html() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("<b>x</b>") == "\\<b\\>x\\</b\\>"
    assert md_escape("enhanced_vpin") == "enhanced_vpin"   # intraword _ is not emphasis
    assert md_escape("_x_ *y*") == "\\_x\\_ \\*y\\*"


def test_markdown_escape_fast_path_changes_nothing() -> None:
    """Text with no character any rule touches is returned as is; everything else goes
    through every rule: random strings over the special characters agree with the rules
    applied unconditionally."""
    import random
    import re

    def every_rule(value: object) -> str:
        text = str(value).replace("\r", " ").replace("\n", " ")
        text = re.sub(r"([\\`*\[\]<>|&#!])", r"\\\1", text)
        return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)

    rng = random.Random(5)
    alphabet = "ab9 _.-\\`*[]<>|&#!\r\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        assert md_escape(text) == every_rule(text), repr(text)
    for value in (0.35, 12, None, "e0000", "engine_logic", "a\nb", "x_"):
        assert md_escape(value) == every_rule(value)


def test_pipe_in_title_does_not_break_a_table(
        rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    results, _ = rendered
    changed = json.loads(json.dumps(results))
    for e in changed["engines"]:
        if e["name"] == "risk":
            e["title"] = "Risk | Team A"
    md = render_reports(changed)["md"]
    row = next(ln for ln in md.splitlines() if ln.startswith("| Risk"))
    assert row.startswith("| Risk \\| Team A | 0.191 ms | 0.382 ms | 0.243 ms |")
    assert row.count(" | ") == 11  # 12 cells; the escaped pipe is not a separator


def test_invalid_data_is_shown_as_such(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    reason = "no valid data (probe fell behind schedule: lateness p99 40 ms)"
    maint = section(out["md"], "## Engines needing maintenance")
    factor = next(ln for ln in maint.splitlines() if ln.startswith("| Factor"))
    assert reason in factor
    assert "0.270" not in factor          # its (invalid) p50 is never printed as a figure
    assert "Factor" not in section(out["md"], "## Engines by latency tier")
    assert "Not assessed (no valid data or inconclusive) (1/8)" in out["md"]
    assert reason in out["html"]


def test_recommendations_follow_the_rules(
        rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    recs = section(out["md"], "## Recommendations")
    immediate = section(recs, "### Immediate") if "### Immediate" in recs else ""
    assert "**Restart engine WebSocket**" in immediate
    assert "**Investigate engine VPIN**" in immediate
    # lag 10, 20, 30 over the three runs: rising
    assert ("**Scale or fix the consumers of 1 stream(s) whose lag is rising** — stream "
            "engine_logic-risk-stream (group risk-group) on Engine Logic Bus: lag rose over "
            "runs: 10, 20, 30") in immediate
    assert ("**Optimize 1 engine above the 0.5 ms optimization target on paced latency** — "
            "p50 on paced latency: Strategy (1.142 ms) vs \\< 0.5 ms") in recs
    assert ("**Re-run the probe for 1 target(s) without valid data or adjust the probe "
            "settings** — engine Factor (probe fell behind schedule") in recs
    assert "with baseline run run-2" in recs       # the relative SLO that regressed
    ready = section(out["md"], "## Production readiness")
    assert "### Production ready (4/8)" in ready
    assert "### Optimization candidates (1/8)" in ready
    assert "### Maintenance required (2/8)" in ready


def test_trends_and_methodology_come_from_data(
        rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    trend = section(out["md"], "## Trend vs baseline")
    assert "| delivery_regression | engine_logic | 0.450 ms | 0.902 ms | 0.50× | regressed |" \
        in trend
    assert "latest baseline run `run-2`" in trend
    # the trend tables' own series (store/trends.py), as the pipeline stores them
    assert "| engine_logic consumer lag | 15 entries | 30 entries | 0.50× | regressed | 3 |" \
        in trend
    assert "| risk latency p50 | 0.300 ms | 0.300 ms | 1.00× | steady | 3 |" in trend
    assert "Moves within ±20 % count as steady." in trend  # baseline.regression_pct
    meth = section(out["md"], "## Methodology")
    assert "| Requests per engine | 100 |" in meth
    assert "| Round-trip timeout | 2.5s |" in meth
    assert "| Bus operation timeout | 1.5s |" in meth
    assert "perf_counter_ns" in meth
    assert "intended" in meth


def test_json_is_the_results(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    results, out = rendered
    assert json.loads(out["json"]) == json.loads(json.dumps(results, default=str))


def test_default_tiers_when_no_tier_slo(rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    results, _ = rendered
    changed = {**results, "slos": [s for s in results["slos"] if s["kind"] != "tier"]}
    md = render_reports(changed)["md"]
    tiers = section(md, "## Engines by latency tier")
    assert "grouped by their hot-path p50: the seed's tiers" in tiers
    assert "### Ultra-low latency (hot-path p50 \\< 0.3 ms)" in tiers
    assert tiers.index("| Risk |") < tiers.index("### High performance")
    # the optimization SLO (kind: optimization) bounds Standard; Strategy (hot 1.05 ms) is above
    assert "### Standard (hot-path p50 \\< 0.5 ms)" in tiers
    above = section(tiers + "\n## end", "### Above the optimization target")
    assert "| Strategy | 1.051 ms |" in above and "| Risk |" not in above


def test_write_report_files_atomically(tmp_path: Path,
                                       rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    _, out = rendered
    paths = write_report_files("run-3", out, tmp_path)
    assert paths["md"] == tmp_path.resolve() / "run-3" / "report.md"
    assert paths["html"].read_text() == out["html"]
    assert json.loads(paths["json"].read_text())["run_id"] == "run-3"
    assert sorted(p.name for p in (tmp_path / "run-3").iterdir()) == [
        "report.html", "report.md", "results.json"]          # no temp files left


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "", "/abs", "x\\y"])
def test_write_report_files_refuses_escaping_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DualbusError, match="refusing run id"):
        write_report_files(bad, {"md": "x"}, tmp_path / "reports")
    assert not (tmp_path / "escape").exists()


def test_sections_follow_the_slo_kind_not_its_name(
        rendered: tuple[dict[str, Any], dict[str, str]]) -> None:
    results, out = rendered
    renamed = {"latency_tier_ultra_low": "fast_group", "engine_optimization_target": "speedy",
               "engine_latency": "latency_tier_lookalike"}
    changed = {**results, "slos": [{**s, "name": renamed.get(s["name"], s["name"])}
                                   for s in results["slos"]]}
    md = render_reports(changed)["md"]
    objectives = section(md, "## Performance vs objectives")
    # kind: objective, whatever the name says: an objective, not a tier
    assert "| latency_tier_lookalike (key) | risk |" in objectives
    assert "fast_group" not in objectives  # a tier groups engines; it is not an objective
    # the tiers and the optimization target read the kinds: the same picture as before
    tiers = section(md, "## Engines by latency tier")
    assert "Tiers come from the SLOs fast_group, latency_tier_high_performance" in tiers
    # the group is titled from the SLO's name; what is in it comes from its kind and result
    assert tiers.replace("fast_group", "latency_tier_ultra_low").replace(
        "### Fast group", "### Ultra low") == section(out["md"], "## Engines by latency tier")
    assert "**Optimize 1 engine above the 0.5 ms optimization target on paced latency**" in md
