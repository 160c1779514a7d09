"""The HTML report in headless Chromium: it renders offline with every chart in the DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dualbus_pipeline.report.render import render_reports, write_report_files
from dualbus_pipeline.report.results import build_results
from dualbus_pipeline.store.queries import history, run_bundle
from dualbus_pipeline.store.trends import report_trends
from tests.report_fixtures import XSS, make_warehouse

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not on PATH: install Debian's `chromium` (`apt-get install -y "
                "chromium`; .ci/run and tasks.py install it) to check the HTML report")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    wh = make_warehouse(tmp / "w.duckdb", 3, platform=f"Nautilus {XSS}")
    with wh.connect() as con:
        results = build_results(run_bundle(con, "run-3"))
        trends = report_trends(con, "run-3")
        past = history(con, before_run="run-3", limit=30)
    rendered = render_reports(results, trends=trends, history=past)
    return write_report_files("run-3", rendered, tmp / "reports")["html"]


def run_chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_dom_has_every_chart(report_html: Path, tmp_path: Path) -> None:
    proc = run_chromium(tmp_path, "--dump-dom", report_html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for chart_id in ("chart-status", "chart-engine-latency", "chart-bus-latency",
                     "chart-pair-latency", "chart-history", "chart-trend-0"):
        assert f'id="{chart_id}"' in dom, chart_id
    assert len(re.findall(r"<svg\b", dom)) >= 10
    # the browser parsed the engine title as text: no script element came out of user data
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "no valid data (probe fell behind schedule" in dom


def test_self_contained(report_html: Path) -> None:
    html = report_html.read_text()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "<link" not in html and "<script" not in html.lower()
    assert "@media print" in html


def test_screenshot_is_drawn(report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    proc = run_chromium(tmp_path, "--window-size=1300,2400", f"--screenshot={shot}",
                        report_html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1300, 2400)
    assert len(data) > 50_000    # a blank page compresses to a few KB; the report does not
