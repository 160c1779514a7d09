"""The shipped JSON Schemas are current, and accept the shipped dualbus.yaml and SLO files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import shipped_dir
from dualbus_pipeline.schema import render, shipped


@pytest.mark.parametrize("which", ["config", "slo"])
def test_shipped_schema_is_current(which: str) -> None:
    assert shipped(which).read_text() == render(which), (  # type: ignore[arg-type]
        f"regenerate it: dualbus schema {which} -o {shipped(which)}")  # type: ignore[arg-type]


def test_schemas_accept_the_shipped_yaml_and_reject_a_typo() -> None:
    config = json.loads(render("config"))
    slo = json.loads(render("slo"))
    jsonschema.Draft202012Validator.check_schema(config)
    doc = yaml.safe_load((shipped_dir("dualbus.yaml")).read_text())
    jsonschema.validate(doc, config)
    files = sorted(shipped_dir("slo").glob("*.yaml"))
    assert files
    for f in files:
        jsonschema.validate(yaml.safe_load(f.read_text()), slo)
    with pytest.raises(jsonschema.ValidationError, match="'colour' was unexpected"):
        jsonschema.validate({**doc, "colour": "red"}, config)
    bad = yaml.safe_load(files[0].read_text())
    bad["slos"][0]["objective"] = {"op": "~", "value": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, slo)


def test_schema_command_prints_or_writes(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "slo"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "dualbus SLO file"
    out = tmp_path / "s.json"
    assert main(["schema", "config", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "dualbus.yaml"
