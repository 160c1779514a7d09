-- dualbus warehouse schema v5: a run is 'completed' only when its report and its alerts are
-- done. Statuses: running → evaluated (samples and verdicts stored, one transaction) →
-- completed (report and alerts done too) | partial (verdicts stored; report or alerts not:
-- `error` says why); running → failed | aborted. Runs stored before v5 keep 'completed'.
-- Applied by dualbus_pipeline/store/migrations.py after 004_cpu_pressure.sql.
ALTER TABLE runs ADD COLUMN report_at TIMESTAMPTZ;   -- the graded report was stored
ALTER TABLE runs ADD COLUMN alerts_at TIMESTAMPTZ;   -- the alerts were decided and queued
