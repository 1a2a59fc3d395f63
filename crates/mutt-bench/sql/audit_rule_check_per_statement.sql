-- An experiment, not a migration: the audit table's reference to alert_rules checked once per
-- statement by triggers instead of once per row by the foreign key fk_event_audit_matched_rule
-- (issue 21, sixteenth session). `mutt-audit-bench --rule-check statement` applies it to its
-- own server. Measured there it saves PostgreSQL ~1.2 µs per audit row in batches of 100; in the
-- whole pipeline (60 s at 60,000 events/s, alternated pairs) no difference showed, so the
-- product keeps the foreign key. docs/benchmarks.md has the figures. It is complete enough to
-- become a migration if that changes: the same refusals, SQLSTATE (23503), constraint name and
-- messages as the foreign key, on the partitioned table and on each partition.
--
-- Why it is as safe as the foreign key, under concurrency (READ COMMITTED): the insert side
-- locks the batch's rules FOR KEY SHARE, as the foreign key did, and holds the locks to commit.
-- A delete (or a change of id) must lock the rule row for itself, so it waits for every
-- uncommitted batch naming the rule, and its check then runs with a new snapshot that sees
-- those rows. A batch that meets a rule being deleted waits for the delete; if it commits, the
-- row is gone for the lock and the batch is refused. Under REPEATABLE READ or SERIALIZABLE a
-- delete's snapshot predates rows committed while it waited (the foreign key has a private
-- cross-check for that), so the delete side refuses those isolation levels.

-- Statement side: every rule the statement's new rows name must exist; locks them to commit.
-- The error is the foreign key's: same SQLSTATE, constraint name and message.
CREATE OR REPLACE FUNCTION mutt_audit_rules_present() RETURNS trigger AS $$
DECLARE
    wanted  BIGINT;
    locked  BIGINT;
    missing INT;
BEGIN
    SELECT count(DISTINCT matched_rule_id) INTO wanted FROM mutt_new_audit_rows;
    IF wanted = 0 THEN
        RETURN NULL;
    END IF;
    -- In id order, so that two batches never wait for each other's locks in opposite orders.
    PERFORM 1 FROM alert_rules
     WHERE id IN (SELECT matched_rule_id FROM mutt_new_audit_rows)
     ORDER BY id
       FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < wanted THEN
        SELECT n.matched_rule_id INTO missing FROM mutt_new_audit_rows n
         WHERE NOT EXISTS (SELECT 1 FROM alert_rules r WHERE r.id = n.matched_rule_id)
         LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "fk_event_audit_matched_rule"',
                        TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_event_audit_matched_rule',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  DETAIL = format('Key (matched_rule_id)=(%s) is not present in table "alert_rules".', missing);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Rule side: a rule that audit rows name is neither deleted nor given another id (the foreign
-- key's ON DELETE RESTRICT and its default ON UPDATE NO ACTION).
CREATE OR REPLACE FUNCTION mutt_alert_rule_unreferenced() RETURNS trigger AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deleting or renumbering an alert rule needs READ COMMITTED isolation (its audit references are checked by a trigger)'
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Run the statement in a READ COMMITTED transaction.';
    END IF;
    IF EXISTS (SELECT 1 FROM event_audit_log WHERE matched_rule_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "alert_rules" violates foreign key constraint "fk_event_audit_matched_rule" on table "event_audit_log"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_event_audit_matched_rule',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = 'event_audit_log',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "event_audit_log".', OLD.id);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- TRUNCATE alert_rules: the foreign key refused it outright (unless CASCADE, or the audit table
-- in the same command); refused here while any audit row exists.
CREATE OR REPLACE FUNCTION mutt_alert_rules_truncate_unreferenced() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM event_audit_log) THEN
        RAISE EXCEPTION 'cannot truncate table "alert_rules" while table "event_audit_log" has rows that reference it'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_event_audit_matched_rule';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Statement triggers fire for the table a statement names: the partitioned table for muttd's
-- writes, a partition for an INSERT that names one. Every partition gets its own.
CREATE OR REPLACE FUNCTION mutt_guard_audit_table(t REGCLASS) RETURNS void AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'mutt_audit_rules_present_insert') THEN
        EXECUTE format('CREATE TRIGGER mutt_audit_rules_present_insert AFTER INSERT ON %s
                          REFERENCING NEW TABLE AS mutt_new_audit_rows
                          FOR EACH STATEMENT EXECUTE FUNCTION mutt_audit_rules_present()', t);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'mutt_audit_rules_present_update') THEN
        EXECUTE format('CREATE TRIGGER mutt_audit_rules_present_update AFTER UPDATE ON %s
                          REFERENCING NEW TABLE AS mutt_new_audit_rows
                          FOR EACH STATEMENT EXECUTE FUNCTION mutt_audit_rules_present()', t);
    END IF;
END;
$$ LANGUAGE plpgsql;

ALTER TABLE event_audit_log DROP CONSTRAINT IF EXISTS fk_event_audit_matched_rule;

DO $$
DECLARE
    part REGCLASS;
BEGIN
    PERFORM mutt_guard_audit_table('event_audit_log'::regclass);
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'event_audit_log'::regclass LOOP
        PERFORM mutt_guard_audit_table(part);
    END LOOP;
END $$;

DROP TRIGGER IF EXISTS mutt_alert_rule_unreferenced_delete ON alert_rules;
CREATE TRIGGER mutt_alert_rule_unreferenced_delete BEFORE DELETE ON alert_rules
    FOR EACH ROW EXECUTE FUNCTION mutt_alert_rule_unreferenced();
DROP TRIGGER IF EXISTS mutt_alert_rule_unreferenced_update ON alert_rules;
CREATE TRIGGER mutt_alert_rule_unreferenced_update BEFORE UPDATE OF id ON alert_rules
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION mutt_alert_rule_unreferenced();
DROP TRIGGER IF EXISTS mutt_alert_rules_truncate_unreferenced ON alert_rules;
CREATE TRIGGER mutt_alert_rules_truncate_unreferenced BEFORE TRUNCATE ON alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION mutt_alert_rules_truncate_unreferenced();

-- New monthly partitions get the guard as they are created (otherwise as in V1).
CREATE OR REPLACE FUNCTION create_monthly_partition(start_date DATE) RETURNS void AS $$
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
    PERFORM mutt_guard_audit_table(part::regclass);
    EXECUTE format(
        'WITH moved AS (DELETE FROM event_audit_log_default
                         WHERE event_timestamp >= %L AND event_timestamp < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved', month_start, month_end, part);
    EXECUTE format('ALTER TABLE event_audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, month_start, month_end);
END;
$$ LANGUAGE plpgsql;
