"""Pure asyncio probes (no Dagster imports): buses, engines, cross-engine pairs.

The public surface is `probe_buses` / `probe_engines` / `probe_pairs` / `run_all`
(probes/runner.py), the per-target `probe_bus` / `probe_engine` / `probe_pair`, and the result
types in probes/model.py. Methodology: docs/probes.md.
"""
