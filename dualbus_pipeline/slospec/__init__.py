"""SLO specs: models, the indicator catalogue, loading, grading, evaluation and the CI gate.

Pure: no Dagster, no DuckDB. Evaluation reads the warehouse only through dualbus_pipeline.store.
"""
