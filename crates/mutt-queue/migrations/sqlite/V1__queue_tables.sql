-- The embedded queue: what Redis holds in the production backend, in the SQLite data file.

-- Every queued message. A message is ready when `owner` is NULL and leased by the worker
-- `<role>:<pod>` otherwise; leasing and recovery only change `owner`, so a recovered message
-- keeps its place in line. `seq` orders a queue (smallest first): producers append after the
-- largest, put-backs and due retries go before the smallest. Dead-letter queues are queues
-- here too (`mutt:dlq:alerter`, `mutt:dlq:moog`).
CREATE TABLE queue_message (
    id      INTEGER PRIMARY KEY,
    queue   TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    body    BLOB    NOT NULL,
    owner   TEXT,
    -- How often a worker died holding this message (poison detection).
    crashes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_message_line ON queue_message (queue, seq);
CREATE INDEX queue_message_owner ON queue_message (owner) WHERE owner IS NOT NULL;

-- Retries waiting for their time (`<queue>:delayed` in Redis).
CREATE TABLE queue_delayed (
    id     INTEGER PRIMARY KEY,
    queue  TEXT    NOT NULL,
    due_ms INTEGER NOT NULL,
    body   BLOB    NOT NULL
);
CREATE INDEX queue_delayed_due ON queue_delayed (queue, due_ms);

-- Live workers and their heartbeats (`mutt:heartbeat:<role>:<pod>`).
CREATE TABLE queue_worker (
    role               TEXT    NOT NULL,
    pod                TEXT    NOT NULL,
    heartbeat_until_ms INTEGER NOT NULL,
    PRIMARY KEY (role, pod)
) WITHOUT ROWID;

-- Ingest counters per minute/hour/day (`mutt:metrics:1m:<minute>` …).
CREATE TABLE ingest_counter (
    bucket     TEXT    PRIMARY KEY,
    count      INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Event ids already delivered by the forwarder, until `expires_ms` (`mutt:delivered`).
CREATE TABLE delivered_event (
    event_id   TEXT    PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX delivered_event_expiry ON delivered_event (expires_ms);

-- Unhandled-event counters per (hostname, message signature) (`mutt:unhandled:*`).
CREATE TABLE unhandled_counter (
    key                TEXT    PRIMARY KEY,
    count              INTEGER NOT NULL,
    window_until_ms    INTEGER NOT NULL,
    triggered_by       TEXT,
    triggered_until_ms INTEGER
) WITHOUT ROWID;

-- Dynamic configuration (`mutt:config:<key>` in Redis), read live by the workers.
CREATE TABLE dynamic_config (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;
