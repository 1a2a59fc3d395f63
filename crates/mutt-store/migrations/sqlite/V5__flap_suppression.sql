-- Flap suppression (postgres V6) in SQLite dialect: a rule's optional limit of forwarded
-- events per host and window (both set or both NULL, checked on the second column), and the
-- audit mark of an event held back by it.

ALTER TABLE alert_rules ADD COLUMN flap_threshold INTEGER
    CHECK (flap_threshold BETWEEN 1 AND 1000000);
ALTER TABLE alert_rules ADD COLUMN flap_window_secs INTEGER
    CHECK ((flap_window_secs IS NULL) = (flap_threshold IS NULL)
           AND (flap_window_secs IS NULL OR flap_window_secs BETWEEN 1 AND 86400));

ALTER TABLE event_audit_log ADD COLUMN flap_suppressed INTEGER NOT NULL DEFAULT 0
    CHECK (flap_suppressed IN (0, 1));
ALTER TABLE event_audit_log_archive ADD COLUMN flap_suppressed INTEGER NOT NULL DEFAULT 0
    CHECK (flap_suppressed IN (0, 1));
