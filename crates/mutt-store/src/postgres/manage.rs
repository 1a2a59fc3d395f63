//! [`Manage`] on PostgreSQL.

use super::{CONFIG_COLUMNS, PgStore, RULE_COLUMNS, classify, config_row, pool_err, row_to_rule, rule_params};
use crate::manage::{ConfigAuditFilter, EventAuditFilter, EventAuditRow, Manage, Page, RuleDeletion};
use crate::{ConfigAuditRow, NewRule, StoreError, check_rule};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::Rule;
use tokio_postgres::types::ToSql;

/// The filters as fixed SQL: a `NULL` parameter filters nothing.
const CONFIG_WHERE: &str = "WHERE ($1::text IS NULL OR strpos(lower(changed_by), lower($1)) > 0)
                              AND ($2::text IS NULL OR operation = $2)
                              AND ($3::text IS NULL OR table_name = $3)
                              AND ($4::int4 IS NULL OR record_id = $4)
                              AND ($5::timestamptz IS NULL OR changed_at >= $5)
                              AND ($6::timestamptz IS NULL OR changed_at <= $6)";

/// The WHERE clause of an event-audit search with only the filters given (`$1`…), and which
/// of `params` it uses. Not one `$n IS NULL OR …` clause per filter: a generic plan cannot
/// use an index through those, and the searches of a big audit log become scans.
fn event_where(given: [bool; 7]) -> (String, Vec<usize>) {
    const TESTS: [&str; 7] = [
        "hostname =",
        "matched_rule_id =",
        "handling_decision =",
        "forwarded_to_moog =",
        "event_timestamp >=",
        "event_timestamp <=",
        "event_id =",
    ];
    let used: Vec<usize> = (0..TESTS.len()).filter(|i| given[*i]).collect();
    let clauses: Vec<String> = used.iter().enumerate().map(|(n, i)| format!("{} ${}", TESTS[*i], n + 1)).collect();
    let sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (sql, used)
}

fn event_row(r: &tokio_postgres::Row) -> EventAuditRow {
    EventAuditRow {
        id: r.get(0),
        event_id: r.get(1),
        event_timestamp: crate::manage::ts_text(r.get::<_, DateTime<Utc>>(2)),
        hostname: r.get(3),
        matched_rule_id: r.get(4),
        handling_decision: r.get(5),
        forwarded_to_moog: r.get(6),
        raw_message: r.get(7),
        flap_suppressed: r.get(8),
        silenced_by: r.get(9),
    }
}

impl PgStore {
    /// `count` and one page of `select` (both taking `params` then LIMIT/OFFSET) in one
    /// snapshot, so that the total and the rows agree.
    async fn page<T>(
        &self,
        what: &str,
        count: &str,
        select: &str,
        params: &[&(dyn ToSql + Sync)],
        (limit, offset): (u32, u64),
        map: fn(&tokio_postgres::Row) -> T,
    ) -> Result<Page<T>, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| classify(what, e))?;
        let total: i64 = tx.query_one(count, params).await.map_err(|e| classify(what, e))?.get(0);
        let (limit, offset) = (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX));
        let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
        all.push(&limit);
        all.push(&offset);
        let rows = tx.query(select, &all).await.map_err(|e| classify(what, e))?;
        tx.commit().await.map_err(|e| classify(what, e))?;
        Ok(Page { rows: rows.iter().map(map).collect(), total: u64::try_from(total).unwrap_or(0) })
    }
}

