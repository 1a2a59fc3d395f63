//! [`Manage`] on SQLite. Timestamps are RFC 3339 UTC text with milliseconds, so the time
//! filters compare text.

use super::{CONFIG_COLUMNS, RULE_COLUMNS, SqliteStore, classify, config_row, get_count, row_to_rule};
use crate::manage::{ConfigAuditFilter, EventAuditFilter, EventAuditRow, Manage, Page, RuleDeletion, ts_text};
use crate::{ConfigAuditRow, NewRule, StoreError, check_rule};
use async_trait::async_trait;
use mutt_core::Rule;
use mutt_sqlite::rusqlite::{self, OptionalExtension, params};

/// The filters as fixed SQL: a `NULL` parameter filters nothing.
const CONFIG_WHERE: &str = "WHERE (?1 IS NULL OR instr(lower(changed_by), lower(?1)) > 0)
                              AND (?2 IS NULL OR operation = ?2)
                              AND (?3 IS NULL OR table_name = ?3)
                              AND (?4 IS NULL OR record_id = ?4)
                              AND (?5 IS NULL OR changed_at >= ?5)
                              AND (?6 IS NULL OR changed_at <= ?6)";

/// The WHERE clause of an event-audit search with only the filters given, and their values
/// (`?1`…). Not one `?n IS NULL OR …` clause per filter: SQLite cannot use an index through
/// those, so every search of a big audit log was a full scan.
fn event_where(f: &EventAuditFilter) -> (String, Vec<rusqlite::types::Value>) {
    let wanted = [
        ("hostname =", opt_text(&f.hostname)),
        ("matched_rule_id =", opt_int(f.rule_id.map(i64::from))),
        ("handling_decision =", opt_text(&f.decision)),
        ("forwarded_to_moog =", opt_int(f.forwarded.map(i64::from))),
        ("event_timestamp >=", opt_text(&f.start.map(ts_text))),
        ("event_timestamp <=", opt_text(&f.end.map(ts_text))),
        ("event_id =", opt_text(&f.event_id)),
    ];
    let (mut clauses, mut values) = (Vec::new(), Vec::new());
    for (test, value) in wanted.into_iter().filter(|(_, v)| *v != rusqlite::types::Value::Null) {
        values.push(value);
        clauses.push(format!("{test} ?{}", values.len()));
    }
    let sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (sql, values)
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventAuditRow> {
    Ok(EventAuditRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event_timestamp: r.get(2)?,
        hostname: r.get(3)?,
        matched_rule_id: r.get(4)?,
        handling_decision: r.get(5)?,
        forwarded_to_moog: r.get(6)?,
        raw_message: r.get(7)?,
        flap_suppressed: r.get(8)?,
        silenced_by: r.get(9)?,
    })
}

/// A row mapper the page reader takes.
type RowFn<T> = fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>;

impl SqliteStore {
    /// `count` and one page of `select` on one read connection (one snapshot in WAL mode).
    async fn page<T: Send + 'static>(
        &self,
        what: &'static str,
        (count, select): (String, String),
        filters: Vec<rusqlite::types::Value>,
        (limit, offset): (u32, u64),
        map: RowFn<T>,
    ) -> Result<Page<T>, StoreError> {
        self.db
            .read(move |conn| {
                let tx = conn.unchecked_transaction()?;
                let total =
                    tx.prepare(&count)?.query_row(rusqlite::params_from_iter(filters.iter()), |r| get_count(r, 0))?;
                let mut all = filters;
                all.push(i64::from(limit).into());
                all.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
                let rows = tx
                    .prepare(&select)?
                    .query_map(rusqlite::params_from_iter(all.iter()), map)?
                    .collect::<Result<Vec<T>, _>>()?;
                Ok(Page { rows, total })
            })
            .await
            .map_err(|e| classify(what, e))
    }
}

fn opt_text(v: &Option<String>) -> rusqlite::types::Value {
    v.clone().map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Text)
}

fn opt_int(v: Option<i64>) -> rusqlite::types::Value {
    v.map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Integer)
}

