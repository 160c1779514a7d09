"""Inline SVG charts for the HTML report: hand-written, no JavaScript, no network.

Every chart is a function from plain numbers to one `<svg>` element (as `Markup`). Every text
that came from data (engine titles, bus names) goes through `escape`, so a title such as
`<script>` is drawn as text. Charts carry an `id` (`chart-...`) so tests can find them in a
DOM dump, and a `<title>` for screen readers. Colours follow the page's CSS variables via
classes, so print styles can override them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PERCENTILE_KEYS = ("p50", "p90", "p99")
STATUS_CLASSES = {"operational": "ok", "degraded": "warn", "no valid data": "warn",
                  "starting": "warn",
                  "unhealthy": "bad", "unreachable": "bad", "failed": "bad"}


@dataclass(frozen=True)
class BarRow:
    label: str
    values: dict[str, float | None]   # p50/p90/p99 in ms
    note: str | None = None           # shown instead of bars (e.g. "no valid data (...)")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) < 1:
        return f"{v:.3f}"
    if abs(v) < 100:
        return f"{v:.2f}"
    return f"{v:,.0f}"


class _Scale:
    """Linear, or log10 when the values span more than two decades."""

    def __init__(self, lo: float, hi: float, width: float) -> None:
        self.log = lo > 0 and hi / lo > 100
        self.width = width
        if self.log:
            self.lo = 10 ** math.floor(math.log10(lo))
            self.hi = 10 ** math.ceil(math.log10(hi))
        else:
            self.lo = 0.0
            self.step = _nice_step(hi * 1.04 / 4)
            self.hi = self.step * math.ceil(hi * 1.04 / self.step)

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            return self.width * (math.log10(v) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo))
        return self.width * (v - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.0

    def ticks(self) -> list[float]:
        if self.log:
            n = round(math.log10(self.hi) - math.log10(self.lo))
            return [self.lo * 10 ** i for i in range(n + 1)]
        n = round(self.hi / self.step)
        return [self.step * i for i in range(n + 1)]


def _nice_step(v: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k step at least `v`."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return float(m * exp)
    return float(10 * exp)


def latency_bars(chart_id: str, title: str, rows: Sequence[BarRow], *,
                 objective: float | None = None, objective_label: str = "objective",
                 unit: str = "ms") -> Markup:
    """Horizontal p50/p90/p99 bars per row, on a shared axis, with an optional objective."""
    label_w, plot_w, row_h, top, pad = 170.0, 520.0, 34.0, 48.0, 12.0
    values = [v for r in rows if r.note is None for v in r.values.values()
              if v is not None and v > 0]
    if objective is not None and objective > 0:
        values.append(objective)
    height = top + row_h * max(len(rows), 1) + 40
    width = label_w + plot_w + pad * 2 + 70
    out = [f'<svg id="{escape(chart_id)}" class="chart" role="img" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">',
           f"<title>{escape(title)}</title>"]
    # legend
    x = label_w
    for key in PERCENTILE_KEYS:
        out.append(f'<rect class="{key}" x="{x:.0f}" y="8" width="12" height="12" rx="2"/>'
                   f'<text x="{x + 16:.0f}" y="18" class="legend">{key}</text>')
        x += 62
    if not values:
        out.append(f'<text x="{label_w:.0f}" y="{top + 20:.0f}" class="note">'
                   "no valid data to chart</text></svg>")
        return Markup("".join(out))
    scale = _Scale(min(values), max(values), plot_w)
    x0 = label_w + pad
    axis_y = top + row_h * len(rows)
    for t in scale.ticks():
        tx = x0 + scale(t)
        out.append(f'<line class="grid" x1="{tx:.1f}" y1="{top - 4:.0f}" x2="{tx:.1f}" '
                   f'y2="{axis_y:.0f}"/><text class="tick" x="{tx:.1f}" y="{axis_y + 16:.0f}" '
                   f'text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text class="tick" x="{x0 + plot_w:.0f}" y="{axis_y + 32:.0f}" '
               f'text-anchor="end">{escape(unit)}{" (log scale)" if scale.log else ""}</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text class="label" x="{label_w:.0f}" y="{y + row_h / 2 + 4:.1f}" '
                   f'text-anchor="end">{escape(_clip(r.label, 26))}</text>')
        if r.note is not None:
            out.append(f'<text class="note" x="{x0:.0f}" y="{y + row_h / 2 + 4:.1f}">'
                       f"{escape(_clip(r.note, 80))}</text>")
            continue
        bar_h = (row_h - 10) / 3
        for j, key in enumerate(PERCENTILE_KEYS):
            v = r.values.get(key)
            if v is None:
                continue
            w = max(scale(v), 1.0)
            by = y + 4 + j * bar_h
            out.append(f'<rect class="{key}" x="{x0:.0f}" y="{by:.1f}" width="{w:.1f}" '
                       f'height="{bar_h - 1:.1f}"><title>{escape(r.label)} {key} {_fmt(v)} '
                       f"{escape(unit)}</title></rect>")
        p99 = r.values.get("p99")
        if p99 is not None:
            out.append(f'<text class="value" x="{x0 + max(scale(p99), 1.0) + 4:.1f}" '
                       f'y="{y + row_h / 2 + 4:.1f}">{_fmt(p99)}</text>')
    if objective is not None and objective > 0:
        ox = x0 + scale(objective)
        out.append(f'<line class="objective" x1="{ox:.1f}" y1="{top - 20:.0f}" x2="{ox:.1f}" '
                   f'y2="{axis_y:.0f}"/><text class="objective-label" x="{ox + 3:.1f}" '
                   f'y="{top - 9:.0f}">{escape(objective_label)} {_fmt(objective)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def status_overview(chart_id: str, items: Sequence[tuple[str, str, str]]) -> Markup:
    """One tile per (group, label, status): green operational, amber degraded, red down."""
    cols, tile_w, tile_h, gap = 6, 128.0, 40.0, 6.0
    rows = max(math.ceil(len(items) / cols), 1)
    width = cols * (tile_w + gap)
    height = rows * (tile_h + gap) + 4
    out = [f'<svg id="{escape(chart_id)}" class="chart status" role="img" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg"><title>Status of every target</title>']
    for i, (group, label, status) in enumerate(items):
        x = (i % cols) * (tile_w + gap)
        y = (i // cols) * (tile_h + gap)
        cls = STATUS_CLASSES.get(status, "bad" if not status.startswith("not consuming")
                                 else "warn")
        out.append(f'<g><rect class="tile {cls}" x="{x:.0f}" y="{y:.0f}" width="{tile_w:.0f}" '
                   f'height="{tile_h:.0f}" rx="5"/><text class="tile-label" x="{x + 8:.0f}" '
                   f'y="{y + 17:.0f}">{escape(_clip(label, 18))}</text><text class="tile-sub" '
                   f'x="{x + 8:.0f}" y="{y + 32:.0f}">{escape(group)} · {escape(status)}</text>'
                   f"<title>{escape(group)} {escape(label)}: {escape(status)}</title></g>")
    out.append("</svg>")
    return Markup("".join(out))


def trend_line(chart_id: str, title: str, points: Sequence[tuple[str, float | None]], *,
               objective: float | None = None, baseline: float | None = None,
               unit: str = "") -> Markup:
    """A small line chart over runs (oldest left), with objective and baseline lines."""
    width, height, left, right, top, bottom = 340.0, 150.0, 46.0, 10.0, 24.0, 24.0
    vals = [v for _, v in points if v is not None]
    out = [f'<svg id="{escape(chart_id)}" class="chart trend" role="img" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
           f'<text class="chart-title" x="4" y="14">{escape(_clip(title, 52))}</text>']
    if not vals:
        out.append('<text class="note" x="46" y="80">no data</text></svg>')
        return Markup("".join(out))
    refs = [v for v in (objective, baseline) if v is not None]
    lo = min([*vals, *refs])
    hi = max([*vals, *refs])
    if hi == lo:
        hi, lo = hi + (abs(hi) * 0.1 or 1.0), lo - (abs(lo) * 0.1 or 1.0)
    pad = (hi - lo) * 0.08
    lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
    pw, ph = width - left - right, height - top - bottom
    n = len(points)

    def px(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    out.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" '
               f'y2="{top + ph}"/><text class="tick" x="{left - 4}" y="{top + 8}" '
               f'text-anchor="end">{_fmt(hi)}</text><text class="tick" x="{left - 4}" '
               f'y="{top + ph}" text-anchor="end">{_fmt(lo)}</text>')
    if objective is not None:
        y = py(objective)
        out.append(f'<line class="objective" x1="{left}" y1="{y:.1f}" x2="{left + pw}" '
                   f'y2="{y:.1f}"/><text class="objective-label" x="{left + pw}" '
                   f'y="{y - 3:.1f}" text-anchor="end">objective {_fmt(objective)}</text>')
    if baseline is not None:
        y = py(baseline)
        out.append(f'<line class="baseline" x1="{left}" y1="{y:.1f}" x2="{left + pw}" '
                   f'y2="{y:.1f}"/><text class="baseline-label" x="{left + 2}" '
                   f'y="{y - 3:.1f}">baseline {_fmt(baseline)}</text>')
    path: list[str] = []
    dots: list[str] = []
    for i, (run, v) in enumerate(points):
        if v is None:
            continue
        x, y = px(i), py(v)
        path.append(f"{'M' if not path else 'L'}{x:.1f},{y:.1f}")
        dots.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                    f"<title>{escape(run)}: {_fmt(v)} {escape(unit)}</title></circle>")
    out.append(f'<path class="line" d="{" ".join(path)}"/>')
    out += dots
    out.append(f'<text class="tick" x="{left}" y="{height - 6}">{escape(_clip(points[0][0], 20))}'
               f'</text><text class="tick" x="{left + pw}" y="{height - 6}" text-anchor="end">'
               f"{escape(_clip(points[-1][0], 20))}</text></svg>")
    return Markup("".join(out))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
