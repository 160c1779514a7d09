-- dualbus warehouse schema v3: what a sample is charged from, re-takes, the concurrency guard,
-- inconclusive verdicts (docs/probes.md, "Measuring without disturbing").
-- Applied by dualbus_pipeline/store/migrations.py after 002_trends.sql.

-- start_ns: the instant a sample's latency runs from (the probe was ready to send, or the
-- target held the send back); latency_ms = (done_ns - start_ns) / 1e6 for new rows.
-- replaced: the probe host delayed this sample's send past probe.late_bound_ms; it was taken
-- again and is left out of every figure and SLO. Older rows: start_ns NULL, replaced false.
ALTER TABLE engine_samples ADD COLUMN start_ns BIGINT;
ALTER TABLE engine_samples ADD COLUMN replaced BOOLEAN DEFAULT false;
ALTER TABLE bus_samples ADD COLUMN start_ns BIGINT;
ALTER TABLE bus_samples ADD COLUMN replaced BOOLEAN DEFAULT false;
ALTER TABLE pair_samples ADD COLUMN start_ns BIGINT;
ALTER TABLE pair_samples ADD COLUMN replaced BOOLEAN DEFAULT false;

-- Per summary: samples re-taken, whether it is inconclusive (the probe host stayed
-- overloaded, or concurrency slowed the target and it could not be re-measured), the p50 of
-- the window where the target was probed alone, and a note (e.g. "re-measured alone: ...").
ALTER TABLE summaries ADD COLUMN replaced INTEGER DEFAULT 0;
ALTER TABLE summaries ADD COLUMN inconclusive BOOLEAN DEFAULT false;
ALTER TABLE summaries ADD COLUMN solo_p50 DOUBLE;
ALTER TABLE summaries ADD COLUMN note VARCHAR;

-- The probe's own CPU seconds in the run (user + system of the probe process).
ALTER TABLE runs ADD COLUMN probe_cpu_s DOUBLE;

-- Verdicts that are neither pass nor breach (pending baseline, inconclusive) store passed
-- NULL; the old name of "pending baseline" is migrated.
ALTER TABLE slo_results ALTER COLUMN passed DROP NOT NULL;
UPDATE slo_results SET outcome = 'pending_baseline', passed = NULL
    WHERE outcome = 'insufficient_baseline';
