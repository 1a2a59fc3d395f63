-- The audit archive (postgres V4) in SQLite dialect: where retention moves audit rows older
-- than the active retention when an archive is kept (EVENT_ARCHIVE_RETENTION_YEARS), filled
-- by column name (spec §9.3 [FIX]). `archived_from_partition` is 'event_audit_log': the
-- embedded store has no partitions. No foreign key on the rule: an archived row outlives its
-- rule, as in PostgreSQL.

CREATE TABLE event_audit_log_archive (
    id                           INTEGER PRIMARY KEY,
    event_timestamp              TEXT    NOT NULL,
    hostname                     TEXT    NOT NULL CHECK (length(hostname) <= 255),
    matched_rule_id              INTEGER NOT NULL,
    handling_decision            TEXT    NOT NULL CHECK (length(handling_decision) <= 100),
    forwarded_to_moog            INTEGER NOT NULL DEFAULT 0 CHECK (forwarded_to_moog IN (0, 1)),
    raw_message                  TEXT,
    archived_at                  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    archived_from_partition      TEXT CHECK (length(archived_from_partition) <= 50),
    original_id                  INTEGER,
    original_partition_timestamp TEXT,
    event_id                     TEXT
) STRICT;
CREATE INDEX idx_archive_event_timestamp ON event_audit_log_archive (event_timestamp);
CREATE INDEX idx_archive_hostname ON event_audit_log_archive (hostname);
CREATE INDEX idx_archive_archived_at ON event_audit_log_archive (archived_at);
CREATE INDEX idx_archive_matched_rule_id ON event_audit_log_archive (matched_rule_id);