#[async_trait]
impl Manage for SqliteStore {
    async fn get_rule(&self, id: i32) -> Result<Option<Rule>, StoreError> {
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"))?
                    .query_row([id], row_to_rule)
                    .optional()
            })
            .await
            .map_err(|e| classify("reading a rule", e))
    }

    async fn replace_rule(&self, id: i32, r: &NewRule) -> Result<Option<Rule>, StoreError> {
        let r = check_rule(r)?.into_draft();
        self.db
            .write(move |conn| {
                let old = conn
                    .prepare_cached(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"))?
                    .query_row([id], row_to_rule)
                    .optional()?;
                if old.is_some() {
                    conn.execute(
                        "UPDATE alert_rules SET match_string = ?2, trap_oid = ?3, syslog_severity = ?4,
                                match_type = ?5, priority = ?6, prod_handling = ?7, dev_handling = ?8,
                                team_assignment = ?9, is_active = ?10, flap_threshold = ?11,
                                flap_window_secs = ?12,
                                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                          WHERE id = ?1",
                        params![
                            id,
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
                    )?;
                }
                Ok(old)
            })
            .await
            .map_err(|e| classify("updating a rule", e))
    }

    async fn delete_rule(&self, id: i32) -> Result<RuleDeletion, StoreError> {
        self.db
            .write(move |conn| {
                let old = conn
                    .prepare_cached(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"))?
                    .query_row([id], row_to_rule)
                    .optional()?;
                let Some(old) = old else { return Ok(RuleDeletion::NotFound) };
                let refs = conn
                    .prepare_cached("SELECT count(*) FROM event_audit_log WHERE matched_rule_id = ?1")?
                    .query_row([id], |r| get_count(r, 0))?;
                if refs > 0 {
                    return Ok(RuleDeletion::Referenced(refs));
                }
                conn.execute("DELETE FROM alert_rules WHERE id = ?1", [id])?;
                Ok(RuleDeletion::Deleted(old))
            })
            .await
            .map_err(|e| classify("deleting a rule", e))
    }

    async fn development_hosts(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .read(|conn| {
                conn.prepare_cached("SELECT hostname FROM development_hosts ORDER BY hostname")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
            .map_err(|e| classify("listing development hosts", e))
    }

    async fn insert_development_host(&self, hostname: &str) -> Result<bool, StoreError> {
        let hostname = hostname.to_owned();
        self.db
            .write(move |conn| {
                conn.execute("INSERT INTO development_hosts (hostname) VALUES (?1) ON CONFLICT DO NOTHING", [hostname])
            })
            .await
            .map(|n| n == 1)
            .map_err(|e| classify("adding a development host", e))
    }

    async fn delete_development_host(&self, hostname: &str) -> Result<bool, StoreError> {
        let hostname = hostname.to_owned();
        self.db
            .write(move |conn| conn.execute("DELETE FROM development_hosts WHERE hostname = ?1", [hostname]))
            .await
            .map(|n| n == 1)
            .map_err(|e| classify("removing a development host", e))
    }

    async fn device_teams(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .read(|conn| {
                conn.prepare_cached("SELECT hostname, team_assignment FROM device_teams ORDER BY hostname")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await
            .map_err(|e| classify("listing device teams", e))
    }

    async fn insert_device_team(&self, hostname: &str, team: &str) -> Result<bool, StoreError> {
        let (hostname, team) = (hostname.to_owned(), team.to_owned());
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO device_teams (hostname, team_assignment) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    [hostname, team],
                )
            })
            .await
            .map(|n| n == 1)
            .map_err(|e| classify("adding a device team", e))
    }

    async fn update_device_team(&self, hostname: &str, team: &str) -> Result<Option<String>, StoreError> {
        let (hostname, team) = (hostname.to_owned(), team.to_owned());
        self.db
            .write(move |conn| {
                let old: Option<String> = conn
                    .query_row("SELECT team_assignment FROM device_teams WHERE hostname = ?1", [&hostname], |r| {
                        r.get(0)
                    })
                    .optional()?;
                // An unchanged team is left alone, so it does not bump rules_version.
                if old.as_deref().is_some_and(|o| o != team) {
                    conn.execute(
                        "UPDATE device_teams SET team_assignment = ?2 WHERE hostname = ?1",
                        [&hostname, &team],
                    )?;
                }
                Ok(old)
            })
            .await
            .map_err(|e| classify("updating a device team", e))
    }

    async fn delete_device_team(&self, hostname: &str) -> Result<Option<String>, StoreError> {
        let hostname = hostname.to_owned();
        self.db
            .write(move |conn| {
                conn.query_row(
                    "DELETE FROM device_teams WHERE hostname = ?1 RETURNING team_assignment",
                    [hostname],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
            .map_err(|e| classify("removing a device team", e))
    }

    async fn search_config_audit(&self, f: &ConfigAuditFilter) -> Result<Page<ConfigAuditRow>, StoreError> {
        let count = format!("SELECT count(*) FROM config_audit_log {CONFIG_WHERE}");
        let select = format!(
            "SELECT {CONFIG_COLUMNS} FROM config_audit_log {CONFIG_WHERE} ORDER BY changed_at DESC, id DESC LIMIT ?7 OFFSET ?8"
        );
        let filters = vec![
            opt_text(&f.changed_by),
            opt_text(&f.operation),
            opt_text(&f.table_name),
            opt_int(f.record_id.map(i64::from)),
            opt_text(&f.start.map(ts_text)),
            opt_text(&f.end.map(ts_text)),
        ];
        self.page("searching the config audit", (count, select), filters, (f.limit, f.offset), config_row).await
    }

    async fn search_event_audit(&self, f: &EventAuditFilter) -> Result<Page<EventAuditRow>, StoreError> {
        let (filter, filters) = event_where(f);
        let n = filters.len();
        let count = match f.count_limit {
            Some(cap) => format!("SELECT count(*) FROM (SELECT 1 FROM event_audit_log {filter} LIMIT {cap}) AS capped"),
            None => format!("SELECT count(*) FROM event_audit_log {filter}"),
        };
        let select = format!(
            "SELECT id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision,
                    forwarded_to_moog, raw_message, flap_suppressed, silenced_by
               FROM event_audit_log {filter} ORDER BY event_timestamp DESC, id DESC LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        self.page("searching the event audit", (count, select), filters, (f.limit, f.offset), event_row).await
    }
}