#[async_trait]
impl Manage for PgStore {
    async fn get_rule(&self, id: i32) -> Result<Option<Rule>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"), &[&id])
            .await
            .map_err(|e| classify("reading a rule", e))?;
        row.as_ref().map(row_to_rule).transpose()
    }

    async fn replace_rule(&self, id: i32, r: &NewRule) -> Result<Option<Rule>, StoreError> {
        let match_type = r.match_type.as_str();
        let r = check_rule(r)?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(|e| classify("updating a rule", e))?;
        let old = tx
            .query_opt(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1 FOR UPDATE"), &[&id])
            .await
            .map_err(|e| classify("updating a rule", e))?;
        let Some(old) = old.as_ref().map(row_to_rule).transpose()? else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE alert_rules SET match_string = $2, trap_oid = $3, syslog_severity = $4, match_type = $5,
                    priority = $6, prod_handling = $7, dev_handling = $8, team_assignment = $9,
                    is_active = $10, flap_threshold = $11, flap_window_secs = $12, updated_at = now()
              WHERE id = $1",
            &[&[&id as &(dyn ToSql + Sync)][..], &rule_params(&r, &match_type)[..]].concat(),
        )
        .await
        .map_err(|e| classify("updating a rule", e))?;
        tx.commit().await.map_err(|e| classify("updating a rule", e))?;
        Ok(Some(old))
    }

    async fn delete_rule(&self, id: i32) -> Result<RuleDeletion, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(|e| classify("deleting a rule", e))?;
        let old = tx
            .query_opt(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1 FOR UPDATE"), &[&id])
            .await
            .map_err(|e| classify("deleting a rule", e))?;
        let Some(old) = old.as_ref().map(row_to_rule).transpose()? else {
            return Ok(RuleDeletion::NotFound);
        };
        let refs: i64 = tx
            .query_one("SELECT count(*) FROM event_audit_log WHERE matched_rule_id = $1", &[&id])
            .await
            .map_err(|e| classify("deleting a rule", e))?
            .get(0);
        if refs > 0 {
            return Ok(RuleDeletion::Referenced(u64::try_from(refs).unwrap_or(0)));
        }
        // An audit row written since the count makes the foreign key refuse: a Rejected error.
        tx.execute("DELETE FROM alert_rules WHERE id = $1", &[&id])
            .await
            .map_err(|e| classify("deleting a rule", e))?;
        tx.commit().await.map_err(|e| classify("deleting a rule", e))?;
        Ok(RuleDeletion::Deleted(old))
    }

    async fn development_hosts(&self) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query("SELECT hostname FROM development_hosts ORDER BY hostname", &[])
            .await
            .map_err(|e| classify("listing development hosts", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn insert_development_host(&self, hostname: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute("INSERT INTO development_hosts (hostname) VALUES ($1) ON CONFLICT DO NOTHING", &[&hostname])
            .await
            .map_err(|e| classify("adding a development host", e))?;
        Ok(n == 1)
    }

    async fn delete_development_host(&self, hostname: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute("DELETE FROM development_hosts WHERE hostname = $1", &[&hostname])
            .await
            .map_err(|e| classify("removing a development host", e))?;
        Ok(n == 1)
    }

    async fn device_teams(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query("SELECT hostname, team_assignment FROM device_teams ORDER BY hostname", &[])
            .await
            .map_err(|e| classify("listing device teams", e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn insert_device_team(&self, hostname: &str, team: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute(
                "INSERT INTO device_teams (hostname, team_assignment) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&hostname, &team],
            )
            .await
            .map_err(|e| classify("adding a device team", e))?;
        Ok(n == 1)
    }

    async fn update_device_team(&self, hostname: &str, team: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        // The old value from the row as it was before this statement.
        let row = client
            .query_opt(
                "UPDATE device_teams d SET team_assignment = $2 FROM device_teams o
                  WHERE d.hostname = $1 AND o.hostname = d.hostname RETURNING o.team_assignment",
                &[&hostname, &team],
            )
            .await
            .map_err(|e| classify("updating a device team", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn delete_device_team(&self, hostname: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt("DELETE FROM device_teams WHERE hostname = $1 RETURNING team_assignment", &[&hostname])
            .await
            .map_err(|e| classify("removing a device team", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn search_config_audit(&self, f: &ConfigAuditFilter) -> Result<Page<ConfigAuditRow>, StoreError> {
        let count = format!("SELECT count(*) FROM config_audit_log {CONFIG_WHERE}");
        let select = format!(
            "SELECT {CONFIG_COLUMNS} FROM config_audit_log {CONFIG_WHERE} ORDER BY changed_at DESC, id DESC LIMIT $7 OFFSET $8"
        );
        let params: [&(dyn ToSql + Sync); 6] =
            [&f.changed_by, &f.operation, &f.table_name, &f.record_id, &f.start, &f.end];
        self.page("searching the config audit", &count, &select, &params, (f.limit, f.offset), config_row).await
    }

    async fn search_event_audit(&self, f: &EventAuditFilter) -> Result<Page<EventAuditRow>, StoreError> {
        // Parsed by the caller; an unparsable id matches nothing.
        let event_id: Option<uuid::Uuid> = match &f.event_id {
            Some(id) => match uuid::Uuid::parse_str(id) {
                Ok(u) => Some(u),
                Err(_) => return Ok(Page { rows: Vec::new(), total: 0 }),
            },
            None => None,
        };
        let given = [
            f.hostname.is_some(),
            f.rule_id.is_some(),
            f.decision.is_some(),
            f.forwarded.is_some(),
            f.start.is_some(),
            f.end.is_some(),
            event_id.is_some(),
        ];
        let all: [&(dyn ToSql + Sync); 7] =
            [&f.hostname, &f.rule_id, &f.decision, &f.forwarded, &f.start, &f.end, &event_id];
        let (filter, used) = event_where(given);
        let params: Vec<&(dyn ToSql + Sync)> = used.iter().map(|i| all[*i]).collect();
        let n = params.len();
        let count = match f.count_limit {
            Some(cap) => format!("SELECT count(*) FROM (SELECT 1 FROM event_audit_log {filter} LIMIT {cap}) AS capped"),
            None => format!("SELECT count(*) FROM event_audit_log {filter}"),
        };
        let select = format!(
            "SELECT id, event_id::text, event_timestamp, hostname, matched_rule_id, handling_decision,
                    forwarded_to_moog, raw_message, flap_suppressed, silenced_by
               FROM event_audit_log {filter} ORDER BY event_timestamp DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        self.page("searching the event audit", &count, &select, &params, (f.limit, f.offset), event_row).await
    }
}
