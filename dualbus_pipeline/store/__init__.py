"""The DuckDB warehouse: the only package that imports duckdb (product.md §5, §10)."""

from dualbus_pipeline.store.warehouse import Warehouse

__all__ = ["Warehouse"]
