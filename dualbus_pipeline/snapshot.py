"""What a run stores of its topology: the validated model as JSON, every secret masked.

Alert sink URLs carry tokens in their path and query, not only a password, so they get the
alert module's masking; everything else goes through `mask_secrets`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dualbus_pipeline.config import LoadedConfig
from dualbus_pipeline.yamlsrc import mask_secrets

if TYPE_CHECKING:
    from dualbus_pipeline.store import Warehouse


def topology_snapshot(cfg: LoadedConfig) -> dict[str, Any]:
    from dualbus_pipeline.alerts.notify import safe_sink_url

    data = cfg.topology.model_dump(mode="json", by_alias=True)
    for sink in data.get("alerts") or []:
        sink["url"] = safe_sink_url(sink["url"])
    text = mask_secrets(json.dumps(data))
    return dict(json.loads(text))


def begin_run_record(wh: Warehouse, run_id: str, cfg: LoadedConfig, *,
                     started_at: datetime | None = None) -> None:
    """The run's `runs` row (status 'running'), with its masked topology and settings; once
    per process and run (each probe asset asks, `dualbus run` asked first)."""
    from dualbus_pipeline.store.runs import begin_run, run_begun

    if run_begun(wh, run_id):
        return
    begin_run(wh, run_id, cfg.topology.platform, config_path=str(cfg.path),
              topology=topology_snapshot(cfg),
              settings=cfg.topology.probe.model_dump(mode="json"), started_at=started_at)
