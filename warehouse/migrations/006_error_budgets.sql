-- dualbus warehouse schema v6: every SLO verdict in good-event form, for error budgets and
-- burn-rate alerts (docs/slos.md). good/total: this run's events (requests under the latency
-- line, successful requests, operational engines, or the run itself for per-run SLOs);
-- sli_target: the good fraction promised; burn_state: page | ticket | ok | insufficient;
-- burn_text: what the windows said. NULL where the SLO has no budget.
-- Applied by dualbus_pipeline/store/migrations.py after 005_run_stages.sql.
ALTER TABLE slo_results ADD COLUMN good BIGINT;
ALTER TABLE slo_results ADD COLUMN total BIGINT;
ALTER TABLE slo_results ADD COLUMN sli_target DOUBLE;
ALTER TABLE slo_results ADD COLUMN burn_state VARCHAR;
ALTER TABLE slo_results ADD COLUMN burn_text VARCHAR;
