"""`dualbus metrics` / `serve-metrics`: a stored run in the OpenMetrics text format, checked
with prometheus_client's own parser; served over real HTTP from a real warehouse."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from dualbus_pipeline.cli import main
from dualbus_pipeline.commands.metrics import make_server
from dualbus_pipeline.stack.redis_server import free_port
from tests.report_fixtures import XSS, make_warehouse


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def test_a_run_as_openmetrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_warehouse(tmp_path / "w.duckdb", 2, platform=f"Nautilus {XSS}")
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("platform: P\nbuses:\n  - name: md\n    url: redis://127.0.0.1:1/0\n")
    assert main(["metrics", "--config", str(cfg), "--warehouse",
                 str(tmp_path / "w.duckdb")]) == 0
    out = capsys.readouterr().out
    assert out.endswith("# EOF\n")
    got = families(out)  # the parser Prometheus' client uses: raises on a malformed line
    lat = {(lb["target"], lb["quantile"]): v for lb, v in got["dualbus_target_latency_seconds"]
           if lb["scope"] == "engine"}
    assert lat[("risk", "0.5")] == pytest.approx(0.2431 / 1000)
    assert all(lb["platform"] == f"Nautilus {XSS}" for lb, _ in got["dualbus_target_up"])
    up = {lb["target"]: v for lb, v in got["dualbus_target_up"] if lb["scope"] == "engine"}
    assert up["websocket"] == 0.0 and up["risk"] == 1.0
    grades = {(lb["slo"], lb["target"]): v for lb, v in got["dualbus_slo_grade"]}
    assert grades[("engine_latency", "risk")] == 12.0  # A+
    budget = {lb["slo"]: v for lb, v in got["dualbus_slo_error_budget_remaining_ratio"]}
    assert budget["system_availability"] == pytest.approx(0.25)
    windows = {lb["window"]: v for lb, v in got["dualbus_slo_window_burn_rate"]
               if lb["slo"] == "system_availability"}
    assert windows == {"30d": 2.5, "3d": 2.5, "6h": 2.5}
    # the report's other figures: hot path, PING, throughput, streams
    hot = {(lb["target"], lb["quantile"]): v for lb, v in
           got["dualbus_target_hot_latency_seconds"] if lb["scope"] == "engine"}
    assert hot[("analytics", "0.5")] == pytest.approx(0.2105 / 1000)
    assert ("websocket", "0.5") not in hot  # no valid hot series: absent, never 0
    ping = {(lb["target"], lb["quantile"]) for lb, _ in got["dualbus_bus_ping_latency_seconds"]}
    assert ("engine_logic", "0.99") in ping
    tput = {lb["target"]: v for lb, v in got["dualbus_bus_throughput_messages_per_second"]}
    assert tput == {"engine_logic": 3330.0, "marketdata": 3350.0}
    lag = {(lb["bus"], lb["engine"], lb["group"]): v for lb, v in
           got["dualbus_stream_lag_entries"]}
    assert lag[("engine_logic", "risk", "risk-group")] == 20.0  # run-2, the latest: 10 × 2
    assert got["dualbus_run_overall_score"][0][1] == pytest.approx(71.25)


def test_serve_metrics_answers_scrapes_from_the_warehouse(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    port = free_port()
    server = make_server(wh, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as exc:  # no warehouse yet: 503, one line
            urllib.request.urlopen(url, timeout=10)
        assert exc.value.code == 503
        exc.value.close()
        make_warehouse(wh, 1)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            got = families(resp.read().decode())
        assert got["dualbus_run_overall_passed"][0][1] == 0.0
        with pytest.raises(urllib.error.HTTPError) as nf:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        assert nf.value.code == 404
        nf.value.close()
    finally:
        server.shutdown()
        server.server_close()


def test_the_grafana_dashboard_queries_only_metrics_dualbus_emits() -> None:
    import json
    import re

    from dualbus_pipeline.report.metrics import _FAMILIES

    dash = json.loads((Path(__file__).parents[2] / "docs" / "grafana" /
                       "dualbus-dashboard.json").read_text())
    emitted = {name for name, _, _ in _FAMILIES}
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bdualbus_[a-z_]+", e)}
    assert used and used <= emitted, used - emitted
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
