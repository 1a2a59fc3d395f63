-- A lease lives in a table of its own (it was `queue_message.owner`). Setting the owner on the
-- message changed the size of its row, so SQLite rewrote the whole row — body and overflow pages
-- included — at every lease: about a fifth of what the embedded backend wrote per event. A lease
-- row is a few bytes. A message is ready when no lease row names it; a leased one is held by the
-- worker `<role>:<pod>` its lease row names.
-- No index on `owner`: the table holds only the leases in flight (a few thousand rows at most),
-- the lookups by owner are the janitor's and a recovery's, and an index would be one more page
-- written by every lease and settle.
CREATE TABLE queue_lease (
    message_id INTEGER PRIMARY KEY,
    owner      TEXT    NOT NULL
);
INSERT INTO queue_lease (message_id, owner) SELECT id, owner FROM queue_message WHERE owner IS NOT NULL;

-- The message table rebuilt without `owner` and with the body last: a column stored after a body
-- of several pages is read by walking the body's overflow pages (the depth counts read `events`).
CREATE TABLE queue_message_v5 (
    id      INTEGER PRIMARY KEY,
    queue   TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    -- Events in the row (an envelope carries many, see V4), 1 for a plain message.
    events  INTEGER NOT NULL DEFAULT 1,
    -- How often a worker died holding this message (poison detection).
    crashes INTEGER NOT NULL DEFAULT 0,
    body    BLOB    NOT NULL
);
INSERT INTO queue_message_v5 (id, queue, seq, events, crashes, body)
    SELECT id, queue, seq, events, crashes, body FROM queue_message;
DROP TABLE queue_message;
ALTER TABLE queue_message_v5 RENAME TO queue_message;
CREATE INDEX queue_message_line ON queue_message (queue, seq);

-- The ready messages (no lease row names them): what a lease takes, the depth counts count and
-- the dead-letter tools may move. One definition for every query that asks.
CREATE VIEW queue_ready AS
    SELECT * FROM queue_message m WHERE NOT EXISTS (SELECT 1 FROM queue_lease l WHERE l.message_id = m.id);
