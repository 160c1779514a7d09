"""`dualbus report`: exporting stored reports from the warehouse alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualbus_pipeline.cli import main
from dualbus_pipeline.store import Warehouse
from dualbus_pipeline.store.queries import store_report
from tests.report_fixtures import write_run

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "dualbus.yaml")


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    for run_id in ("run-aaa111", "run-aaa222", "run-bbb333"):
        write_run(wh, run_id, with_failures=False)
        with wh.transaction() as con:
            for fmt, text in (("md", f"# report {run_id}\n"),
                              ("html", f"<html>{run_id}</html>"),
                              ("json", f'{{"run_id": "{run_id}"}}')):
                store_report(con, run_id, fmt, text)
    return path


def cli(*args: str, warehouse: Path) -> int:
    return main(["report", "--config", CONFIG, "--warehouse", str(warehouse), *args])


def test_latest_markdown_to_stdout(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(warehouse=warehouse) == 0
    assert capsys.readouterr().out == "# report run-bbb333\n"


def test_run_prefix_and_single_format_file(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "x" / "r.html"
    assert cli("--run", "run-aaa2", "--format", "html", "-o", str(out),
               warehouse=warehouse) == 0
    assert out.read_text() == "<html>run-aaa222</html>"


def test_all_formats_into_a_directory(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert cli("--run", "run-aaa111", "--format", "md,html,json", "-o", str(out),
               warehouse=warehouse) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md",
                                                     "results.json"]
    assert (out / "results.json").read_text() == '{"run_id": "run-aaa111"}'


def test_several_formats_without_o_write_to_cwd(warehouse: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("--format", "md,json", warehouse=warehouse) == 0
    assert (tmp_path / "report.md").read_text() == "# report run-bbb333\n"
    assert (tmp_path / "results.json").exists()


def test_unknown_run_is_one_line_exit_2(warehouse: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--run", "nope", warehouse=warehouse) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run 'nope'" in err


def test_ambiguous_prefix_exit_2(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--run", "run-aaa", warehouse=warehouse) == 2
    assert "matches 2 runs" in capsys.readouterr().err


def test_bad_format_exit_2(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--format", "pdf", warehouse=warehouse) == 2
    assert "--format: unknown format" in capsys.readouterr().err


def test_empty_warehouse_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.duckdb"
    Warehouse(empty).migrate()
    assert cli(warehouse=empty) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no completed run" in err


def test_missing_warehouse_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(warehouse=tmp_path / "none.duckdb") == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()
