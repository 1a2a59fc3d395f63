-- Silences and maintenance windows (postgres V5) in SQLite dialect. Times are RFC 3339 UTC
-- text with milliseconds and 'Z' (fixed width: text order is time order). AUTOINCREMENT so
-- that an id named by an audit row is never given to another silence.

CREATE TABLE silences (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    host             TEXT,
    rule_id          INTEGER,
    team             TEXT,
    message_contains TEXT,
    message_regex    TEXT,
    trap_oid_prefix  TEXT,
    starts_at        TEXT NOT NULL,
    ends_at          TEXT,
    window_days      TEXT,
    window_start     TEXT,
    window_minutes   INTEGER,
    window_time_zone TEXT,
    created_by       TEXT NOT NULL CHECK (length(created_by) <= 100),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    comment          TEXT NOT NULL,
    expired_at       TEXT,
    expired_by       TEXT CHECK (length(expired_by) <= 100),
    CHECK ((window_days IS NULL) = (window_start IS NULL)
           AND (window_days IS NULL) = (window_minutes IS NULL)
           AND (window_days IS NULL) = (window_time_zone IS NULL)),
    CHECK (ends_at IS NOT NULL OR window_days IS NOT NULL)
) STRICT;
CREATE INDEX idx_silences_open ON silences (ends_at) WHERE expired_at IS NULL;

ALTER TABLE event_audit_log ADD COLUMN silenced_by INTEGER;
ALTER TABLE event_audit_log_archive ADD COLUMN silenced_by INTEGER;
