-- The batch envelope (`embedded.batch_envelope`): a row may carry many events, one JSON event
-- per line after a `{"_mutt_batch":N}` header (the Redis queue's format). `events` is N, or 1
-- for a plain message, so depths count events without reading bodies. Rows written before
-- this migration are plain messages.
ALTER TABLE queue_message ADD COLUMN events INTEGER NOT NULL DEFAULT 1;
