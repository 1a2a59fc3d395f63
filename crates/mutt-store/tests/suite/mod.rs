//! The store conformance suite: each function takes a freshly migrated, empty store of one
//! backend, plus an [`Inspect`] that looks at that backend's tables directly.
//!
//! `conformance!()` makes one `#[tokio::test]` per function, each on a store from the including
//! file's `async fn backend() -> (Arc<dyn Store>, Arc<dyn Inspect>)`. The list is here only.

/// See the module documentation.
macro_rules! conformance {
    () => {
        conformance! { @go
            ping_and_ensure_partitions_succeed,
            rules_and_lookups_round_trip,
            every_rule_field_reads_back_unchanged,
            database_rejects_invalid_rules,
            invalid_regex_is_refused_naming_the_field,
            database_checks_hold_for_writes_from_outside,
            rules_version_changes_with_every_rule_host_or_team_change,
            rules_version_read_is_cheap,
            audit_is_idempotent_on_event_id,
            plain_audit_inserts_without_event_id_get_distinct_ids,
            audit_batch_with_unknown_rule_is_rejected_whole,
            concurrent_audit_batches_all_land,
            config_changes_are_recorded_and_read_back_newest_first,
            retention_deletes_only_old_rows_in_chunks,
            retention_job_trims_in_chunks_and_counts_what_it_deleted
        }
    };
    (@go $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, db) = backend().await;
                suite::$name(store, db).await;
            }
        )*
    };
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::{EventId, MatchType};
use mutt_store::{AuditRecord, NewRule, Store, StoreError};
use std::sync::Arc;

/// What the suite checks behind the interface's back, in each backend's plain SQL.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// Rows in `event_audit_log`.
    async fn audit_rows(&self) -> u64;
    /// Runs one statement on a connection of its own, as `psql` or `sqlite3` would.
    async fn execute(&self, sql: &str) -> Result<u64, String>;
    /// The first column of a query's rows, as text.
    async fn texts(&self, sql: &str) -> Vec<String>;
}

pub fn rule(s: &str, prio: i32) -> NewRule {
    NewRule {
        match_string: Some(s.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: prio,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Ignore".into(),
        team_assignment: "NETO".into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    }
}

pub fn audit(rule_id: i32, at: &str) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: at.parse::<DateTime<Utc>>().unwrap(),
        hostname: "router1".into(),
        matched_rule_id: rule_id,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: r#"{"message":"x"}"#.into(),
        silenced_by: None,
        flap_suppressed: false,
    }
}

pub async fn ping_and_ensure_partitions_succeed(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    store.ping().await.unwrap();
    store.ensure_partitions(2).await.unwrap();
    store.ensure_partitions(2).await.unwrap();
}

