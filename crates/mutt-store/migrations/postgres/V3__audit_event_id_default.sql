-- Writers other than muttd insert audit rows without an event id: the original alerter during
-- a rolling upgrade (spec §4.6: its INSERT names the six data columns only), a restore
-- script, psql. Such a row gets a random id. muttd always sends the event's own `_event_id`,
-- so its writes stay idempotent on (event_id, event_timestamp).
--
-- gen_random_uuid() is built in from PostgreSQL 13. Without ONLY, the default also reaches the
-- existing partitions (a direct INSERT into event_audit_log_YYYY_MM gets it too); partitions
-- created later copy it (`LIKE … INCLUDING DEFAULTS`). A database adopted from the original
-- already has this default: setting it again changes nothing.
ALTER TABLE event_audit_log ALTER COLUMN event_id SET DEFAULT gen_random_uuid();
