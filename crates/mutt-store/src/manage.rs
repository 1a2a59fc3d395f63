//! What the management API reads and changes beyond the pipeline's needs: one rule, rule
//! updates and deletes, development hosts and device teams one by one, and the searches of the
//! two audit trails with a total count for pagination.
//!
//! Every store implements [`Manage`] (`postgres/manage.rs`, `sqlite/manage.rs`); a `&dyn Store`
//! is a `&dyn Manage`.

use crate::{ConfigAuditRow, NewRule, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::Rule;

/// What deleting a rule did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleDeletion {
    Deleted(Rule),
    NotFound,
    /// Audit rows reference the rule (`ON DELETE RESTRICT`): how many.
    Referenced(u64),
}

/// One page of a search: rows, and how many match in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub total: u64,
}

/// Filters of the config-audit search (spec §6.9); `None` filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigAuditFilter {
    /// Case-insensitive substring of `changed_by`.
    pub changed_by: Option<String>,
    /// `CREATE`, `UPDATE` or `DELETE` (upper case).
    pub operation: Option<String>,
    pub table_name: Option<String>,
    pub record_id: Option<i32>,
    /// Inclusive bounds on `changed_at`.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub offset: u64,
    pub limit: u32,
}

/// Filters of the event-audit search (spec §6.10 and more); `None` filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventAuditFilter {
    /// One event (its `_event_id`, hyphenated UUID).
    pub event_id: Option<String>,
    /// Exact hostname.
    pub hostname: Option<String>,
    pub rule_id: Option<i32>,
    /// Exact handling decision.
    pub decision: Option<String>,
    pub forwarded: Option<bool>,
    /// Inclusive bounds on `event_timestamp`.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Count at most this many matches (the page's `total` is then the smaller of the two):
    /// an exact count of a big audit log reads every match. `None`: exact (the API's `total`).
    pub count_limit: Option<u64>,
    pub offset: u64,
    pub limit: u32,
}

/// One row of `event_audit_log` as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EventAuditRow {
    pub id: i64,
    pub event_id: String,
    /// RFC 3339 UTC.
    pub event_timestamp: String,
    pub hostname: String,
    pub matched_rule_id: i32,
    pub handling_decision: String,
    pub forwarded_to_moog: bool,
    /// The stored JSON text, as the original returned it.
    pub raw_message: Option<String>,
    /// Held back by its rule's flap limit (not in the original).
    pub flap_suppressed: bool,
    /// The silence that held its alert back (not in the original).
    pub silenced_by: Option<i64>,
}

/// A timestamp as both stores compare it: RFC 3339 UTC with milliseconds.
pub(crate) fn ts_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
pub trait Manage: Send + Sync {
    async fn get_rule(&self, id: i32) -> Result<Option<Rule>, StoreError>;

    /// Replaces every field of rule `id` with `rule` (checked first, as `create_rule`).
    /// Returns the rule as it was, or `None` when there is no such rule.
    async fn replace_rule(&self, id: i32, rule: &NewRule) -> Result<Option<Rule>, StoreError>;

    /// Deletes rule `id` unless audit rows reference it.
    async fn delete_rule(&self, id: i32) -> Result<RuleDeletion, StoreError>;

    /// Hostnames, sorted.
    async fn development_hosts(&self) -> Result<Vec<String>, StoreError>;

    /// Adds a development host; `false` when it was there already.
    async fn insert_development_host(&self, hostname: &str) -> Result<bool, StoreError>;

    /// Removes a development host; `false` when there was none.
    async fn delete_development_host(&self, hostname: &str) -> Result<bool, StoreError>;

    /// (hostname, team), sorted by hostname.
    async fn device_teams(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Adds a mapping; `false` when the host has one already.
    async fn insert_device_team(&self, hostname: &str, team: &str) -> Result<bool, StoreError>;

    /// Changes a mapping; the old team, or `None` when the host has none.
    async fn update_device_team(&self, hostname: &str, team: &str) -> Result<Option<String>, StoreError>;

    /// Removes a mapping; the old team, or `None` when the host had none.
    async fn delete_device_team(&self, hostname: &str) -> Result<Option<String>, StoreError>;

    /// Config-audit rows matching `filter`, newest first (ties by id, newest first).
    async fn search_config_audit(&self, filter: &ConfigAuditFilter) -> Result<Page<ConfigAuditRow>, StoreError>;

    /// Event-audit rows matching `filter`, newest event first (ties by id, newest first).
    async fn search_event_audit(&self, filter: &EventAuditFilter) -> Result<Page<EventAuditRow>, StoreError>;
}
