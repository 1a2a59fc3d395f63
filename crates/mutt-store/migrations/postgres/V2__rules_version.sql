-- A number that changes with every change to the rule tables, whoever makes it (muttd rules
-- import, the web API, psql), so that an alerter can check before each batch that its cached
-- rules are current: one tiny indexed read instead of reloading the rules.
--
-- One row (the boolean key admits only `true`). Statement-level triggers bump it once per
-- statement, however many rows the statement touched (even none: a no-op costs one reload).
-- The bump is an upsert, so a deleted row comes back instead of the version stopping.

CREATE TABLE rules_version (
    id      BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    version BIGINT  NOT NULL
);
INSERT INTO rules_version (id, version) VALUES (true, 0);

CREATE FUNCTION bump_rules_version() RETURNS trigger AS $$
BEGIN
    INSERT INTO rules_version (id, version) VALUES (true, 1)
        ON CONFLICT (id) DO UPDATE SET version = rules_version.version + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER alert_rules_bump_rules_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
CREATE TRIGGER development_hosts_bump_rules_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON development_hosts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
CREATE TRIGGER device_teams_bump_rules_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON device_teams
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rules_version();
