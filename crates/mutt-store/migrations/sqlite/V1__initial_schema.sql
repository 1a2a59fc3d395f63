-- MUTT schema for the embedded store: the tables of migrations/postgres/V1 in SQLite dialect.
--
-- Differences from PostgreSQL, and why:
-- * STRICT tables and explicit length CHECKs: SQLite otherwise stores any type in any column
--   and ignores VARCHAR(n); the file may be edited with the sqlite3 CLI, and a bad value must
--   be refused there, not discovered when the alerter loads the rules.
-- * Booleans are INTEGER 0/1; timestamps are TEXT, RFC 3339 UTC with milliseconds
--   ('2026-01-02T03:04:05.678Z'), which sorts like the time it names; JSON is TEXT.
-- * No partitions: one audit table, `event_id` alone is the idempotency key.
-- * `store_meta.rules_version` counts changes to the rule tables (kept by triggers), so that a
--   running alerter notices changes made by other processes and reloads its rules.

CREATE TABLE alert_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    match_string    TEXT CHECK (length(match_string) <= 255),
    trap_oid        TEXT CHECK (length(trap_oid) <= 255),
    syslog_severity INTEGER,
    match_type      TEXT    NOT NULL DEFAULT 'contains',
    priority        INTEGER NOT NULL DEFAULT 100,
    prod_handling   TEXT    NOT NULL CHECK (length(prod_handling) <= 100),
    dev_handling    TEXT    NOT NULL CHECK (length(dev_handling) <= 100),
    team_assignment TEXT    NOT NULL CHECK (length(team_assignment) <= 100),
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT chk_match_criteria CHECK (match_string IS NOT NULL OR trap_oid IS NOT NULL),
    CONSTRAINT chk_syslog_severity CHECK (syslog_severity IS NULL OR syslog_severity BETWEEN 0 AND 7),
    CONSTRAINT chk_match_type CHECK (match_type IN ('contains', 'regex', 'oid_prefix'))
) STRICT;
CREATE INDEX idx_alert_rules_match_type ON alert_rules (match_type);
CREATE INDEX idx_alert_rules_is_active ON alert_rules (is_active);

CREATE TABLE development_hosts (
    hostname TEXT PRIMARY KEY NOT NULL CHECK (length(hostname) <= 255)
) STRICT;

CREATE TABLE device_teams (
    hostname        TEXT PRIMARY KEY NOT NULL CHECK (length(hostname) <= 255),
    team_assignment TEXT NOT NULL CHECK (length(team_assignment) <= 100)
) STRICT;

CREATE TABLE event_audit_log (
    id                INTEGER PRIMARY KEY,
    -- The event's `_event_id` (hyphenated UUID): a redelivered event finds its row and
    -- inserts nothing.
    event_id          TEXT    NOT NULL UNIQUE,
    event_timestamp   TEXT    NOT NULL,
    hostname          TEXT    NOT NULL CHECK (length(hostname) <= 255),
    matched_rule_id   INTEGER NOT NULL,
    handling_decision TEXT    NOT NULL CHECK (length(handling_decision) <= 100),
    forwarded_to_moog INTEGER NOT NULL DEFAULT 0 CHECK (forwarded_to_moog IN (0, 1)),
    raw_message       TEXT,
    CONSTRAINT fk_event_audit_matched_rule FOREIGN KEY (matched_rule_id)
        REFERENCES alert_rules (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX idx_audit_log_timestamp ON event_audit_log (event_timestamp);
CREATE INDEX idx_audit_log_hostname ON event_audit_log (hostname);
-- Also what keeps ON DELETE RESTRICT from scanning the whole audit log.
CREATE INDEX idx_audit_log_rule_id ON event_audit_log (matched_rule_id);

CREATE TABLE config_audit_log (
    id             INTEGER PRIMARY KEY,
    changed_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    changed_by     TEXT    NOT NULL CHECK (length(changed_by) <= 100),
    operation      TEXT    NOT NULL CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE')),
    table_name     TEXT    NOT NULL CHECK (length(table_name) <= 50),
    record_id      INTEGER NOT NULL,
    old_values     TEXT CHECK (old_values IS NULL OR json_valid(old_values)),
    new_values     TEXT CHECK (new_values IS NULL OR json_valid(new_values)),
    reason         TEXT,
    correlation_id TEXT CHECK (length(correlation_id) <= 36)
) STRICT;
CREATE INDEX idx_config_audit_table_record ON config_audit_log (table_name, record_id);
CREATE INDEX idx_config_audit_changed_at ON config_audit_log (changed_at DESC);
CREATE INDEX idx_config_audit_changed_by ON config_audit_log (changed_by);
CREATE INDEX idx_config_audit_correlation ON config_audit_log (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO store_meta (key, value) VALUES ('rules_version', 0);

-- Every change to the rule tables, by any process, bumps rules_version. An upsert, so that a
-- deleted row comes back instead of the version silently stopping.
CREATE TRIGGER alert_rules_bump_insert AFTER INSERT ON alert_rules BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER alert_rules_bump_update AFTER UPDATE ON alert_rules BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER alert_rules_bump_delete AFTER DELETE ON alert_rules BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER development_hosts_bump_insert AFTER INSERT ON development_hosts BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER development_hosts_bump_update AFTER UPDATE ON development_hosts BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER development_hosts_bump_delete AFTER DELETE ON development_hosts BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER device_teams_bump_insert AFTER INSERT ON device_teams BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER device_teams_bump_update AFTER UPDATE ON device_teams BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER device_teams_bump_delete AFTER DELETE ON device_teams BEGIN
    INSERT INTO store_meta (key, value) VALUES ('rules_version', 1)
        ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
