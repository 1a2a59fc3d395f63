-- Flap summaries are claimed for a lease (as in Redis, where `mutt:flap:due` scores a claimed
-- window by its lease's end): a closed window stays here until its claimer acknowledges that
-- the summary is queued, and is handed out again once `lease_until_ms` has passed
-- unacknowledged. 0: never claimed.
ALTER TABLE flap_window ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
