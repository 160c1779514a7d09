"""The one Dagster entry point (`workspace.yaml` loads this module).

Paths come from the environment so `dagster dev -w workspace.yaml` and `dualbus run` build
the same graph: DUALBUS_CONFIG (default ./dualbus.yaml), DUALBUS_SLO_DIR (default slo/ next
to the config, else the shipped SLOs), DUALBUS_WAREHOUSE (default: the config's
`warehouse:`), DUALBUS_TEMPLATES (default templates/). A bad dualbus.yaml or SLO file fails
here, at load, with the same one-line messages `dualbus validate` prints.
"""

from __future__ import annotations

from dualbus_pipeline.defs.build import JOB_NAME, build_definitions

__all__ = ["JOB_NAME", "build_definitions", "defs"]

defs = build_definitions()
