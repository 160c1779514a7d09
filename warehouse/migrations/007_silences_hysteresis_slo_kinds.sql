-- dualbus warehouse schema v7: alert hysteresis, silences, SLO kinds (docs/alerts.md, slos.md).
-- alerts.consecutive_passes: passing runs in a row of a firing alert; it resolves only after
-- alerting.keep_firing_for of them. silences: maintenance windows from `dualbus silence add`,
-- honoured by alerts and left out of error budgets while active. slo_results.slo_kind: the
-- SLO's `kind` (objective | tier | optimization), which drives the report's sections.
-- Applied by dualbus_pipeline/store/migrations.py after 006_error_budgets.sql.
ALTER TABLE alerts ADD COLUMN consecutive_passes INTEGER DEFAULT 0;
ALTER TABLE slo_results ADD COLUMN slo_kind VARCHAR;
CREATE SEQUENCE silence_id_seq;
CREATE TABLE silences (
    id BIGINT PRIMARY KEY DEFAULT nextval('silence_id_seq'),
    created_at TIMESTAMPTZ NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    target VARCHAR,          -- shell glob over targets; NULL: every target
    slo VARCHAR,             -- shell glob over SLO names; NULL: every SLO
    reason VARCHAR NOT NULL,
    created_by VARCHAR
);
