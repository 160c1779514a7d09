-- dualbus warehouse schema v1 (product.md §5). Applied by dualbus_pipeline/store/migrations.py.
-- Everything a run writes lands in one transaction together with runs.status = 'completed'.

CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,      -- the Dagster run id
    platform        VARCHAR NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,         -- running | completed | failed | aborted
    error           VARCHAR,                  -- why a run failed (one line)
    pid             INTEGER,                  -- writer process, to detect killed runs
    config_path     VARCHAR,
    topology        VARCHAR,                  -- JSON snapshot, secrets masked
    settings        VARCHAR,                  -- JSON: probe settings actually used
    overall_grade   VARCHAR,
    overall_score   DOUBLE,
    overall_passed  BOOLEAN,
    overall_result  VARCHAR,                  -- pass | warning | fail
    breaches        INTEGER,
    excluded        BOOLEAN NOT NULL DEFAULT false   -- excluded from baselines
);

-- Raw samples, one table per probe kind. latency_ms is from the intended send time
-- (coordinated omission corrected); service_ms from the actual send time.
CREATE TABLE engine_samples (
    run_id VARCHAR NOT NULL, target VARCHAR NOT NULL, kind VARCHAR NOT NULL, seq INTEGER NOT NULL,
    intended_ns BIGINT, sent_ns BIGINT, done_ns BIGINT,
    latency_ms DOUBLE, service_ms DOUBLE, ok BOOLEAN NOT NULL, status INTEGER, error VARCHAR
);
CREATE TABLE bus_samples (
    run_id VARCHAR NOT NULL, target VARCHAR NOT NULL, kind VARCHAR NOT NULL, seq INTEGER NOT NULL,
    intended_ns BIGINT, sent_ns BIGINT, done_ns BIGINT,
    latency_ms DOUBLE, service_ms DOUBLE, ok BOOLEAN NOT NULL, status INTEGER, error VARCHAR
);
CREATE TABLE pair_samples (
    run_id VARCHAR NOT NULL, target VARCHAR NOT NULL, kind VARCHAR NOT NULL, seq INTEGER NOT NULL,
    intended_ns BIGINT, sent_ns BIGINT, done_ns BIGINT,
    latency_ms DOUBLE, service_ms DOUBLE, ok BOOLEAN NOT NULL, status INTEGER, error VARCHAR
);

-- One row per target per run: status and headline figures.
CREATE TABLE targets (
    run_id VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,            -- engine | bus | pair
    target VARCHAR NOT NULL,           -- engine/bus name, or 'from->to'
    title VARCHAR,
    status VARCHAR NOT NULL,
    status_reason VARCHAR,
    throughput DOUBLE,                 -- bus: delivered msgs/s in the burst; engine: capacity rps
    capacity_messages INTEGER,
    detail VARCHAR,                    -- JSON extras (url masked, body statuses, pair bus...)
    PRIMARY KEY (run_id, scope, target)
);

-- Per-run summaries of each sample set (metric: latency | ping | delivery | roundtrip).
CREATE TABLE summaries (
    run_id VARCHAR NOT NULL, scope VARCHAR NOT NULL, target VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    count INTEGER NOT NULL, ok INTEGER NOT NULL, success_ratio DOUBLE,
    mean DOUBLE, p50 DOUBLE, p90 DOUBLE, p99 DOUBLE, p999 DOUBLE, max DOUBLE, min DOUBLE,
    service_p50 DOUBLE, service_p99 DOUBLE,
    intended_rate_per_s DOUBLE, achieved_rate_per_s DOUBLE, lateness_p99_ms DOUBLE,
    valid BOOLEAN NOT NULL, invalid_reason VARCHAR,
    PRIMARY KEY (run_id, scope, target, metric)
);

-- Passive bus health (INFO), one row per figure.
CREATE TABLE bus_info (
    run_id VARCHAR NOT NULL, bus VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE,
    PRIMARY KEY (run_id, bus, metric)
);

-- XINFO STREAM / XINFO GROUPS for every engine stream on each bus.
CREATE TABLE stream_stats (
    run_id VARCHAR NOT NULL, bus VARCHAR NOT NULL, engine VARCHAR NOT NULL,
    stream VARCHAR NOT NULL, grp VARCHAR NOT NULL, present BOOLEAN NOT NULL,
    length BIGINT, lag BIGINT, pending BIGINT, consumers INTEGER, error VARCHAR
);

-- SLO verdicts per run, SLO and target (written with the samples, same transaction).
CREATE TABLE slo_results (
    run_id VARCHAR NOT NULL,
    slo VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    aggregate VARCHAR NOT NULL,
    value DOUBLE,                       -- NULL when there was no (valid) data
    objective_op VARCHAR NOT NULL,
    objective DOUBLE,                   -- the absolute threshold applied (after baseline)
    objective_text VARCHAR NOT NULL,    -- as written, e.g. '< 10' or '<= +10% of baseline'
    baseline DOUBLE,
    passed BOOLEAN NOT NULL,
    attainment DOUBLE,
    grade VARCHAR,                      -- NULL when not graded (no data, insufficient baseline)
    severity VARCHAR NOT NULL,
    weight DOUBLE NOT NULL,
    is_key BOOLEAN NOT NULL,
    reason VARCHAR,                     -- 'no data: ...', 'insufficient baseline: ...', justification
    error_budget_remaining DOUBLE,
    burn_rate DOUBLE,
    PRIMARY KEY (run_id, slo, target)
);

-- Baseline control.
CREATE TABLE baseline_pins (
    pinned_at TIMESTAMPTZ NOT NULL, run_id VARCHAR NOT NULL
);

-- Alert state machine: one row per (slo, target).
CREATE TABLE alerts (
    slo VARCHAR NOT NULL, target VARCHAR NOT NULL,
    state VARCHAR NOT NULL,                  -- pending | firing | resolved
    severity VARCHAR NOT NULL,
    consecutive_breaches INTEGER NOT NULL DEFAULT 0,
    first_breach_run VARCHAR, last_run VARCHAR,
    fired_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, last_notified_at TIMESTAMPTZ,
    value DOUBLE, objective_text VARCHAR, grade VARCHAR,
    PRIMARY KEY (slo, target)
);
CREATE TABLE alert_events (
    event_at TIMESTAMPTZ NOT NULL, run_id VARCHAR, slo VARCHAR NOT NULL, target VARCHAR NOT NULL,
    transition VARCHAR NOT NULL, detail VARCHAR
);
CREATE SEQUENCE outbox_id_seq;
CREATE TABLE outbox (
    id BIGINT PRIMARY KEY DEFAULT nextval('outbox_id_seq'),
    created_at TIMESTAMPTZ NOT NULL, run_id VARCHAR,
    slo VARCHAR, target VARCHAR, kind VARCHAR NOT NULL,    -- firing | reminder | resolved | pipeline | deadman | test
    sink VARCHAR NOT NULL,                                 -- sink URL, secrets masked
    sink_index INTEGER NOT NULL,
    title VARCHAR NOT NULL, body VARCHAR NOT NULL, notify_type VARCHAR NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ, expired_at TIMESTAMPTZ, last_error VARCHAR
);

-- Stored reports (md, html, json) per run.
CREATE TABLE reports (
    run_id VARCHAR NOT NULL, format VARCHAR NOT NULL, content VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, format)
);