pub async fn rules_and_lookups_round_trip(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    let b = store.create_rule(&rule("ERROR", 20)).await.unwrap();
    let a = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let mut inactive = rule("OFF", 1);
    inactive.is_active = false;
    store.create_rule(&inactive).await.unwrap();
    store.add_development_host("dev-router1").await.unwrap();
    store.add_development_host("dev-router1").await.unwrap();
    store.set_device_team("router1", "NetOps").await.unwrap();
    store.set_device_team("router1", "Security").await.unwrap();
    let snap = store.load_rules().await.unwrap();
    assert_eq!(snap.rules.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(snap.development_hosts.len(), 1);
    assert!(snap.development_hosts.contains("dev-router1"));
    assert_eq!(snap.device_teams.len(), 1);
    assert_eq!(snap.device_teams.get("router1").map(String::as_str), Some("Security"));
}

pub async fn every_rule_field_reads_back_unchanged(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    let oid = NewRule {
        match_string: None,
        trap_oid: Some("1.3.6.1.4.1.9".into()),
        match_type: MatchType::OidPrefix,
        ..rule("unused", 5)
    };
    let regex = NewRule { syslog_severity: Some(3), match_type: MatchType::Regex, ..rule("LINK-(UP|DOWN)", 5) };
    let off = NewRule { is_active: false, flap_threshold: Some(40), flap_window_secs: Some(60), ..rule("OFF", 1) };
    let mut expected = Vec::new();
    for r in [oid, regex, off] {
        let id = store.create_rule(&r).await.unwrap();
        expected.push(r.into_rule(id));
    }
    // list_rules: every rule, by priority then id.
    expected.sort_by_key(|r| (r.priority, r.id));
    assert_eq!(store.list_rules().await.unwrap(), expected);
    // load_rules: the active ones only, same order.
    let active: Vec<_> = expected.into_iter().filter(|r| r.is_active).collect();
    assert_eq!(store.load_rules().await.unwrap().rules, active);
}

pub async fn database_rejects_invalid_rules(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    let mut bad = rule("x", 1);
    bad.syslog_severity = Some(9);
    let err = store.create_rule(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("syslog_severity"), "names the field: {err}");
    let neither = NewRule { match_string: None, trap_oid: None, ..rule("x", 1) };
    assert!(matches!(store.create_rule(&neither).await, Err(StoreError::Rejected(_))));
    assert!(store.list_rules().await.unwrap().is_empty(), "nothing half-written");
}

/// The web API used to store a regex the alerter then silently left out.
pub async fn invalid_regex_is_refused_naming_the_field(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    let bad = NewRule { match_type: MatchType::Regex, ..rule("(unclosed", 1) };
    let err = store.create_rule(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("match_string: not a valid regex"), "{err}");
    // A parsed rule is accepted as such (it reads as its draft).
    let good = NewRule { match_type: MatchType::Regex, ..rule("LINK-(UP|DOWN)", 1) }.parse().unwrap();
    let id = store.create_rule(&good).await.unwrap();
    assert_eq!(store.list_rules().await.unwrap(), vec![good.to_rule(id)]);
}

/// The parse step guards the store's own writes; the database's constraints still guard
/// everyone else's.
pub async fn database_checks_hold_for_writes_from_outside(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let insert = |severity: &str, match_string: &str| {
        format!(
            "INSERT INTO alert_rules (match_string, syslog_severity, match_type, priority, prod_handling, \
             dev_handling, team_assignment) VALUES ({match_string}, {severity}, 'contains', 1, 'P', 'D', 'T')"
        )
    };
    assert!(db.execute(&insert("9", "'x'")).await.is_err(), "severity CHECK");
    assert!(db.execute(&insert("NULL", "NULL")).await.is_err(), "match criteria CHECK");
    assert_eq!(db.execute(&insert("3", "'x'")).await, Ok(1));
    assert_eq!(store.list_rules().await.unwrap().len(), 1);
}

pub async fn rules_version_changes_with_every_rule_host_or_team_change(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let mut seen = vec![store.rules_version().await.unwrap()];
    let mut changed = async |what: &str| {
        let v = store.rules_version().await.unwrap();
        assert!(!seen.contains(&v), "{what} must change the version ({seen:?} then {v})");
        seen.push(v);
    };
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    changed("a new rule").await;
    store.add_development_host("dev-1").await.unwrap();
    changed("a new development host").await;
    store.set_device_team("router1", "NetOps").await.unwrap();
    changed("a new device team").await;
    store.set_device_team("router1", "Security").await.unwrap();
    changed("a changed device team").await;
    // Another process (psql, the sqlite3 shell, `muttd rules import`) counts as well.
    db.execute(&format!("UPDATE alert_rules SET is_active = false WHERE id = {id}")).await.unwrap();
    changed("a rule changed from outside").await;
    db.execute("DELETE FROM development_hosts").await.unwrap();
    changed("a host deleted from outside").await;
    let last = *seen.last().unwrap();
    // Audit rows and config changes are not rules.
    store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap();
    assert_eq!(store.rules_version().await.unwrap(), last);
}

/// The alerter reads the version before each batch: it must stay a sub-millisecond read.
pub async fn rules_version_read_is_cheap(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    store.rules_version().await.unwrap();
    let n = 500;
    let started = std::time::Instant::now();
    for _ in 0..n {
        store.rules_version().await.unwrap();
    }
    let each = started.elapsed() / n;
    eprintln!("rules_version: {each:?} per read");
    // Generous: a loaded CI machine, debug build. Locally it is tens of microseconds.
    assert!(each < std::time::Duration::from_millis(10), "{each:?} per read");
}

pub async fn audit_is_idempotent_on_event_id(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let now = Utc::now().to_rfc3339();
    assert_eq!(store.write_audit(&[]).await.unwrap(), 0);
    let rows: Vec<AuditRecord> = (0..50).map(|_| audit(id, &now)).collect();
    assert_eq!(store.write_audit(&rows).await.unwrap(), 50);
    // Redelivery of the same events (plus one new) inserts only the new one.
    let mut again = rows.clone();
    again.push(audit(id, &now));
    assert_eq!(store.write_audit(&again).await.unwrap(), 1);
    assert_eq!(db.audit_rows().await, 51);
}

/// Writers other than muttd (the original alerter during a rolling upgrade, a restore script,
/// psql) insert audit rows without an event id: each gets one of its own, and muttd's own
/// writes stay idempotent beside them.
pub async fn plain_audit_inserts_without_event_id_get_distinct_ids(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    // The original alerter's INSERT (spec §4.6): the six data columns, no event id.
    let original = format!(
        "INSERT INTO event_audit_log (event_timestamp, hostname, matched_rule_id, handling_decision, \
         forwarded_to_moog, raw_message) VALUES ('2026-01-02T03:04:05.000Z', 'router9', {id}, \
         'Page_and_ticket', true, '{{\"hostname\": \"router9\"}}')"
    );
    assert_eq!(db.execute(&original).await, Ok(1), "first plain insert");
    assert_eq!(db.execute(&original).await, Ok(1), "second plain insert");
    let ids = db.texts("SELECT event_id FROM event_audit_log WHERE hostname = 'router9'").await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1], "each row has an id of its own");
    for text in &ids {
        let parsed = uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text} is not a UUID: {e}"));
        assert_eq!(parsed.hyphenated().to_string(), *text, "lower-case hyphenated, as muttd writes");
    }
    // An explicit NULL is still refused: the default fills an absent column only.
    let null =
        original.replace("(event_timestamp,", "(event_id, event_timestamp,").replace("VALUES (", "VALUES (NULL, ");
    assert!(db.execute(&null).await.is_err(), "NOT NULL holds");
    // muttd's own writes beside them: new once, then skipped.
    let row = audit(id, "2026-01-02T03:04:05Z");
    assert_eq!(store.write_audit(std::slice::from_ref(&row)).await.unwrap(), 1);
    assert_eq!(store.write_audit(&[row]).await.unwrap(), 0);
    assert_eq!(db.audit_rows().await, 3);
}

