-- dualbus warehouse schema v2: SLO result details and trend tables (issue 6).
-- Applied by dualbus_pipeline/store/migrations.py after 001_initial.sql.

-- What happened to each result, beyond passed: pass | breach | no_data | insufficient_baseline.
-- insufficient_baseline rows are neither a pass nor a breach (not graded, not scored, not gated).
ALTER TABLE slo_results ADD COLUMN outcome VARCHAR;
ALTER TABLE slo_results ADD COLUMN unit VARCHAR;
ALTER TABLE slo_results ADD COLUMN direction VARCHAR;         -- lower | higher (is better)
ALTER TABLE slo_results ADD COLUMN window_text VARCHAR;       -- '7d', '50 runs'; NULL = this run
ALTER TABLE slo_results ADD COLUMN window_runs INTEGER;       -- runs the value was computed over
ALTER TABLE slo_results ADD COLUMN samples BIGINT;            -- samples (or runs) behind the value
ALTER TABLE slo_results ADD COLUMN description VARCHAR;

-- Per target and indicator over runs: one row per run, scope, target, indicator, aggregate,
-- written by store.trends.refresh_trends from the run's single-run SLO results.
CREATE TABLE trend_points (
    run_id VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    scope VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    aggregate VARCHAR NOT NULL,
    unit VARCHAR,
    direction VARCHAR NOT NULL,
    value DOUBLE,
    baseline DOUBLE,                 -- pinned run's value, else median of the last good runs
    baseline_source VARCHAR,         -- 'pinned <run>' | 'median of N runs' | NULL
    baseline_runs INTEGER,
    delta_pct DOUBLE,                -- (value - baseline) / baseline × 100
    regression BOOLEAN,              -- delta worse than the threshold in the bad direction
    PRIMARY KEY (run_id, scope, target, indicator, aggregate)
);

-- System trend: one row per run (filter on status = 'completed'), computed from what was measured.
CREATE VIEW system_trend AS
SELECT r.run_id, r.started_at, r.platform, r.status, r.excluded,
       e.engines_total, e.engines_operational,
       CASE WHEN e.engines_total > 0
            THEN e.engines_operational::DOUBLE / e.engines_total END AS availability,
       b.combined_throughput_msgs_per_s,
       l.mean_engine_latency_ms, l.max_engine_p99_ms, l.failed_samples, l.total_samples,
       r.overall_grade, r.overall_score, r.overall_result, r.breaches
FROM runs r
LEFT JOIN (SELECT run_id, count(*) AS engines_total,
                  count(*) FILTER (WHERE status = 'operational') AS engines_operational
           FROM targets WHERE scope = 'engine' GROUP BY run_id) e USING (run_id)
LEFT JOIN (SELECT run_id,
                  CASE WHEN count(*) = count(throughput) THEN sum(throughput) END
                      AS combined_throughput_msgs_per_s
           FROM targets WHERE scope = 'bus' GROUP BY run_id) b USING (run_id)
LEFT JOIN (SELECT run_id,
                  sum(mean * ok) FILTER (WHERE scope = 'engine' AND metric = 'latency')
                      / nullif(sum(ok) FILTER (WHERE scope = 'engine' AND metric = 'latency'), 0)
                      AS mean_engine_latency_ms,
                  max(p99) FILTER (WHERE scope = 'engine' AND metric = 'latency')
                      AS max_engine_p99_ms,
                  sum(count - ok) AS failed_samples, sum(count) AS total_samples
           FROM summaries GROUP BY run_id) l USING (run_id);
