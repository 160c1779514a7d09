"""Bulk writes through Arrow: one statement for many rows, never a Python loop of INSERTs."""

from __future__ import annotations

import duckdb
import pyarrow as pa


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, *,
                 replace: bool = False) -> None:
    """``INSERT [OR REPLACE] INTO table (columns of data) SELECT ... FROM data``.

    ``table`` is always one of our own literal table names, never user input; ``replace``
    upserts on the table's primary key.
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
        cols = ", ".join(data.column_names)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _dualbus_load")
    finally:
        con.unregister("_dualbus_load")
