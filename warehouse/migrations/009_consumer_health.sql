-- dualbus warehouse schema v9: stream-consumer health (docs/probes.md, probes/streams.py).
-- stream_stats per engine, stream and group: lag_ms (age of the oldest undelivered entry, from
-- its id against the server's TIME), pending_age_ms (age of the oldest unacknowledged entry),
-- idle_ms (since the freshest consumer last read), consumed (1 OK or WARN, 0 otherwise),
-- status OK | WARN | STALL | STOP | MISSING and its reason.
-- Applied by dualbus_pipeline/store/migrations.py after 008_burn_windows.sql.
ALTER TABLE stream_stats ADD COLUMN lag_ms DOUBLE;
ALTER TABLE stream_stats ADD COLUMN pending_age_ms DOUBLE;
ALTER TABLE stream_stats ADD COLUMN idle_ms DOUBLE;
ALTER TABLE stream_stats ADD COLUMN consumed DOUBLE;
ALTER TABLE stream_stats ADD COLUMN status VARCHAR;
ALTER TABLE stream_stats ADD COLUMN status_reason VARCHAR;
