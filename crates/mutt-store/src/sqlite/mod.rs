//! The embedded store: SQLite through [`mutt_sqlite::Database`] (one writer thread with group
//! commit, read-only connections for reads); migrations by refinery (`migrations/sqlite`).
//!
//! Rules, development hosts and device teams may also be changed by other processes on the
//! same file (`muttd rules import`, the sqlite3 CLI); triggers count every such change in
//! `store_meta.rules_version`, which [`Store::rules_version`] reads.

use crate::{
    AuditRecord, ConfigAuditRow, ConfigChange, NewRule, RetainedTable, Store, StoreError, check_rule, full_error,
};
use async_trait::async_trait;
use chrono::SecondsFormat;
use mutt_core::{MatchType, Rule, RuleSnapshot};
use mutt_sqlite::rusqlite::{self, Connection, OptionalExtension, params, types::Type};
use mutt_sqlite::{Database, DbError, DbOptions};
use std::path::Path;
use std::str::FromStr;

mod manage;
mod partitions;
mod silences;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The store on one SQLite file; cheap to clone (clones share the writer thread).
#[derive(Clone)]
pub struct SqliteStore {
    db: Database,
}

fn classify(context: &str, e: DbError) -> StoreError {
    if e.is_rejected() {
        // Constraints, and a trigger's RAISE(ABORT | FAIL | ROLLBACK, …).
        return StoreError::Rejected(format!("{context}: {e}"));
    }
    let text = full_error(&e);
    if e.is_transient() {
        return StoreError::Unavailable(format!("{context}: {text}"));
    }
    // A missing table is neither these rows' fault nor an outage; it goes away once the file
    // is migrated: say so.
    if text.contains("no such table") {
        StoreError::Failed(format!("{context}: {text} (has `muttd migrate` run?)"))
    } else {
        StoreError::Failed(format!("{context}: {text}"))
    }
}

const RULE_COLUMNS: &str = "id, match_string, trap_oid, syslog_severity, match_type, priority,
                            prod_handling, dev_handling, team_assignment, is_active, flap_threshold,
                            flap_window_secs";

fn row_to_rule(row: &rusqlite::Row<'_>) -> rusqlite::Result<Rule> {
    let match_type: String = row.get("match_type")?;
    // A conversion failure is how rusqlite reports a value it cannot take; it classifies as
    // Rejected, like PgStore's unknown match type. (4: match_type's place in RULE_COLUMNS.)
    let match_type = MatchType::from_str(&match_type)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(e)))?;
    Ok(Rule {
        id: row.get("id")?,
        match_string: row.get("match_string")?,
        trap_oid: row.get("trap_oid")?,
        syslog_severity: row.get("syslog_severity")?,
        match_type,
        priority: row.get("priority")?,
        prod_handling: row.get("prod_handling")?,
        dev_handling: row.get("dev_handling")?,
        team_assignment: row.get("team_assignment")?,
        is_active: row.get("is_active")?,
        flap_threshold: row.get("flap_threshold")?,
        flap_window_secs: row.get("flap_window_secs")?,
    })
}

/// The config audit columns in [`config_row`]'s order.
const CONFIG_COLUMNS: &str = "id, changed_at, changed_by, operation, table_name, record_id, old_values, new_values,
                              reason, correlation_id";

/// JSON columns are text here; a value that no longer parses reads as a JSON string.
fn parse_json(t: Option<String>) -> Option<serde_json::Value> {
    t.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

fn config_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConfigAuditRow> {
    Ok(ConfigAuditRow {
        id: r.get(0)?,
        changed_at: r.get(1)?,
        change: ConfigChange {
            changed_by: r.get(2)?,
            operation: r.get(3)?,
            table_name: r.get(4)?,
            record_id: r.get(5)?,
            old_values: parse_json(r.get(6)?),
            new_values: parse_json(r.get(7)?),
            reason: r.get(8)?,
            correlation_id: r.get(9)?,
        },
    })
}

fn query_rules(conn: &Connection, filter: &str) -> rusqlite::Result<Vec<Rule>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {RULE_COLUMNS} FROM alert_rules {filter} ORDER BY priority, id"))?;
    stmt.query_map([], row_to_rule)?.collect()
}

/// A count column (rusqlite reads u64 only with a feature we do not need elsewhere).
fn get_count(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, Box::new(e)))
}

/// One audit row as SQLite stores it (owned: the write runs on the writer thread).
struct AuditRow {
    event_id: String,
    event_timestamp: String,
    hostname: String,
    matched_rule_id: i32,
    handling_decision: String,
    forwarded_to_moog: bool,
    raw_message: String,
    flap_suppressed: bool,
    silenced_by: Option<i64>,
}

