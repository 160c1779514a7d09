-- dualbus warehouse schema v10: the vantage each target and sample was measured from
-- (sharded probing, docs/deploy.md): a configured vantage name, else the probing host's name.
-- NULL for runs stored before this migration.
-- Applied by dualbus_pipeline/store/migrations.py after 009_consumer_health.sql.
ALTER TABLE engine_samples ADD COLUMN vantage VARCHAR;
ALTER TABLE bus_samples ADD COLUMN vantage VARCHAR;
ALTER TABLE pair_samples ADD COLUMN vantage VARCHAR;
ALTER TABLE targets ADD COLUMN vantage VARCHAR;
