"""Opening the warehouse: one writer at a time, short connections, bounded retry on the lock.

DuckDB allows one writing process per file; a second process gets an IOException at once
("Could not set lock on file"). We retry for `lock_timeout_s`, then raise
WarehouseLockedError naming the holder. Connections are short-lived so that `dagster dev`
and the CLI can share one file.

`held()` is the one exception, for a burst of short steps that follow each other: while it is
active, `connect()` in this process hands out cursors of one open connection instead of
opening the file each time (an open costs ~30 ms and a close with writes a checkpoint; the
steps after `dualbus run`'s probes opened it ~8 times in ~1 s). The lock is then held for the
burst, as it would be for its slowest step.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from dualbus_pipeline.errors import WarehouseError, WarehouseLockedError
from dualbus_pipeline.store import migrations

_LOCK_RE = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")
_held: dict[str, duckdb.DuckDBPyConnection] = {}

# Runs whose samples and verdicts are stored (store/runs.py has the lifecycle): what
# baselines, windows and trends read. Only 'completed' also means the report and the alerts
# went out, which is what the dead-man switch watches.
STORED = "status IN ('evaluated', 'partial', 'completed')"


class Warehouse:
    def __init__(self, path: str | Path, *, lock_timeout_s: float | None = None) -> None:
        self.path = Path(path)
        if lock_timeout_s is None:
            lock_timeout_s = float(os.environ.get("DUALBUS_LOCK_TIMEOUT_S", "30"))
        self.lock_timeout_s = lock_timeout_s
        self._migrated = False

    @property
    def reports_dir(self) -> Path:
        return self.path.parent / "reports"

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseError(
                    f"warehouse {self.path}: cannot create its directory: {exc.strerror}"
                ) from None
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise WarehouseError(f"warehouse {self.path}: cannot open: "
                                         f"{_first_line(text)}") from None
                if time.monotonic() >= deadline:
                    m = _LOCK_RE.search(text)
                    holder = f" (held by PID {m.group(2)})" if m and m.group(2) else ""
                    raise WarehouseLockedError(
                        f"warehouse {self.path} is locked by another process{holder}; waited "
                        f"{self.lock_timeout_s:.0f}s (another dualbus run or dagster dev is "
                        "writing; retry when it finishes)") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise WarehouseError(f"warehouse {self.path}: cannot open: "
                                     f"{_first_line(str(exc))}") from None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection to this file open while the block runs (module docstring)."""
        key = str(self.path.resolve())
        if key in _held:  # nested: the outer block owns it
            yield
            return
        with self.connect() as con:
            _held[key] = con
            try:
                yield
            finally:
                del _held[key]

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-write connection with the schema up to date."""
        shared = _held.get(str(self.path.resolve())) if _held else None
        if shared is not None:
            cursor = shared.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        con = self._connect()
        try:
            if not self._migrated:
                try:
                    migrations.apply(con)
                except duckdb.Error as exc:
                    raise WarehouseError(f"warehouse {self.path}: migration failed: "
                                         f"{_first_line(str(exc))}") from None
                self._migrated = True
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing: commit when the block ends, roll back on any exception."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                try:
                    con.execute("COMMIT")
                except duckdb.Error as exc:
                    raise WarehouseError(f"warehouse {self.path}: commit failed: "
                                         f"{_first_line(str(exc))}") from None

    def migrate(self) -> list[int]:
        con = self._connect()
        try:
            return migrations.apply(con)
        finally:
            con.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
