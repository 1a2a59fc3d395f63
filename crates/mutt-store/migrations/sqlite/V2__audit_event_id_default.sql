-- Writers other than muttd (a restore script, the sqlite3 CLI, a tool written for the
-- original's schema) insert audit rows without an event id; such a row gets a random one, as
-- PostgreSQL's `DEFAULT gen_random_uuid()` gives it (postgres V3). muttd always sends the
-- event's own `_event_id`, so its writes stay idempotent on the UNIQUE event_id.
--
-- SQLite cannot change a column's default in place, so the table is rebuilt the documented way
-- (https://www.sqlite.org/lang_altertable.html#otheralter: create the new table, copy, drop the
-- old one, rename, recreate the indexes). Chosen over a BEFORE INSERT trigger that re-inserts
-- the row with an id and drops the original (RAISE(IGNORE)): that makes the writer's INSERT
-- report 0 rows changed and return nothing from RETURNING, which a restore script would read
-- as a failure. The default keeps NOT NULL (an explicit NULL is still refused, as in
-- PostgreSQL), UNIQUE and STRICT, and is a random (version 4) UUID in the lower-case hyphenated
-- text muttd writes.
--
-- refinery runs this in one transaction, where foreign keys cannot be switched off; the copy
-- is therefore checked against alert_rules. Nothing references event_audit_log, so dropping
-- the old table is safe. The row ids are kept. Triggers someone added to the old table by hand
-- are dropped with it.

CREATE TABLE event_audit_log_new (
    id                INTEGER PRIMARY KEY,
    -- The event's `_event_id` (hyphenated UUID): a redelivered event finds its row and
    -- inserts nothing. Rows from other writers get a random UUID.
    event_id          TEXT    NOT NULL UNIQUE DEFAULT (
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (random() & 3), 1) ||
        substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    ),
    event_timestamp   TEXT    NOT NULL,
    hostname          TEXT    NOT NULL CHECK (length(hostname) <= 255),
    matched_rule_id   INTEGER NOT NULL,
    handling_decision TEXT    NOT NULL CHECK (length(handling_decision) <= 100),
    forwarded_to_moog INTEGER NOT NULL DEFAULT 0 CHECK (forwarded_to_moog IN (0, 1)),
    raw_message       TEXT,
    CONSTRAINT fk_event_audit_matched_rule FOREIGN KEY (matched_rule_id)
        REFERENCES alert_rules (id) ON DELETE RESTRICT
) STRICT;

INSERT INTO event_audit_log_new (id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision,
                                 forwarded_to_moog, raw_message)
    SELECT id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
           raw_message
      FROM event_audit_log;

DROP TABLE event_audit_log;
ALTER TABLE event_audit_log_new RENAME TO event_audit_log;

CREATE INDEX idx_audit_log_timestamp ON event_audit_log (event_timestamp);
CREATE INDEX idx_audit_log_hostname ON event_audit_log (hostname);
-- Also what keeps ON DELETE RESTRICT from scanning the whole audit log.
CREATE INDEX idx_audit_log_rule_id ON event_audit_log (matched_rule_id);
