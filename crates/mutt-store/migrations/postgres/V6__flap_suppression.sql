-- Flap suppression (beyond the original): a rule may limit how many of its forwarded events
-- per host go out within a window; the rest are audited with `flap_suppressed` set and one
-- summary alert follows the window. Both rule columns set or both NULL (the original's rows).
-- Adding a column with a constant default changes no partition's data (PostgreSQL 11+).

ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS flap_threshold INT
    CHECK (flap_threshold BETWEEN 1 AND 1000000);
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS flap_window_secs INT
    CHECK (flap_window_secs BETWEEN 1 AND 86400);
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_flap_pair
    CHECK ((flap_threshold IS NULL) = (flap_window_secs IS NULL));

ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS flap_suppressed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE event_audit_log_archive ADD COLUMN IF NOT EXISTS flap_suppressed BOOLEAN NOT NULL DEFAULT false;
