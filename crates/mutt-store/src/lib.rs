//! MUTT's store: rules, lookups and the audit trail, behind one interface.
//!
//! Layout:
//! - this file: the [`Store`] interface and its records;
//! - [`postgres`]: the PostgreSQL backend and its migrations (`migrations/postgres`);
//! - [`sqlite`]: the embedded SQLite backend on a [`mutt_sqlite::Database`] and its migrations
//!   (`migrations/sqlite`);
//! - [`retention`]: the job that trims the audit trails to their configured age;
//! - [`partitions`]: the audit trail's monthly partitions and archive.

pub mod manage;
pub mod partitions;
pub mod postgres;
pub mod retention;
pub mod silences;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::rule::ValidRule;
use mutt_core::{EventId, RuleSnapshot};

/// What went wrong, in terms a caller can act on without knowing the backend. The one question
/// the alerter asks is [`StoreError::is_unavailable`]: wait and retry the same work (an
/// outage), or count a failed attempt against the messages at hand (anything else).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transient: the database could not be reached, the connection broke, or the statement
    /// lost out to the server's state (out of resources, shutting down, cancelled or timed out,
    /// a serialization failure or deadlock, a lock not granted in time; SQLite: busy, locked,
    /// I/O, disk full). Worth waiting for and retrying as it is.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused these rows or this statement (bad data, a constraint, a trigger
    /// that raised): retrying the same thing will fail again.
    #[error("database rejected the request: {0}")]
    Rejected(String),
    /// The database failed the statement for a reason that is neither an outage nor these
    /// rows' data: missing privileges, a missing table or function, an internal error. Not
    /// worth waiting for; retrying as it is will most likely fail again.
    #[error("database error: {0}")]
    Failed(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether the error is transient (see [`StoreError::Unavailable`]): the same work may
    /// succeed once the database is back, so nothing should be counted against it.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// An error and its sources on one line (driver errors keep the useful part in a source).
/// A source whose text the line already holds is skipped: some errors print their source in
/// their own message.
pub(crate) fn full_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// One row of `event_audit_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub event_id: EventId,
    pub event_timestamp: DateTime<Utc>,
    pub hostname: String,
    pub matched_rule_id: i32,
    pub handling_decision: String,
    pub forwarded_to_moog: bool,
    pub raw_message: String,
    /// The silence that held the event's alert back (`silences.id`), if one did.
    pub silenced_by: Option<i64>,
    /// Held back by its rule's flap limit (`forwarded_to_moog` is then false).
    pub flap_suppressed: bool,
}

/// A rule to create (the id is assigned by the store): a draft, checked by
/// [`Store::create_rule`] with [`mutt_core::rule::RuleDraft::parse`].
pub use mutt_core::rule::RuleDraft as NewRule;

/// The parse step every backend's `create_rule` runs first: an invalid rule is refused with
/// the field at fault, before the database sees it.
pub(crate) fn check_rule(rule: &NewRule) -> Result<ValidRule, StoreError> {
    rule.parse().map_err(|e| StoreError::Rejected(format!("invalid rule: {e}")))
}

/// One row of `config_audit_log`: who changed which configuration record, from what to what.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConfigChange {
    pub changed_by: String,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: String,
    /// `dynamic_config`, `alert_rules`, …
    pub table_name: String,
    pub record_id: i32,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
}

impl ConfigChange {
    /// The row for a change of dynamic-configuration `key` from `old` to `new` (`None`: unset),
    /// as the original's config API wrote it (spec §6.5), with `DELETE` for a removal.
    /// `changed_by`: `muttd-cli:<OS user>` from the CLI, the API key's name from the API.
    pub fn dynamic_config(
        key: &str,
        old: Option<&str>,
        new: Option<&str>,
        changed_by: &str,
        reason: Option<&str>,
    ) -> Self {
        let operation = match (old, new) {
            (_, None) => "DELETE",
            (Some(_), Some(_)) => "UPDATE",
            (None, Some(_)) => "CREATE",
        };
        Self {
            changed_by: changed_by.to_owned(),
            operation: operation.into(),
            table_name: "dynamic_config".into(),
            record_id: Self::dynamic_config_record_id(key),
            old_values: old.map(|v| serde_json::json!({"key": key, "value": v})),
            new_values: new.map(|v| serde_json::json!({"key": key, "value": v})),
            reason: reason.map(str::to_owned),
            correlation_id: None,
        }
    }

