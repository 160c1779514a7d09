"""Bulk writes through Arrow: one statement for many rows, never a Python loop of INSERTs."""

from __future__ import annotations

import duckdb
import pyarrow as pa


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, *,
                 replace: bool = False, derived: dict[str, str] | None = None) -> None:
    """``INSERT [OR REPLACE] INTO table (columns of data) SELECT ... FROM data``.

    ``table`` is always one of our own literal table names, never user input; ``replace``
    upserts on the table's primary key. ``derived`` maps table columns to SQL expressions over
    ``data``'s columns (our own literals too), computed by DuckDB while inserting; a column of
    ``data`` with a derived column's name is an input to expressions only.
    """
    assert table.isidentifier()
    if data.num_rows == 0:
        return
    complete = getattr(con, "complete", None)  # DuckDB >= 2.0
    if complete is not None:
        # The caller's last query may still hold rows (a fetchone()); register() refuses to
        # run beside an unfinished result, where execute() would silently discard it.
        complete()
    con.register("_dualbus_load", data)
    try:
        extra = derived or {}
        direct = [c for c in data.column_names if c not in extra]
        cols = ", ".join([*direct, *extra])
        exprs = ", ".join([*direct, *(f"{e} AS {c}" for c, e in extra.items())])
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.execute(f"{verb} INTO {table} ({cols}) SELECT {exprs} FROM _dualbus_load")
    finally:
        con.unregister("_dualbus_load")
