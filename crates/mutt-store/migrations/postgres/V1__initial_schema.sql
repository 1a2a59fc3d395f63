-- MUTT schema: the tables of the original (spec §9) plus the event id that makes audit
-- writes idempotent, and a DEFAULT partition so that an audit insert never fails for want of
-- a monthly partition.

CREATE TABLE alert_rules (
    id              SERIAL PRIMARY KEY,
    match_string    VARCHAR(255),
    trap_oid        VARCHAR(255),
    syslog_severity INT,
    match_type      VARCHAR(20)  NOT NULL DEFAULT 'contains',
    priority        INT          NOT NULL DEFAULT 100,
    prod_handling   VARCHAR(100) NOT NULL,
    dev_handling    VARCHAR(100) NOT NULL,
    team_assignment VARCHAR(100) NOT NULL,
    is_active       BOOLEAN      NOT NULL DEFAULT true,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT chk_match_criteria CHECK (match_string IS NOT NULL OR trap_oid IS NOT NULL),
    CONSTRAINT chk_syslog_severity CHECK (syslog_severity IS NULL OR syslog_severity BETWEEN 0 AND 7),
    CONSTRAINT chk_match_type CHECK (match_type IN ('contains', 'regex', 'oid_prefix'))
);
CREATE INDEX idx_alert_rules_match_type ON alert_rules (match_type);
CREATE INDEX idx_alert_rules_is_active ON alert_rules (is_active);

CREATE TABLE development_hosts (
    hostname VARCHAR(255) PRIMARY KEY
);

CREATE TABLE device_teams (
    hostname        VARCHAR(255) PRIMARY KEY,
    team_assignment VARCHAR(100) NOT NULL
);

CREATE TABLE event_audit_log (
    id                BIGSERIAL,
    event_timestamp   TIMESTAMPTZ  NOT NULL,
    hostname          VARCHAR(255) NOT NULL,
    matched_rule_id   INT          NOT NULL,
    handling_decision VARCHAR(100) NOT NULL,
    forwarded_to_moog BOOLEAN      NOT NULL DEFAULT false,
    raw_message       TEXT,
    -- The event's `_event_id`: a redelivered event finds its row and inserts nothing.
    event_id          UUID         NOT NULL,
    PRIMARY KEY (id, event_timestamp),
    CONSTRAINT fk_event_audit_matched_rule FOREIGN KEY (matched_rule_id)
        REFERENCES alert_rules (id) ON DELETE RESTRICT
) PARTITION BY RANGE (event_timestamp);
-- Unique indexes on a partitioned table must contain the partition key; the event timestamp
-- of an event never changes, so (event_id, event_timestamp) identifies it.
CREATE UNIQUE INDEX uq_event_audit_log_event ON event_audit_log (event_id, event_timestamp);
CREATE INDEX idx_audit_log_timestamp ON event_audit_log (event_timestamp);
CREATE INDEX idx_audit_log_hostname ON event_audit_log (hostname);
CREATE INDEX idx_audit_log_rule_id ON event_audit_log (matched_rule_id);

-- Catches events whose month has no partition yet (the original had none: such inserts failed
-- and the events ended in the DLQ).
CREATE TABLE event_audit_log_default PARTITION OF event_audit_log DEFAULT;

-- Creates the partition event_audit_log_YYYY_MM for the month of start_date, moving any rows of
-- that month out of the DEFAULT partition first (ATTACH would fail otherwise). Safe to call
-- concurrently and repeatedly.
CREATE OR REPLACE FUNCTION create_monthly_partition(start_date DATE) RETURNS void AS $$
DECLARE
    month_start DATE := date_trunc('month', start_date)::date;
    month_end   DATE := (date_trunc('month', start_date) + interval '1 month')::date;
    part        TEXT := 'event_audit_log_' || to_char(month_start, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mutt_create_monthly_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE event_audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM event_audit_log_default
                         WHERE event_timestamp >= %L AND event_timestamp < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved', month_start, month_end, part);
    EXECUTE format('ALTER TABLE event_audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, month_start, month_end);
END;
$$ LANGUAGE plpgsql;

CREATE TABLE config_audit_log (
    id             BIGSERIAL PRIMARY KEY,
    changed_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    changed_by     VARCHAR(100) NOT NULL,
    operation      VARCHAR(10)  NOT NULL CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE')),
    table_name     VARCHAR(50)  NOT NULL,
    record_id      INTEGER      NOT NULL,
    old_values     JSONB,
    new_values     JSONB,
    reason         TEXT,
    correlation_id VARCHAR(36)
);
CREATE INDEX idx_config_audit_table_record ON config_audit_log (table_name, record_id);
CREATE INDEX idx_config_audit_changed_at ON config_audit_log (changed_at DESC);
CREATE INDEX idx_config_audit_changed_by ON config_audit_log (changed_by);
CREATE INDEX idx_config_audit_correlation ON config_audit_log (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX idx_config_audit_old_values ON config_audit_log USING GIN (old_values);
CREATE INDEX idx_config_audit_new_values ON config_audit_log USING GIN (new_values);