/// A row the database refuses (unknown rule: foreign key) refuses its whole batch, so the
/// caller can dead-letter it and retry the rest; nothing of the batch is left behind.
pub async fn audit_batch_with_unknown_rule_is_rejected_whole(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let now = Utc::now().to_rfc3339();
    let good = audit(id, &now);
    let bad = audit(id + 1000, &now);
    let err = store.write_audit(&[good.clone(), bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert_eq!(db.audit_rows().await, 0);
    assert_eq!(store.write_audit(&[good]).await.unwrap(), 1);
}

pub async fn concurrent_audit_batches_all_land(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let now = Utc::now().to_rfc3339();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let rows: Vec<AuditRecord> = (0..100).map(|_| audit(id, &now)).collect();
            tokio::spawn(async move { store.write_audit(&rows).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    assert_eq!(new, 800);
    assert_eq!(db.audit_rows().await, 800);
}

pub async fn config_changes_are_recorded_and_read_back_newest_first(store: Arc<dyn Store>, _db: Arc<dyn Inspect>) {
    use mutt_store::ConfigChange;
    let id = ConfigChange::dynamic_config_record_id("moog_rate_limit");
    assert!(id > 0);
    assert_eq!(id, ConfigChange::dynamic_config_record_id("moog_rate_limit"), "stable across calls and processes");
    let change = |old: Option<&str>, new: &str| ConfigChange {
        changed_by: "muttd-cli".into(),
        operation: if old.is_some() { "UPDATE" } else { "CREATE" }.into(),
        table_name: "dynamic_config".into(),
        record_id: id,
        old_values: old.map(|v| serde_json::json!({"key": "moog_rate_limit", "value": v})),
        new_values: Some(serde_json::json!({"key": "moog_rate_limit", "value": new})),
        reason: Some("load test".into()),
        correlation_id: None,
    };
    let first = store.record_config_change(&change(None, "50")).await.unwrap();
    let second = store.record_config_change(&change(Some("50"), "100")).await.unwrap();
    assert!(second > first);
    let rows = store.config_changes("dynamic_config", 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].change, change(Some("50"), "100"));
    assert_eq!(rows[1].change, change(None, "50"));
    assert!(rows[0].changed_at.ends_with('Z'), "{}", rows[0].changed_at);
    assert!(store.config_changes("alert_rules", 10).await.unwrap().is_empty());
    let bad = ConfigChange { operation: "RENAME".into(), ..change(None, "1") };
    assert!(matches!(store.record_config_change(&bad).await, Err(mutt_store::StoreError::Rejected(_))));
}

pub async fn retention_deletes_only_old_rows_in_chunks(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    use chrono::Duration as D;
    use mutt_store::RetainedTable;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let now = Utc::now();
    let at = |days: i64| (now - D::days(days)).to_rfc3339();
    let mut rows: Vec<AuditRecord> = (0..5).map(|_| audit(id, &at(100))).collect();
    rows.extend((0..3).map(|_| audit(id, &at(10))));
    assert_eq!(store.write_audit(&rows).await.unwrap(), 8);
    let cutoff = now - D::days(90);
    assert_eq!(store.delete_older_than(RetainedTable::EventAudit, cutoff, 2).await.unwrap(), 2, "one chunk");
    assert_eq!(store.delete_older_than(RetainedTable::EventAudit, cutoff, 1000).await.unwrap(), 3);
    assert_eq!(store.delete_older_than(RetainedTable::EventAudit, cutoff, 1000).await.unwrap(), 0);
    assert_eq!(db.audit_rows().await, 3, "the recent rows stay");
    // Config audit rows are trimmed by their change time; today's stay.
    let change = mutt_store::ConfigChange {
        changed_by: "t".into(),
        operation: "CREATE".into(),
        table_name: "dynamic_config".into(),
        record_id: 1,
        old_values: None,
        new_values: None,
        reason: None,
        correlation_id: None,
    };
    store.record_config_change(&change).await.unwrap();
    assert_eq!(store.delete_older_than(RetainedTable::ConfigAudit, now - D::days(365), 100).await.unwrap(), 0);
    assert_eq!(store.delete_older_than(RetainedTable::ConfigAudit, now + D::days(1), 100).await.unwrap(), 1);
}

/// The retention job as a process runs it: chunk after chunk until done, counted in the
/// original's metric.
pub async fn retention_job_trims_in_chunks_and_counts_what_it_deleted(store: Arc<dyn Store>, db: Arc<dyn Inspect>) {
    use mutt_store::RetainedTable;
    use mutt_store::retention::{self, RetentionConfig, RetentionMetrics};
    use tokio_util::sync::CancellationToken;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let at = |days: i64| (Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    let rows: Vec<_> = (0..25).map(|_| audit(id, &at(120))).chain((0..4).map(|_| audit(id, &at(1)))).collect();
    store.write_audit(&rows).await.unwrap();
    let stop = CancellationToken::new();
    let n = retention::run_once(store.as_ref(), RetainedTable::EventAudit, 90, 10, &stop).await.unwrap();
    assert_eq!(n, 25, "three chunks of at most 10");
    assert_eq!(db.audit_rows().await, 4);

    store.write_audit(&(0..7).map(|_| audit(id, &at(100))).collect::<Vec<_>>()).await.unwrap();
    let metrics = RetentionMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let cfg = RetentionConfig { batch_size: 3, ..RetentionConfig::default() };
    let job = retention::spawn(store.clone(), cfg, metrics.clone(), stop.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metrics.deleted(RetainedTable::EventAudit) < 7 {
        assert!(std::time::Instant::now() < deadline, "the job did not trim the 7 old rows");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
    job.await.unwrap();
    assert_eq!(db.audit_rows().await, 4);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"mutt_retention_cleanup_records_deleted_total{type="event_audit"} 7"#), "{text}");
    assert!(text.contains(r#"mutt_retention_cleanup_records_deleted_total{type="config_audit"} 0"#), "{text}");

    // Settings read at the start of each run (the dynamic keys): a run told "off" removes
    // nothing; one told 30 days removes rows of 40 days, which the static 90 days keep.
    store.write_audit(&(0..5).map(|_| audit(id, &at(40))).collect::<Vec<_>>()).await.unwrap();
    let reads = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let spawn_with = |days: Option<u32>| {
        let reads = reads.clone();
        let read: retention::ReadSettings = Arc::new(move || {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let cfg = days.map(|d| RetentionConfig { event_audit_days: d, ..RetentionConfig::default() });
            Box::pin(async move { cfg })
        });
        let stop = CancellationToken::new();
        let every = std::time::Duration::from_secs(3600);
        (retention::spawn_reading(Default::default(), store.clone(), every, read, metrics.clone(), stop.clone()), stop)
    };
    let (job, stop) = spawn_with(None);
    while reads.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.cancel();
    job.await.unwrap();
    assert_eq!(db.audit_rows().await, 9, "enforcement off: nothing removed");
    let (job, stop) = spawn_with(Some(30));
    while metrics.deleted(RetainedTable::EventAudit) < 12 {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(10), "30 days not applied");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
    job.await.unwrap();
    assert_eq!(db.audit_rows().await, 4);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"mutt_retention_policy_days{type="event_audit"} 30"#), "{text}");
}
