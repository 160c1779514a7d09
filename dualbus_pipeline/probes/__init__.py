"""Pure asyncio probes (no Dagster imports): buses, engines, cross-engine pairs.

The public surface is `run_probes` (probes/runner.py) and the result types in probes/model.py.
"""
