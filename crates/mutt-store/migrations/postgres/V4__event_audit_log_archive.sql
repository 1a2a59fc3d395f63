-- The audit archive of the original (spec §9.1, database/partitioned_event_audit_log.sql): where
-- retention moves audit rows older than the active retention when an archive is kept
-- (EVENT_ARCHIVE_RETENTION_YEARS). muttd fills it by column name: the six data columns as
-- they were, `original_id` and `original_partition_timestamp` from the source row's id and
-- event time, `archived_from_partition` from the partition it was in (spec §9.3 [FIX]).
--
-- Beyond the original: `event_id`, the event's `_event_id`, so that an archived row can still
-- be matched with the event's logs and alerts. A site adopted from the original may already
-- have the table: every statement is safe on it.

CREATE TABLE IF NOT EXISTS event_audit_log_archive (
    id                           BIGSERIAL PRIMARY KEY,
    event_timestamp              TIMESTAMPTZ  NOT NULL,
    hostname                     VARCHAR(255) NOT NULL,
    matched_rule_id              INT          NOT NULL,
    handling_decision            VARCHAR(100) NOT NULL,
    forwarded_to_moog            BOOLEAN      NOT NULL DEFAULT false,
    raw_message                  TEXT,
    archived_at                  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    archived_from_partition      VARCHAR(50),
    original_id                  BIGINT,
    original_partition_timestamp TIMESTAMPTZ
);
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS archived_from_partition VARCHAR(50);
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS original_id BIGINT;
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS original_partition_timestamp TIMESTAMPTZ;
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS event_id UUID;
CREATE INDEX IF NOT EXISTS idx_archive_event_timestamp ON event_audit_log_archive (event_timestamp);
CREATE INDEX IF NOT EXISTS idx_archive_hostname ON event_audit_log_archive (hostname);
CREATE INDEX IF NOT EXISTS idx_archive_archived_at ON event_audit_log_archive (archived_at);
CREATE INDEX IF NOT EXISTS idx_archive_matched_rule_id ON event_audit_log_archive (matched_rule_id);
