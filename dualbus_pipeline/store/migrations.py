"""Versioned SQL migrations, applied on open. Files: `warehouse/migrations/NNN_name.sql`."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from dualbus_pipeline.config import shipped_dir

_FILE_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    return shipped_dir("warehouse") / "migrations"


def available() -> list[tuple[int, Path]]:
    out = []
    for p in sorted(migrations_dir().glob("*.sql")):
        m = _FILE_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return out


def apply(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction; idempotent."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ "
                "DEFAULT current_timestamp)")
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, path in available():
        if version in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(path.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [version, path.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
