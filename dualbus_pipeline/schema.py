"""JSON Schemas of `dualbus.yaml` and of an SLO file, generated from the pydantic models.

Editors validate as you type with them (YAML language servers read a `# yaml-language-server:
$schema=…` comment or a settings mapping, docs/configuration.md). The shipped copies under
`dualbus_pipeline/schemas/` are regenerated with `dualbus schema config|slo -o FILE`; a test
checks they are current. The models stay the authority: rules that relate fields (a pair's
engines share a bus, a relative objective needs an offset, …) are checked by
`dualbus validate`, not by the schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SHIPPED = Path(__file__).parent / "schemas"
FILES = {"config": "dualbus.schema.json", "slo": "slo.schema.json"}
Which = Literal["config", "slo"]


def config_schema() -> dict[str, Any]:
    from dualbus_pipeline.config import Topology

    schema = Topology.model_json_schema()
    return {"$schema": DRAFT, "$id": "https://dualbus.dev/schemas/dualbus.schema.json",
            **schema, "title": "dualbus.yaml",
            "description": "A dualbus platform topology and its settings (docs/configuration."
            "md). ${VAR} and ${VAR:-default} are expanded before validation."}


def slo_schema() -> dict[str, Any]:
    from dualbus_pipeline.slospec.model import VERSION, Slo

    slo = Slo.model_json_schema()
    defs = slo.pop("$defs", {})
    return {"$schema": DRAFT, "$id": "https://dualbus.dev/schemas/slo.schema.json",
            "title": "dualbus SLO file", "description": "One file of SLOs (docs/slos.md).",
            "type": "object", "additionalProperties": False, "required": ["version", "slos"],
            "properties": {"version": {"const": VERSION},
                           "slos": {"type": "array", "minItems": 1, "items": slo}},
            "$defs": defs}


def render(which: Which) -> str:
    schema = config_schema() if which == "config" else slo_schema()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def shipped(which: Which) -> Path:
    return SHIPPED / FILES[which]
