"""Smoke test of the benchmark entry point (benchmarks are not tests: no thresholds here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_warehouse_quick_prints_figures(tmp_path: Path) -> None:
    env = dict(os.environ, DUALBUS_BENCH_RESULTS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "bench", "warehouse", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ingest 20,000 samples" in out
    assert "10 runs: evaluation + trends + report" in out
    assert "50 runs: peak RSS of that process" in out
    (js,) = tmp_path.glob("bench-*.json")
    rows = json.loads(js.read_text())["rows"]
    assert all(r["value"] is not None and r["value"] > 0 for r in rows)
    assert len(list(tmp_path.glob("bench-*.csv"))) == 1
