"""The Parquet hand-off of a sharded run: each shard writes its tables, one writer loads them.

Layout: ``<root>/<run_id>/shards/<shard>/<table>.parquet``, where ``<root>`` is
``probe.handoff`` (a local folder or an fsspec URL such as ``s3://bucket/dualbus``; credentials
from the environment only) or, by default, the reports folder next to the warehouse, so a
shard's files sit in the run's own folder (``warehouse/reports/<run_id>/shards/``). The
loading step reads every shard's files back with pyarrow, concatenates them per table and
hands them to ``runs.store_tables`` inside the transaction that evaluates the SLOs; once that
transaction committed, the run's ``shards/`` folder is removed (the warehouse is the record;
the files are a hand-off). A failed load leaves them in place for a re-execution.

Local files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dualbus_pipeline.errors import WarehouseError
from dualbus_pipeline.store.tables import MEASUREMENT_TABLES, SAMPLE_TABLES


@dataclass(frozen=True)
class ShardManifest:
    """What one shard left for the loading step (small: it travels through Dagster)."""

    shard: str
    vantage: str
    folder: str                      # local path or URL of the shard's folder
    files: dict[str, str]            # table name → file
    rows: dict[str, int]             # table name → rows written
    seconds: float
    cpu_s: float = 0.0
    error: str | None = None         # why the shard failed (its targets read "no data")
    statuses: dict[str, str] = field(default_factory=dict)  # "scope:target" → status

    @property
    def samples(self) -> int:
        return sum(self.rows.get(t, 0) for t in SAMPLE_TABLES)


def _is_url(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def _fs(root: str) -> Any:
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise WarehouseError(f"probe.handoff: {root!r} is a URL and needs fsspec "
                             "(pip install 'dualbus[deploy]', plus s3fs/gcsfs for the "
                             "store)") from None
    fs, _ = url_to_fs(root)
    return fs


def run_folder(root: str, run_id: str) -> str:
    """Where a run's shard files live (``<root>/<run_id>/shards``)."""
    root = root.removeprefix("file://")
    return f"{root.rstrip('/')}/{run_id}/shards" if _is_url(root) else str(
        Path(root) / run_id / "shards")


def shard_folder(root: str, run_id: str, shard: str) -> str:
    base = run_folder(root, run_id)
    return f"{base}/{shard}" if _is_url(base) else str(Path(base) / shard)


def mark_started(root: str, run_id: str, shard: str, info: dict[str, Any]) -> None:
    """``running.json`` in the shard's folder: which host and probe process hold the shard
    (what an operator, or a test, looks at while it runs)."""
    folder = shard_folder(root, run_id, shard)
    _write_bytes(folder, "running.json", json.dumps(info).encode())


def started_before(root: str, run_id: str, shard: str) -> dict[str, Any] | None:
    """The ``running.json`` an earlier attempt of this shard in this run left, if any: a
    step that finds one was redelivered after the process running it died (Celery puts a
    task back on its queue when the worker process executing it is lost)."""
    folder = shard_folder(root, run_id, shard)
    try:
        if _is_url(folder):
            with _fs(folder).open(f"{folder}/running.json", "rb") as f:
                data = f.read()
        else:
            data = Path(folder, "running.json").read_bytes()
    except FileNotFoundError:
        return None
    info = json.loads(data)
    return info if isinstance(info, dict) else {}


def write_shard(root: str, run_id: str, shard: str, vantage: str,
                tables: dict[str, pa.Table], *, seconds: float, cpu_s: float = 0.0,
                error: str | None = None) -> ShardManifest:
    """Write a shard's tables as Parquet; return the manifest the loading step reads."""
    folder = shard_folder(root, run_id, shard)
    files, rows = {}, {}
    for name in MEASUREMENT_TABLES:
        table = tables.get(name)
        if table is None or not table.num_rows:
            continue
        files[name] = _write_table(folder, f"{name}.parquet", table)
        rows[name] = table.num_rows
    statuses = {}
    if "targets" in tables:
        t = tables["targets"].to_pydict()
        statuses = {f"{s}:{n}": st for s, n, st in zip(t["scope"], t["target"], t["status"],
                                                       strict=True)}
    return ShardManifest(shard=shard, vantage=vantage, folder=folder, files=files, rows=rows,
                         seconds=seconds, cpu_s=cpu_s, error=error, statuses=statuses)


def read_tables(manifests: list[ShardManifest]) -> dict[str, pa.Table]:
    """Every shard's files, concatenated per table (the loading step's input)."""
    out: dict[str, pa.Table] = {}
    for name in MEASUREMENT_TABLES:
        parts = [_read_table(m.files[name]) for m in manifests if name in m.files]
        if parts:
            out[name] = pa.concat_tables(parts, promote_options="permissive")
    return out


def remove_run_folder(root: str, run_id: str) -> None:
    """Drop a loaded run's shard files (its ``shards/`` folder, nothing else)."""
    folder = run_folder(root, run_id)
    if _is_url(folder):
        fs = _fs(folder)
        if fs.exists(folder):
            fs.rm(folder, recursive=True)
        return
    shutil.rmtree(folder, ignore_errors=True)


def _write_table(folder: str, name: str, table: pa.Table) -> str:
    if _is_url(folder):
        fs, path = _fs(folder), f"{folder}/{name}"
        fs.makedirs(folder, exist_ok=True)
        with fs.open(path, "wb") as f:
            pq.write_table(table, f)
        return path
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, name)
    tmp = f"{final}.{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def _write_bytes(folder: str, name: str, data: bytes) -> None:
    if _is_url(folder):
        fs = _fs(folder)
        fs.makedirs(folder, exist_ok=True)
        with fs.open(f"{folder}/{name}", "wb") as f:
            f.write(data)
        return
    os.makedirs(folder, exist_ok=True)
    Path(folder, name).write_bytes(data)


def _read_table(path: str) -> pa.Table:
    if _is_url(path):
        with _fs(path).open(path, "rb") as f:
            return pq.read_table(f)
    return pq.read_table(path)
