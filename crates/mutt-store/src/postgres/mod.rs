//! The PostgreSQL store (tokio-postgres with a deadpool pool; migrations by refinery).

use crate::{
    AuditRecord, ConfigAuditRow, ConfigChange, NewRule, RetainedTable, Store, StoreError, check_rule, full_error,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use mutt_core::{MatchType, Rule, RuleSnapshot, Secret};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

mod adopt;
pub mod audit_copy;
pub mod connect;
mod manage;
mod partitions;
mod rotation;
mod silences;

pub use audit_copy::AuditPath;
pub use connect::{PgTimeouts, SslMode, TlsSettings};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/dbname`, with libpq's `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey` ([`connect`]). A password here works, but prefer `password`.
    pub url: String,
    /// Overrides the URL's password (from the secrets source).
    pub password: Option<Secret>,
    pub pool_size: usize,
}

/// The URL's password never shows in a log line or an error.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &mutt_core::secret::redact_url(&self.url))
            .field("password", &self.password)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    settings: TlsSettings,
    /// The passwords to try on every new connection (CURRENT/NEXT rotation).
    credentials: std::sync::Arc<mutt_core::credentials::Credentials>,
    /// The client's own limit on the worker's statements (ping, rules, audit write):
    /// the statement timeout plus a margin. A connection whose peer went silent (no reset)
    /// never answers; after this it is dropped from the pool instead of being handed out again.
    deadline: Duration,
    /// How audit rows are written ([`AuditPath::Copy`] unless a caller chooses).
    audit_path: AuditPath,
}

/// Whether a server's error is about the server's state rather than the statement: classes 08
/// (connection), 53 (insufficient resources), 57 (operator intervention: shutdown, cancel,
/// statement timeout), 58 (system error: the server's I/O), serialization failure (40001),
/// deadlock (40P01) and a lock not granted within `lock_timeout` (55P03).
fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "53" | "57" | "58")) || matches!(code, "40001" | "40P01" | "55P03")
}

fn classify(context: &str, e: tokio_postgres::Error) -> StoreError {
    // Without an SQLSTATE the error is the client's: I/O, a closed connection, a time-out.
    let Some(code) = e.code() else {
        return StoreError::Unavailable(format!("{context}: {}", full_error(&e)));
    };
    // The driver's own text is only "db error": the server's message is in its source.
    let text = full_error(&e);
    match code.code() {
        c if is_transient_sqlstate(c) => StoreError::Unavailable(format!("{context}: {text}")),
        // Data and constraint classes, and a trigger's RAISE EXCEPTION: these rows are refused.
        c if c.starts_with("22") || c.starts_with("23") || *code == SqlState::RAISE_EXCEPTION => {
            StoreError::Rejected(format!("{context}: {text}"))
        }
        _ if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_FUNCTION => {
            StoreError::Failed(format!("{context}: {text} (has `muttd migrate` run?)"))
        }
        _ => StoreError::Failed(format!("{context}: {text}")),
    }
}

/// Any failure to get a connection is an outage for the caller, whatever the server said (a
/// changed password, a database not there yet): no statement ran.
fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => {
            StoreError::Unavailable(format!("getting a connection: {}", full_error(&e)))
        }
        other => StoreError::Unavailable(format!("getting a connection: {other}")),
    }
}

impl PgStore {
    /// Builds the pool with the default time-outs. Connections are opened lazily; use
    /// [`Store::ping`] to check.
    pub fn new(config: &PostgresConfig) -> Result<Self, StoreError> {
        Self::with_timeouts(config, &PgTimeouts::default())
    }

    /// Builds the pool: TLS as the URL's `sslmode` says, `timeouts` where the URL sets none.
    pub fn with_timeouts(config: &PostgresConfig, timeouts: &PgTimeouts) -> Result<Self, StoreError> {
        let credentials = mutt_core::credentials::Credentials::fixed("the password", config.password.clone());
        Self::with_credentials(config, timeouts, std::sync::Arc::new(credentials))
    }

    /// As [`PgStore::with_timeouts`], every new connection trying the passwords `credentials`
    /// gives (instead of `config.password`), in its order: see `rotation`.
    pub fn with_credentials(
        config: &PostgresConfig,
        timeouts: &PgTimeouts,
        credentials: std::sync::Arc<mutt_core::credentials::Credentials>,
    ) -> Result<Self, StoreError> {
        let (url, settings) = connect::split_url(&config.url)?;
        // The driver's parse error never quotes the URL, so no password reaches the message.
        let mut pg = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::Config(format!("database url is not valid: {e}")))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(timeouts.connect_timeout);
        }
        pg.application_name("muttd").ssl_mode(connect::driver_mode(settings.mode));
        let tls = connect::connector(&settings)?;
        let connect = rotation::RotatingConnect { credentials: credentials.clone(), tls: tls.clone() };
        let manager =
            Manager::from_connect(pg.clone(), connect, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let mut builder = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(timeouts.connect_timeout + Duration::from_secs(1)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1);
        if let Some(limit) = timeouts.statement_timeout {
            builder = builder.post_create(connect::statement_timeout_hook(limit));
        }
        let pool = builder.build().map_err(|e| StoreError::Config(e.to_string()))?;
        let deadline = timeouts.statement_timeout.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(5);
        Ok(Self { pool, config: pg, tls, settings, credentials, deadline, audit_path: AuditPath::default() })
    }

    /// A statement found no answer within [`PgStore::deadline`]: its connection never goes
    /// back into the pool (it would hang the next user too).
    fn give_up(&self, client: deadpool_postgres::Object, what: &str) -> StoreError {
        drop(deadpool_postgres::Object::take(client));
        StoreError::Unavailable(format!("{what}: no answer within {} s", self.deadline.as_secs()))
    }

    /// Writes audit rows the way `path` says (the A/B benchmark; UNNEST where COPY cannot be
    /// used).
    pub fn with_audit_path(mut self, path: AuditPath) -> Self {
        self.audit_path = path;
        self
    }

    /// The TLS settings in force (for the start-up log: [`TlsSettings::describe`]).
    pub fn tls_settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Applies pending migrations (refinery records them in `refinery_schema_history`) and
    /// creates the audit partitions around the current month.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let (mut client, conn) = rotation::connect(&self.credentials, &self.config, &self.tls)
            .await
            .map_err(|e| classify("connecting for migrations", e))?;
        let task = tokio::spawn(conn);
        adopt::adopt_original_schema(&mut client).await?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|e| StoreError::Migration(full_error(&e)))?;
        drop(client);
        let _ = task.await;
        self.ensure_partitions(3).await?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// The rule columns in [`row_to_rule`]'s terms.
const RULE_COLUMNS: &str = "id, match_string, trap_oid, syslog_severity, match_type, priority,
                            prod_handling, dev_handling, team_assignment, is_active, flap_threshold,
                            flap_window_secs";

/// The config audit columns in [`config_row`]'s order.
const CONFIG_COLUMNS: &str = "id, changed_at, changed_by, operation, table_name, record_id, old_values, new_values,
                              reason, correlation_id";

fn config_row(r: &tokio_postgres::Row) -> ConfigAuditRow {
    ConfigAuditRow {
        id: r.get(0),
        changed_at: crate::manage::ts_text(r.get::<_, DateTime<Utc>>(1)),
        change: ConfigChange {
            changed_by: r.get(2),
            operation: r.get(3),
            table_name: r.get(4),
            record_id: r.get(5),
            old_values: r.get(6),
            new_values: r.get(7),
            reason: r.get(8),
            correlation_id: r.get(9),
        },
    }
}

fn row_to_rule(row: &tokio_postgres::Row) -> Result<Rule, StoreError> {
    let match_type: String = row.get("match_type");
    Ok(Rule {
        id: row.get("id"),
        match_string: row.get("match_string"),
        trap_oid: row.get("trap_oid"),
        syslog_severity: row.get("syslog_severity"),
        match_type: MatchType::from_str(&match_type).map_err(|e| StoreError::Rejected(e.to_string()))?,
        priority: row.get("priority"),
        prod_handling: row.get("prod_handling"),
        dev_handling: row.get("dev_handling"),
        team_assignment: row.get("team_assignment"),
        is_active: row.get("is_active"),
        flap_threshold: row.get("flap_threshold"),
        flap_window_secs: row.get("flap_window_secs"),
    })
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        match tokio::time::timeout(self.deadline, client.simple_query("SELECT 1")).await {
            Ok(r) => r.map(|_| ()).map_err(|e| classify("ping", e)),
            Err(_) => Err(self.give_up(client, "ping")),
        }
    }

    async fn load_rules(&self) -> Result<RuleSnapshot, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let load = async {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| classify("loading rules", e))?;
            let rules = tx
                .query(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE is_active ORDER BY priority, id"), &[])
                .await
                .map_err(|e| classify("loading rules", e))?;
            let hosts = tx
                .query("SELECT hostname FROM development_hosts", &[])
                .await
                .map_err(|e| classify("loading development hosts", e))?;
            let teams = tx
                .query("SELECT hostname, team_assignment FROM device_teams", &[])
                .await
                .map_err(|e| classify("loading device teams", e))?;
            tx.commit().await.map_err(|e| classify("loading rules", e))?;
            Ok(RuleSnapshot {
                rules: rules.iter().map(row_to_rule).collect::<Result<_, _>>()?,
                development_hosts: hosts.iter().map(|r| r.get(0)).collect(),
                device_teams: teams.iter().map(|r| (r.get(0), r.get(1))).collect(),
            })
        };
        match tokio::time::timeout(self.deadline, load).await {
            Ok(r) => r,
            Err(_) => Err(self.give_up(client, "loading rules")),
        }
    }

    async fn write_audit(&self, rows: &[AuditRecord]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        let write = async {
            match self.audit_path {
                AuditPath::Copy => self.write_audit_copy(&client, rows).await,
                AuditPath::Unnest => write_audit_unnest(&client, rows).await,
            }
        };
        match tokio::time::timeout(self.deadline, write).await {
            Ok(result) => result,
            Err(_) => Err(self.give_up(client, "writing audit rows")),
        }
    }

    async fn create_rule(&self, r: &NewRule) -> Result<i32, StoreError> {
        let match_type = r.match_type.as_str();
        let r = check_rule(r)?;
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "INSERT INTO alert_rules (match_string, trap_oid, syslog_severity, match_type, priority,
                                          prod_handling, dev_handling, team_assignment, is_active,
                                          flap_threshold, flap_window_secs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                &rule_params(&r, &match_type),
            )
            .await
            .map_err(|e| classify("creating rule", e))?;
        Ok(row.get(0))
    }

    /// One row kept by statement-level triggers (migration V2); prepared once per connection.
    async fn rules_version(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let read = async {
            let stmt = client
                .prepare_cached("SELECT coalesce((SELECT version FROM rules_version), 0)")
                .await
                .map_err(|e| classify("reading the rules version", e))?;
            let row = client.query_one(&stmt, &[]).await.map_err(|e| classify("reading the rules version", e))?;
            Ok(row.get(0))
        };
        match tokio::time::timeout(self.deadline, read).await {
            Ok(r) => r,
            Err(_) => Err(self.give_up(client, "reading the rules version")),
        }
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(&format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY priority, id"), &[])
            .await
            .map_err(|e| classify("listing rules", e))?;
        rows.iter().map(row_to_rule).collect()
    }

    async fn add_development_host(&self, hostname: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute("INSERT INTO development_hosts (hostname) VALUES ($1) ON CONFLICT DO NOTHING", &[&hostname])
            .await
            .map_err(|e| classify("adding development host", e))?;
        Ok(())
    }

    async fn set_device_team(&self, hostname: &str, team: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO device_teams (hostname, team_assignment) VALUES ($1, $2)
                 ON CONFLICT (hostname) DO UPDATE SET team_assignment = EXCLUDED.team_assignment",
                &[&hostname, &team],
            )
            .await
            .map_err(|e| classify("setting device team", e))?;
        Ok(())
    }

    async fn ensure_partitions(&self, months_ahead: u32) -> Result<(), StoreError> {
        crate::partitions::AuditLifecycle::ensure_partitions_at(self, Utc::now(), months_ahead).await.map(|_| ())
    }

    async fn record_config_change(&self, c: &ConfigChange) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "INSERT INTO config_audit_log (changed_by, operation, table_name, record_id, old_values,
                                               new_values, reason, correlation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &c.changed_by,
                    &c.operation,
                    &c.table_name,
                    &c.record_id,
                    &c.old_values,
                    &c.new_values,
                    &c.reason,
                    &c.correlation_id,
                ],
            )
            .await
            .map_err(|e| classify("recording a configuration change", e))?;
        Ok(row.get(0))
    }

    async fn config_changes(&self, table_name: &str, limit: u32) -> Result<Vec<ConfigAuditRow>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {CONFIG_COLUMNS} FROM config_audit_log WHERE table_name = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&table_name, &i64::from(limit)],
            )
            .await
            .map_err(|e| classify("reading configuration changes", e))?;
        Ok(rows.iter().map(config_row).collect())
    }

    async fn delete_older_than(
        &self,
        table: RetainedTable,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        // The audit table's key is (id, event_timestamp): ids repeat across partitions.
        let sql = match table {
            RetainedTable::EventAudit => {
                "DELETE FROM event_audit_log WHERE (id, event_timestamp) IN
                   (SELECT id, event_timestamp FROM event_audit_log WHERE event_timestamp < $1 LIMIT $2)"
            }
            RetainedTable::ConfigAudit => {
                "DELETE FROM config_audit_log WHERE id IN
                   (SELECT id FROM config_audit_log WHERE changed_at < $1 LIMIT $2)"
            }
        };
        client.execute(sql, &[&cutoff, &i64::from(limit)]).await.map_err(|e| classify("applying retention", e))
    }
}

/// The UNNEST path: the batch as nine arrays bound to one prepared INSERT.
pub(super) async fn write_audit_unnest(
    client: &deadpool_postgres::Object,
    rows: &[AuditRecord],
) -> Result<u64, StoreError> {
    let mut ids: Vec<Uuid> = Vec::with_capacity(rows.len());
    let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(rows.len());
    let mut hosts: Vec<&str> = Vec::with_capacity(rows.len());
    let mut rules: Vec<i32> = Vec::with_capacity(rows.len());
    let mut decisions: Vec<&str> = Vec::with_capacity(rows.len());
    let mut forwarded: Vec<bool> = Vec::with_capacity(rows.len());
    let mut raws: Vec<&str> = Vec::with_capacity(rows.len());
    let mut suppressed: Vec<bool> = Vec::with_capacity(rows.len());
    let mut silenced: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    for r in rows {
        ids.push(r.event_id.as_uuid());
        times.push(r.event_timestamp);
        hosts.push(&r.hostname);
        rules.push(r.matched_rule_id);
        decisions.push(&r.handling_decision);
        forwarded.push(r.forwarded_to_moog);
        raws.push(&r.raw_message);
        suppressed.push(r.flap_suppressed);
        silenced.push(r.silenced_by);
    }
    // One statement for the whole batch; UNNEST keeps the parameter count fixed.
    let stmt = client
        .prepare_cached(
            "INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
                                          handling_decision, forwarded_to_moog, raw_message,
                                          flap_suppressed, silenced_by)
             SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::int4[],
                                  $5::text[], $6::bool[], $7::text[], $8::bool[], $9::int8[])
             ON CONFLICT (event_id, event_timestamp) DO NOTHING",
        )
        .await
        .map_err(|e| classify("preparing audit insert", e))?;
    client
        .execute(&stmt, &[&ids, &times, &hosts, &rules, &decisions, &forwarded, &raws, &suppressed, &silenced])
        .await
        .map_err(|e| classify("writing audit rows", e))
}

/// A rule's columns as statement parameters, in `alert_rules`' insert order ($1…$11 of the
/// insert, $2…$12 of the update): one list for both.
pub(crate) fn rule_params<'a>(
    r: &'a NewRule,
    match_type: &'a &'static str,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 11] {
    [
        &r.match_string,
        &r.trap_oid,
        &r.syslog_severity,
        match_type,
        &r.priority,
        &r.prod_handling,
        &r.dev_handling,
        &r.team_assignment,
        &r.is_active,
        &r.flap_threshold,
        &r.flap_window_secs,
    ]
}