    /// The record id of a dynamic-configuration key: FNV-1a of the key masked to 31 bits, never
    /// 0 (spec §6.5 [FIX]: the original used Python's per-process randomised `hash()`).
    pub fn dynamic_config_record_id(key: &str) -> i32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        match (h & 0x7fff_ffff) as i32 {
            0 => 1,
            n => n,
        }
    }
}

/// The tables retention trims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetainedTable {
    /// `event_audit_log`, by `event_timestamp`.
    EventAudit,
    /// `config_audit_log`, by `changed_at`.
    ConfigAudit,
}

impl RetainedTable {
    /// The label of `mutt_retention_cleanup_records_deleted_total` (the original's).
    pub fn label(self) -> &'static str {
        match self {
            RetainedTable::EventAudit => "event_audit",
            RetainedTable::ConfigAudit => "config_audit",
        }
    }
}

/// A `config_audit_log` row as read back.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConfigAuditRow {
    pub id: i64,
    /// RFC 3339 UTC.
    pub changed_at: String,
    #[serde(flatten)]
    pub change: ConfigChange,
}

/// Longest hostname the audit column takes; longer events are dead-lettered, not truncated.
pub use mutt_core::normalize::MAX_HOSTNAME_LEN;

/// A store also manages its audit trail's partitions, archive and bulk removal
/// ([`partitions::AuditLifecycle`]; a `&dyn Store` is a `&dyn AuditLifecycle`), and answers the
/// management API ([`manage::Manage`]).
#[async_trait]
pub trait Store: partitions::AuditLifecycle + manage::Manage + silences::Silences + Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Active rules, development hosts and device teams, read consistently.
    async fn load_rules(&self) -> Result<RuleSnapshot, StoreError>;

    /// Writes audit rows in one statement; rows whose event id is already recorded are
    /// skipped. Returns how many rows were new.
    async fn write_audit(&self, rows: &[AuditRecord]) -> Result<u64, StoreError>;

    /// Creates a rule after checking it ([`NewRule::parse`]): an invalid draft is
    /// `Rejected` with the field at fault. Takes a [`ValidRule`] too (it reads as its draft).
    async fn create_rule(&self, rule: &NewRule) -> Result<i32, StoreError>;

    /// A number that changes with every change to the rules, development hosts or device
    /// teams, whoever made it (kept by triggers). Compare for inequality, not order. One small
    /// query: the alerter reads it before each batch.
    async fn rules_version(&self) -> Result<i64, StoreError>;

    /// Every rule, active or not, ordered by priority then id.
    async fn list_rules(&self) -> Result<Vec<mutt_core::Rule>, StoreError>;

    async fn add_development_host(&self, hostname: &str) -> Result<(), StoreError>;

    async fn set_device_team(&self, hostname: &str, team: &str) -> Result<(), StoreError>;

    /// Makes sure the monthly audit partitions exist for this month and the next
    /// `months_ahead` (nothing on SQLite; see [`partitions`]).
    async fn ensure_partitions(&self, months_ahead: u32) -> Result<(), StoreError>;

    /// Appends a row to `config_audit_log`; returns its id.
    async fn record_config_change(&self, change: &ConfigChange) -> Result<i64, StoreError>;

    /// The newest `limit` rows of `config_audit_log` for `table_name`, newest first.
    async fn config_changes(&self, table_name: &str, limit: u32) -> Result<Vec<ConfigAuditRow>, StoreError>;

    /// Retention: deletes up to `limit` rows of `table` older than `cutoff` (by event time for
    /// the audit trail, by change time for the config audit); returns how many. Called in
    /// small chunks so that the deletes never hold up the pipeline's writes for long.
    async fn delete_older_than(
        &self,
        table: RetainedTable,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
