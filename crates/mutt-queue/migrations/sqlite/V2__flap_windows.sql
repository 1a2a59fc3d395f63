-- Flap suppression's windows (`mutt:flap:<rule>:<host>` and `mutt:flap:due` in Redis): one row
-- per window, open while `until_ms` lies ahead; a closed window that suppressed events waits
-- here until an alerter claims it for its summary; one that suppressed nothing is deleted.
CREATE TABLE flap_window (
    id         INTEGER PRIMARY KEY,
    rule_id    INTEGER NOT NULL,
    hostname   TEXT    NOT NULL,
    window_ms  INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    suppressed INTEGER NOT NULL,
    -- The latest suppressed event, for the summary.
    event      BLOB
);
CREATE INDEX flap_window_open ON flap_window (rule_id, hostname, until_ms);
CREATE INDEX flap_window_due ON flap_window (until_ms);

-- The verdict each event got in its window, so that a redelivered event keeps it.
CREATE TABLE flap_seen (
    window_id INTEGER NOT NULL,
    event_id  TEXT    NOT NULL,
    verdict   TEXT    NOT NULL,
    PRIMARY KEY (window_id, event_id)
) WITHOUT ROWID;
