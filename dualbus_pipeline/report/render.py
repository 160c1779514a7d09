"""Render results.json (+ trend series and run history) into Markdown, HTML and JSON.

`render_reports` builds one view model (`build_view`, from `findings`) and hands it to two
Jinja2 environments: HTML with autoescape on, Markdown with a `finalize` hook that escapes
every printed value for Markdown (pipes, angle brackets, emphasis characters), so user-written
names can neither break a table nor inject HTML in either format. `write_report_files` puts
the three files under `reports_dir/<run_id>/`, each atomically.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup

from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.errors import DualbusError
from dualbus_pipeline.report import charts, findings
from dualbus_pipeline.report.engine_findings import HOT
from dualbus_pipeline.report.formatting import (
    fmt_factor,
    fmt_info,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_rate,
    fmt_unit,
    fmt_value,
    fmt_when,
)
from dualbus_pipeline.report.methodology import methodology
from dualbus_pipeline.report.recommendations import recommendations

FORMATS = ("md", "html", "json")
FILE_NAMES = {"md": "report.md", "html": "report.html", "json": "results.json"}
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TREND_CHARTS = 12


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&#!])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_ANY = re.compile(r"[\\`*\[\]<>|&#!_\r\n]")  # a character any rule below may change


def md_escape(value: Any) -> str:
    """Escape text for Markdown: no HTML, no table breaks, no emphasis, no links."""
    text = str(value)
    if _MD_ANY.search(text) is None:  # most values (numbers, names): one scan, no copies
        return text
    text = text.replace("\r", " ").replace("\n", " ")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_UNDERSCORE.sub(r"\\_", text)


def _md_finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):  # template-built Markdown (e.g. from a macro)
        return value
    return md_escape(value)


FILTERS = {"ms": fmt_ms, "num": fmt_num, "pct": fmt_pct, "rate": fmt_rate,
           "factor": fmt_factor, "value": fmt_value, "unit": fmt_unit, "when": fmt_when,
           "info": fmt_info}


def _bytecode_cache(html: bool) -> BytecodeCache | None:
    """Compiled templates cached on disk (~0.5 s of compiling per run otherwise). One
    directory per environment flavour: autoescape changes the compiled code of a template, and
    Jinja's cache key is only the template's name and source."""
    try:
        uid = getattr(os, "getuid", lambda: 0)()
        root = Path(tempfile.gettempdir()) / f"dualbus-jinja-{uid}" / ("html" if html else "md")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return FileSystemBytecodeCache(str(root))
    except OSError:  # a cache is an optimisation only
        return None


def _environment(templates_dir: Path, *, html: bool) -> Environment:
    """One environment per templates directory and flavour for the life of the process: its
    compiled templates are reused (Jinja still checks each file's mtime, so an edited
    template is recompiled)."""
    return _cached_environment(str(Path(templates_dir).resolve()), html)


def preload_templates(templates_dir: Path) -> None:
    """Compile every template now (`dualbus run` does this while its probes measure)."""
    for html in (False, True):
        env = _environment(templates_dir, html=html)
        for name in env.list_templates():
            if name.endswith((".html.j2", ".css.j2") if html else ".md.j2"):
                env.get_template(name)


@lru_cache(maxsize=8)
def _cached_environment(templates_dir: str, html: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        bytecode_cache=_bytecode_cache(html),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=html,
                                     default=html) if html else False,
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, finalize=None if html else _md_finalize)
    env.filters.update(FILTERS)
    return env


# --------------------------------------------------------------------------- view model


def build_view(results: dict[str, Any], trends: dict[str, Any] | None = None,
               history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the templates show, computed once; templates only lay it out."""
    opt = findings.optimization_target(results)
    trend_rows = findings.trend_rows(_with_objectives(trends, results))
    engines = results.get("engines", [])
    overall = results.get("overall") or {}
    return {
        "results": results,
        "run_id": results.get("run_id"),
        "platform": results.get("platform"),
        "overall": overall,
        # "no verdict" is a statement, not a missing grade: nothing this run was judged
        "verdict": "no verdict" if overall.get("result") == "no_verdict" else None,
        "system": results.get("system") or {},
        # split by vantage only when there is a split to show (sharded runs, docs/deploy.md)
        "vantages": [v for v in results.get("vantages") or []
                     if len(results.get("vantages") or []) > 1 or v.get("no_data")],
        "headline": _headline(engines),
        "breaches": findings.breaches(results),
        "not_judged": findings.not_judged(results),
        "key_slos": [s for s in results.get("slos", []) if s.get("key")],
        "failing_targets": findings.maintenance(results),
        "tiers": findings.latency_tiers(results),
        "optimization": opt,
        "engines": engines,
        "buses": results.get("buses", []),
        "pairs": results.get("pairs", []),
        "categories": findings.categories(results),
        "slos": [s for s in results.get("slos", []) if not findings.is_tier_slo(s)],
        "tier_slos": [s for s in results.get("slos", []) if findings.is_tier_slo(s)],
        "recommendations": recommendations(results, opt, trends),
        "horizons": findings.HORIZONS,
        "readiness": findings.readiness(results, opt),
        "baseline_comparisons": findings.baseline_comparisons(results),
        "trend_rows": trend_rows,
        "trend_baseline": (trends or {}).get("baseline") or {},
        "headline_comparison": [m for m in ((trends or {}).get("comparison") or {}).get(
            "metrics", []) if m.get("baseline") is not None or m.get("current") is not None],
        "has_trends": any(len(r["points"]) >= 2 for r in trend_rows),
        "history": history or [],
        "error_budgets": findings.error_budgets(results),
        "silences": results.get("silences") or [],
        "methodology": methodology(results),
        "defaults": {"tiers": findings.DEFAULT_TIERS,
                     "optimization_ms": findings.DEFAULT_OPTIMIZATION_TARGET_MS,
                     "tolerance": findings.tolerance(trends)},
    }


