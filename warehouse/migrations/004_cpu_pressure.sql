-- dualbus warehouse schema v4: per sample, the probe host's CPU pressure while it was in
-- flight (Linux PSI "some": µs during which runnable tasks waited for a CPU; NULL where not
-- measured). Evidence for a re-take (replaced) or an inconclusive summary, docs/probes.md.
-- Applied by dualbus_pipeline/store/migrations.py after 003_honest_verdicts.sql.
ALTER TABLE engine_samples ADD COLUMN stall_us BIGINT;
ALTER TABLE bus_samples ADD COLUMN stall_us BIGINT;
ALTER TABLE pair_samples ADD COLUMN stall_us BIGINT;
