-- dualbus warehouse schema v8: each verdict's burn rate per window (docs/slos.md).
-- slo_results.burn_windows: JSON object {"1h": 20.0, "5m": 20.0, ...}, the burn rate of the
-- target's events over each window the SLO's burn-rate rules and budget use (this run
-- included); a window without events is left out. NULL where the SLO has no budget.
-- Applied by dualbus_pipeline/store/migrations.py after 007_silences_hysteresis_slo_kinds.sql.
ALTER TABLE slo_results ADD COLUMN burn_windows VARCHAR;
