-- Brings a database made by the original MUTT v2.5 (spec §9: database/mutt_schema.sql and
-- config_audit_schema.sql) to the shape of V1__initial_schema.sql, keeping every row, so that
-- `muttd migrate` can take over a running site. Run once, in one transaction, before V1 is
-- recorded as applied; every statement is safe on a database that already has the object.

-- The event id that makes muttd's audit writes idempotent. Rows written by the original get a
-- random one (they were never redelivered by muttd); the default also keeps the original
-- alerter's plain INSERTs working during a rolling upgrade.
ALTER TABLE event_audit_log ADD COLUMN IF NOT EXISTS event_id UUID NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX IF NOT EXISTS uq_event_audit_log_event ON event_audit_log (event_id, event_timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_log_timestamp ON event_audit_log (event_timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_log_hostname ON event_audit_log (hostname);
CREATE INDEX IF NOT EXISTS idx_audit_log_rule_id ON event_audit_log (matched_rule_id);

-- The original had no DEFAULT partition: an event of a month without a partition failed.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'event_audit_log'::regclass
          AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
    ) THEN
        CREATE TABLE event_audit_log_default PARTITION OF event_audit_log DEFAULT;
    END IF;
END $$;

-- muttd's version moves rows of the new month out of the DEFAULT partition before attaching;
-- the original's may return another type, so it is replaced, not redefined.
DROP FUNCTION IF EXISTS create_monthly_partition(DATE);
CREATE FUNCTION create_monthly_partition(start_date DATE) RETURNS void AS $$
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

-- config_audit_schema.sql was a separate file: a site may not have run it.
CREATE TABLE IF NOT EXISTS config_audit_log (
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
CREATE INDEX IF NOT EXISTS idx_config_audit_table_record ON config_audit_log (table_name, record_id);
CREATE INDEX IF NOT EXISTS idx_config_audit_changed_at ON config_audit_log (changed_at DESC);
CREATE INDEX IF NOT EXISTS idx_config_audit_changed_by ON config_audit_log (changed_by);
CREATE INDEX IF NOT EXISTS idx_config_audit_correlation ON config_audit_log (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_config_audit_old_values ON config_audit_log USING GIN (old_values);
CREATE INDEX IF NOT EXISTS idx_config_audit_new_values ON config_audit_log USING GIN (new_values);
