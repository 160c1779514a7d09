"""The stack's process records: what we know about each process we started.

One JSON file per process in `<state dir>/run/<id>.json` (pid, start token, command-line
marker, ports, the names it serves, the hash of its spec), and an engine host's spec beside it
(`<id>.spec.json`, mode 0600: it holds the bus URL, password included). A record is trusted
only while its PID is alive with the same start token and marker (`procs.is_ours`), so a
recycled PID is never signalled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from dualbus_pipeline.stack import procs


@dataclass
class ProcessRecord:
    """One process we started (the JSON in run/<id>.json)."""

    id: str
    kind: Literal["bus", "engines"]
    pid: int
    token: str
    marker: str
    ports: list[int]
    names: list[str]  # bus names served, or engine names hosted
    spec_hash: str = ""

    def is_ours(self) -> bool:
        return procs.is_ours(self.pid, self.token, self.marker)


def spec_hash(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class RunRecords:
    """The records in one `run/` directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def live(self) -> dict[str, ProcessRecord]:
        """Our live processes by id; records of dead or foreign PIDs are deleted."""
        out: dict[str, ProcessRecord] = {}
        for rec, path in self._read():
            if rec is None:
                path.unlink(missing_ok=True)
            elif rec.is_ours():
                out[rec.id] = rec
            else:
                self.forget(rec)
        return out

    def all(self) -> list[ProcessRecord]:
        """Every readable record, alive or not (nothing is deleted)."""
        return [rec for rec, _ in self._read() if rec is not None]

    def save(self, rec: ProcessRecord) -> None:
        path = self.run_dir / f"{rec.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(rec), indent=1))
        tmp.replace(path)

    def forget(self, rec: ProcessRecord) -> None:
        (self.run_dir / f"{rec.id}.json").unlink(missing_ok=True)
        (self.run_dir / f"{rec.id}.spec.json").unlink(missing_ok=True)

    def stop(self, records: list[ProcessRecord]) -> None:
        """Terminate those of `records` that are still ours; forget them all."""
        if not records:
            return
        procs.terminate([r.pid for r in records if r.is_ours()])
        for r in records:
            self.forget(r)

    def write_spec(self, host_id: str, spec: dict[str, Any]) -> Path:
        """An engine host's spec, readable by its owner only (it holds the bus password)."""
        path = self.run_dir / f"{host_id}.spec.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(spec, indent=1))
        os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
        return path

    def _read(self) -> list[tuple[ProcessRecord | None, Path]]:
        if not self.run_dir.is_dir():
            return []
        out: list[tuple[ProcessRecord | None, Path]] = []
        for path in sorted(self.run_dir.glob("*.json")):
            if path.name.endswith(".spec.json"):
                continue
            try:
                out.append((ProcessRecord(**json.loads(path.read_text())), path))
            except (OSError, ValueError, TypeError):
                out.append((None, path))
        return out