impl SqliteStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Opens (creating if needed) the database file and checks that it can be written, so that
    /// a bad path fails at start-up with the path in the message rather than at the first write.
    pub async fn open(path: impl AsRef<Path>, options: DbOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let cannot =
            |why: String| StoreError::Config(format!("cannot open the database file {}: {why}", path.display()));
        let db = Database::open(path, options).map_err(|e| cannot(full_error(&e)))?;
        let read_only = db
            .exclusive(|conn| conn.is_readonly(rusqlite::MAIN_DB))
            .await
            .map_err(|e| cannot(full_error(&e)))?
            .map_err(|e| cannot(full_error(&e)))?;
        if read_only {
            return Err(cannot("the file is read-only".into()));
        }
        Ok(Self::new(db))
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations (refinery records them in `refinery_schema_history`), alone
    /// on the writer connection. Returns the names of those applied; none on a second run.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let report = self
            .db
            .exclusive(|conn| embedded::migrations::runner().run(conn))
            .await
            .map_err(|e| StoreError::Unavailable(format!("running migrations: {}", full_error(&e))))?
            .map_err(|e| StoreError::Migration(full_error(&e)))?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    /// Applies pending migrations up to `version` only: for tests of a later migration on a
    /// file with data in an earlier shape.
    #[doc(hidden)]
    pub async fn migrate_up_to(&self, version: i32) -> Result<Vec<String>, StoreError> {
        let target = refinery::Target::Version(version);
        let report = self
            .db
            .exclusive(move |conn| embedded::migrations::runner().set_target(target).run(conn))
            .await
            .map_err(|e| StoreError::Unavailable(format!("running migrations: {}", full_error(&e))))?
            .map_err(|e| StoreError::Migration(full_error(&e)))?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    /// Rows in `event_audit_log` and distinct event ids among them (equal unless the
    /// idempotency key is broken).
    pub async fn audit_count(&self) -> Result<(u64, u64), StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT count(*), count(DISTINCT event_id) FROM event_audit_log", [], |r| {
                    Ok((get_count(r, 0)?, get_count(r, 1)?))
                })
            })
            .await
            .map_err(|e| classify("counting audit rows", e))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await.map_err(|e| classify("ping", e))
    }

    async fn load_rules(&self) -> Result<RuleSnapshot, StoreError> {
        self.db
            .read(|conn| {
                // One read transaction: the three tables come from the same snapshot (WAL).
                let tx = conn.unchecked_transaction()?;
                let rules = query_rules(&tx, "WHERE is_active")?;
                let development_hosts = tx
                    .prepare_cached("SELECT hostname FROM development_hosts")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let device_teams = tx
                    .prepare_cached("SELECT hostname, team_assignment FROM device_teams")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                tx.commit()?;
                Ok(RuleSnapshot { rules, development_hosts, device_teams })
            })
            .await
            .map_err(|e| classify("loading rules", e))
    }

    async fn write_audit(&self, rows: &[AuditRecord]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let rows: Vec<AuditRow> = rows
            .iter()
            .map(|r| AuditRow {
                event_id: r.event_id.to_string(),
                // Fixed width, UTC, 'Z': text order is time order.
                event_timestamp: r.event_timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
                hostname: r.hostname.clone(),
                matched_rule_id: r.matched_rule_id,
                handling_decision: r.handling_decision.clone(),
                forwarded_to_moog: r.forwarded_to_moog,
                raw_message: r.raw_message.clone(),
                flap_suppressed: r.flap_suppressed,
                silenced_by: r.silenced_by,
            })
            .collect();
        // One piece of work on the writer: the batch commits or is refused as a whole. Unsynced
        // (see `Database::write_unsynced`): the alerter settles the batch only after this, so
        // a power loss that took these rows takes the settle too and the events come again.
        self.db
            .write_unsynced(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
                                                  handling_decision, forwarded_to_moog, raw_message,
                                                  flap_suppressed, silenced_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (event_id) DO NOTHING",
                )?;
                let mut new = 0u64;
                for r in &rows {
                    new += stmt.execute(params![
                        r.event_id,
                        r.event_timestamp,
                        r.hostname,
                        r.matched_rule_id,
                        r.handling_decision,
                        r.forwarded_to_moog,
                        r.raw_message,
                        r.flap_suppressed,
                        r.silenced_by,
                    ])? as u64;
                }
                Ok(new)
            })
            .await
            .map_err(|e| classify("writing audit rows", e))
    }

    async fn create_rule(&self, r: &NewRule) -> Result<i32, StoreError> {
        let r = check_rule(r)?.into_draft();
        self.db
            .write(move |conn| {
                conn.query_row(
                    "INSERT INTO alert_rules (match_string, trap_oid, syslog_severity, match_type, priority,
                                              prod_handling, dev_handling, team_assignment, is_active,
                                              flap_threshold, flap_window_secs)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
                    params![
                        r.match_string,
                        r.trap_oid,
                        r.syslog_severity,
                        r.match_type.as_str(),
                        r.priority,
                        r.prod_handling,
                        r.dev_handling,
                        r.team_assignment,
                        r.is_active,
                        r.flap_threshold,
                        r.flap_window_secs,
                    ],
                    |row| row.get(0),
                )
            })
            .await
            .map_err(|e| classify("creating rule", e))
    }

    /// The counter restarts if someone deletes its row (the triggers put it back).
    async fn rules_version(&self) -> Result<i64, StoreError> {
        self.db
            .read(|conn| {
                conn.prepare_cached("SELECT value FROM store_meta WHERE key = 'rules_version'")?
                    .query_row([], |r| r.get(0))
                    .optional()
                    .map(|v| v.unwrap_or(0))
            })
            .await
            .map_err(|e| classify("reading the rules version", e))
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        self.db.read(|conn| query_rules(conn, "")).await.map_err(|e| classify("listing rules", e))
    }

    async fn add_development_host(&self, hostname: &str) -> Result<(), StoreError> {
        let hostname = hostname.to_owned();
        self.db
            .write(move |conn| {
                conn.execute("INSERT INTO development_hosts (hostname) VALUES (?1) ON CONFLICT DO NOTHING", [hostname])
            })
            .await
            .map_err(|e| classify("adding development host", e))?;
        Ok(())
    }

    async fn set_device_team(&self, hostname: &str, team: &str) -> Result<(), StoreError> {
        let (hostname, team) = (hostname.to_owned(), team.to_owned());
        self.db
            .write(move |conn| {
                // The WHERE leaves an unchanged team alone, so it does not bump rules_version
                // and make every alerter reload for nothing.
                conn.execute(
                    "INSERT INTO device_teams (hostname, team_assignment) VALUES (?1, ?2)
                     ON CONFLICT (hostname) DO UPDATE SET team_assignment = excluded.team_assignment
                     WHERE team_assignment IS NOT excluded.team_assignment",
                    [hostname, team],
                )
            })
            .await
            .map_err(|e| classify("setting device team", e))?;
        Ok(())
    }

    /// Nothing to do: the SQLite audit log is one table.
    async fn ensure_partitions(&self, _months_ahead: u32) -> Result<(), StoreError> {
        Ok(())
    }

    async fn record_config_change(&self, c: &ConfigChange) -> Result<i64, StoreError> {
        let c = c.clone();
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let (old, new) = (json(&c.old_values), json(&c.new_values));
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO config_audit_log (changed_by, operation, table_name, record_id, old_values,
                                                   new_values, reason, correlation_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    c.changed_by,
                    c.operation,
                    c.table_name,
                    c.record_id,
                    old,
                    new,
                    c.reason,
                    c.correlation_id
                ])?;
                Ok(conn.last_insert_rowid())
            })
            .await
            .map_err(|e| classify("recording a configuration change", e))
    }

    async fn config_changes(&self, table_name: &str, limit: u32) -> Result<Vec<ConfigAuditRow>, StoreError> {
        let table_name = table_name.to_owned();
        self.db
            .read(move |conn| {
                let mut s = conn.prepare_cached(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM config_audit_log WHERE table_name = ?1 ORDER BY id DESC LIMIT ?2"
                ))?;
                s.query_map(params![table_name, i64::from(limit)], config_row)?.collect()
            })
            .await
            .map_err(|e| classify("reading configuration changes", e))
    }

    async fn delete_older_than(
        &self,
        table: RetainedTable,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Timestamps are RFC 3339 UTC text with milliseconds: text order is time order.
        let cutoff = cutoff.to_rfc3339_opts(SecondsFormat::Millis, true);
        let sql = match table {
            RetainedTable::EventAudit => {
                "DELETE FROM event_audit_log WHERE id IN
                   (SELECT id FROM event_audit_log WHERE event_timestamp < ?1 LIMIT ?2)"
            }
            RetainedTable::ConfigAudit => {
                "DELETE FROM config_audit_log WHERE id IN
                   (SELECT id FROM config_audit_log WHERE changed_at < ?1 LIMIT ?2)"
            }
        };
        self.db
            .write(move |conn| conn.prepare_cached(sql)?.execute(params![cutoff, i64::from(limit)]))
            .await
            .map(|n| n as u64)
            .map_err(|e| classify("applying retention", e))
    }
}
