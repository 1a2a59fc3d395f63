-- Silences and maintenance windows (beyond the original): a handled event that a silence in
-- effect matches is audited as usual, with `silenced_by` naming the silence, and not forwarded.
-- Silences are never deleted (expired ones stay for the audit); `expired_at` marks an early end.
-- A maintenance window is a silence with the four window_* columns set (all or none).

CREATE TABLE IF NOT EXISTS silences (
    id               BIGSERIAL PRIMARY KEY,
    host             TEXT,
    rule_id          INT,
    team             TEXT,
    message_contains TEXT,
    message_regex    TEXT,
    trap_oid_prefix  TEXT,
    starts_at        TIMESTAMPTZ  NOT NULL,
    ends_at          TIMESTAMPTZ,
    window_days      TEXT,
    window_start     TEXT,
    window_minutes   INT,
    window_time_zone TEXT,
    created_by       VARCHAR(100) NOT NULL,
    created_at       TIMESTAMPTZ  NOT NULL DEFAULT now(),
    comment          TEXT         NOT NULL,
    expired_at       TIMESTAMPTZ,
    expired_by       VARCHAR(100),
    CONSTRAINT silences_window_all_or_none CHECK (
        (window_days IS NULL) = (window_start IS NULL)
        AND (window_days IS NULL) = (window_minutes IS NULL)
        AND (window_days IS NULL) = (window_time_zone IS NULL)),
    CONSTRAINT silences_end_or_window CHECK (ends_at IS NOT NULL OR window_days IS NOT NULL)
);
-- The alerter's load: silences not yet ended.
CREATE INDEX IF NOT EXISTS idx_silences_open ON silences (ends_at) WHERE expired_at IS NULL;

-- Adding a nullable column changes no partition's data; partitions inherit it.
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS silenced_by BIGINT;
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS silenced_by BIGINT;
