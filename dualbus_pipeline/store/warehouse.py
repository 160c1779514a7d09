"""Opening the warehouse: one writer at a time, short connections, bounded retry on the lock.

DuckDB allows one writing process per file; a second process gets an IOException at once
("Could not set lock on file"). We retry for `lock_timeout_s`, then raise
WarehouseLockedError naming the holder. Connections are short-lived so that `dagster dev`
and the CLI can share one file.
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
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-write connection with the schema up to date."""
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