def _headline(engines: list[dict[str, Any]]) -> dict[str, Any]:
    valid_p50 = [e["latency_ms"]["p50"] for e in engines
                 if e.get("valid") and e["latency_ms"].get("p50") is not None]
    valid_p99 = [e["latency_ms"]["p99"] for e in engines
                 if e.get("valid") and e["latency_ms"].get("p99") is not None]
    hot_p50 = [e["hot_latency_ms"]["p50"] for e in engines
               if (e.get("hot_latency_ms") or {}).get("p50") is not None]
    requests = sum(int(e.get("requests") or 0) for e in engines)
    ok_requests = sum(int(e.get("requests") or 0) * float(e.get("success_ratio") or 0.0)
                      for e in engines)
    return {
        "engine_p50_median": _median(valid_p50),
        "engine_hot_p50_median": _median(hot_p50),
        "engines_with_hot_data": len(hot_p50),
        "engine_p99_worst": max(valid_p99) if valid_p99 else None,
        "engine_requests": requests,
        "engine_success_ratio": ok_requests / requests if requests else None,
        "engines_with_valid_data": len(valid_p50),
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


_SERIES_INDICATOR = {("engine", "p50"): ("engine.latency_ms", "p50"),
                     ("engine", "p99"): ("engine.latency_ms", "p99"),
                     ("bus", "delivery p99"): ("bus.delivery_latency_ms", "p99"),
                     ("pair", "roundtrip p99"): ("pair.roundtrip_ms", "p99")}


def _with_objectives(trends: dict[str, Any] | None,
                     results: dict[str, Any]) -> dict[str, Any] | None:
    """Attach the current run's absolute objective to trend series that lack one."""
    if not trends:
        return trends
    out = []
    for s in trends.get("series", []):
        if s.get("objective") is None:
            ind = _SERIES_INDICATOR.get((str(s.get("scope")), str(s.get("metric"))))
            if ind:
                for slo in results.get("slos", []):
                    if (slo.get("indicator"), slo.get("aggregate")) == ind and \
                            slo.get("target") == s.get("target") and \
                            slo.get("objective") is not None and not findings.is_tier_slo(slo) \
                            and not findings.is_optimization_slo(slo):
                        s = {**s, "objective": slo["objective"]}
                        break
        out.append(s)
    return {**trends, "series": out}


# --------------------------------------------------------------------------- charts


def _bar_row(label: str, lat: dict[str, Any], valid: bool, note: str | None) -> charts.BarRow:
    values = {k: lat.get(k) for k in charts.PERCENTILE_KEYS}
    if not valid or all(v is None for v in values.values()):
        return charts.BarRow(label, {}, note or "no valid data")
    return charts.BarRow(label, values)


def _tile_status(t: dict[str, Any]) -> str:
    status = str(t.get("status"))
    consumer = t.get("consumer") or {}
    if status == "operational" and consumer.get("consumed") is False:
        return f"not consuming ({consumer.get('status')})"  # healthy on HTTP, reads nothing
    return "no valid data" if status == "operational" and not t.get("valid", True) else status


def _engine_rows(res: dict[str, Any]) -> list[charts.BarRow]:
    """Paced latency bars, engines with valid data first; the others say why they have none."""
    return [_bar_row(e.get("title") or e["name"], e["latency_ms"], bool(e.get("valid")),
                     f"no data: {e.get('status')}" if e.get("status") != "operational"
                     else str(e.get("invalid_reason")) if e.get("inconclusive")
                     else f"no valid data ({e.get('invalid_reason')})")
            for e in sorted(res.get("engines", []),
                            key=lambda e: (not e.get("valid"),
                                           e["latency_ms"].get("p50") or 0.0))]


def build_charts(view: dict[str, Any]) -> dict[str, Markup]:
    res = view["results"]
    engine_rows = _engine_rows(res)
    opt = view["optimization"]
    out: dict[str, Markup] = {
        "status": charts.status_overview(
            "chart-status",
            [("engine", e.get("title") or e["name"], _tile_status(e))
             for e in res.get("engines", [])]
            + [("bus", b.get("title") or b["name"], _tile_status(b))
               for b in res.get("buses", [])]
            + [("pair", f"{p.get('from')}→{p.get('to')}", _tile_status(p))
               for p in res.get("pairs", [])]),
        # the bars are paced latency: the optimization line only where it judges paced p50
        "engines": charts.latency_bars(
            "chart-engine-latency", "Engine paced latency p50 / p90 / p99 (ms)", engine_rows,
            objective=opt.get("objective") if opt.get("indicator") != HOT else None,
            objective_label="optimization target"),
    }
    bus_rows = []
    for b in res.get("buses", []):
        title = b.get("title") or b["name"]
        note = None if b.get("valid") else f"no valid data ({b.get('status_reason')})"
        bus_rows.append(_bar_row(f"{title} delivery", b["delivery_ms"], bool(b.get("valid")),
                                 note))
        bus_rows.append(_bar_row(f"{title} ping", b["ping_ms"], bool(b.get("valid")), note))
    out["buses"] = charts.latency_bars("chart-bus-latency", "Bus delivery and PING latency (ms)",
                                       bus_rows)
    if res.get("pairs"):
        pair_obj = next((s["objective"] for s in res.get("slos", [])
                         if s.get("indicator") == "pair.roundtrip_ms"
                         and s.get("objective") is not None), None)
        out["pairs"] = charts.latency_bars(
            "chart-pair-latency", "Cross-engine round trip (ms)",
            [_bar_row(f"{p.get('from')} → {p.get('to')}", p["roundtrip_ms"],
                      bool(p.get("valid")), f"no valid data ({p.get('status_reason')})")
             for p in res.get("pairs", [])], objective=pair_obj)
    trend_svgs = []
    for i, row in enumerate(r for r in view["trend_rows"] if len(r["points"]) >= 2):
        if i >= TREND_CHARTS:
            break
        s = row["series"]
        trend_svgs.append(charts.trend_line(
            f"chart-trend-{i}", str(s.get("label") or s.get("target")),
            [(str(p.get("run_id"))[:8], p.get("value")) for p in row["points"]],
            objective=s.get("objective"), baseline=row["baseline"], unit=str(s.get("unit", ""))))
    out["trends"] = Markup("").join(trend_svgs)
    hist = [h for h in view["history"] if h.get("overall_score") is not None]
    if len(hist) >= 2:
        out["history"] = charts.trend_line(
            "chart-history", "Overall score over runs",
            [(str(h["run_id"])[:8], h["overall_score"]) for h in hist],
            objective=float(view.get("pass_score", 90.0)))
    return out


# --------------------------------------------------------------------------- public API


def render_reports(results: dict[str, Any], *, trends: dict[str, Any] | None = None,
                   history: list[dict[str, Any]] | None = None,
                   templates_dir: Path | None = None,
                   pass_score: float = 90.0,
                   compliance: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """{"md", "html", "json"} for one run. `trends`/`history` may be None (no history yet);
    `pass_score` (scoring.pass_score) is the pass line of the score-history chart;
    `compliance`: store.compliance.monthly_compliance rows up to this run."""
    tdir = Path(templates_dir) if templates_dir is not None else shipped_dir("templates")
    view = {**build_view(results, trends, history), "pass_score": pass_score,
            "compliance": compliance or []}
    md = _environment(tdir, html=False).get_template("report.md.j2").render(**view)
    html_view = {**view, "charts": build_charts(view)}
    html = _environment(tdir, html=True).get_template("report.html.j2").render(**html_view)
    return {"md": md, "html": html,
            "json": json.dumps(results, indent=2, sort_keys=False, default=str)}


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise DualbusError(f"refusing run id {run_id!r}: only letters, digits, '.', '_' and "
                           "'-' are allowed in a report folder name")
    return run_id


def write_report_files(run_id: str, rendered: dict[str, str],
                       reports_dir: Path) -> dict[str, Path]:
    """Write reports_dir/<run_id>/report.md|report.html|results.json, each atomically."""
    base = Path(reports_dir).resolve()
    folder = (base / check_run_id(run_id)).resolve()
    if folder.parent != base:
        raise DualbusError(f"refusing run id {run_id!r}: it would escape {base}")
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt, content in rendered.items():
        if fmt not in FILE_NAMES:
            raise DualbusError(f"unknown report format {fmt!r} (expected one of "
                               f"{', '.join(FORMATS)})")
        paths[fmt] = atomic_write(folder / FILE_NAMES[fmt], content)
    return paths


def atomic_write(path: Path, content: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
