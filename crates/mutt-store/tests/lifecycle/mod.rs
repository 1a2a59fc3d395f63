//! Partitions, retention and the archive on both backends: each function takes a freshly
//! migrated, empty store and a [`Sql`] that reads that backend's tables directly.
//! `lifecycle_tests!()` makes one `#[tokio::test]` per function from the including file's
//! `async fn backend() -> (Arc<dyn Store>, Arc<dyn Sql>)`.
//!
//! The clock is passed in: every test runs in months of its own (2030 and later), far from the
//! partitions `migrate` made for the real current month.

macro_rules! lifecycle_tests {
    () => {
        lifecycle_tests! { @go
            partitions_are_created_across_a_year_boundary_from_december,
            dropping_an_expired_partition_keeps_newer_rows,
            archive_copies_rows_with_the_explicit_mapping,
            retention_dry_run_changes_nothing,
            retention_job_exports_the_originals_metrics
        }
    };
    (@go $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, db) = backend().await;
                lifecycle::$name(store, db).await;
            }
        )*
    };
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::{EventId, MatchType};
use mutt_store::partitions::{AuditLifecycle, Month};
use mutt_store::retention::{self, NoProgress, RetentionConfig, RetentionMetrics};
use mutt_store::{AuditRecord, ConfigChange, NewRule, Store};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Plain SQL on the backend, as `psql` or `sqlite3` would run it.
#[async_trait]
pub trait Sql: Send + Sync {
    /// Whether this is PostgreSQL (partitions are tables).
    fn partitioned(&self) -> bool;
    /// The first column of the first row, as an integer.
    async fn count(&self, sql: &str) -> i64;
    /// Every row's columns, as text (NULL as "NULL").
    async fn rows(&self, sql: &str) -> Vec<Vec<String>>;
    async fn execute(&self, sql: &str);
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn month(y: i32, m: u32) -> Month {
    Month::new(y, m).unwrap()
}

pub async fn rule_id(store: &dyn Store) -> i32 {
    store
        .create_rule(&NewRule {
            match_string: Some("CRITICAL".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: MatchType::Contains,
            priority: 10,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NETO".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        })
        .await
        .unwrap()
}

/// `n` audit rows at `t`, host `host`.
pub async fn write(store: &dyn Store, rule: i32, t: &str, n: usize, host: &str) {
    let rows: Vec<AuditRecord> = (0..n)
        .map(|i| AuditRecord {
            event_id: EventId::new(),
            event_timestamp: at(t),
            hostname: host.into(),
            matched_rule_id: rule,
            handling_decision: "Page_and_ticket".into(),
            forwarded_to_moog: i % 2 == 0,
            raw_message: format!(r#"{{"message":"{host} {i}"}}"#),
            silenced_by: None,
            // Held back by a flap limit: not forwarded.
            flap_suppressed: i % 2 == 1,
        })
        .collect();
    assert_eq!(store.write_audit(&rows).await.unwrap(), n as u64);
}

async fn audit_rows(db: &dyn Sql) -> i64 {
    db.count("SELECT count(*) FROM event_audit_log").await
}

async fn partition_names(store: &dyn Store) -> Vec<String> {
    let lc: &dyn AuditLifecycle = store;
    lc.list_partitions(true).await.unwrap().into_iter().filter(|p| !p.is_default).map(|p| p.name).collect()
}

/// A run starting on New Year's Eve creates December and the next three months (into the
/// next year); a month later only the new fourth month is added. Rows of those months land in
/// their partitions, not in DEFAULT. SQLite creates nothing and lists its rows by month.
pub async fn partitions_are_created_across_a_year_boundary_from_december(store: Arc<dyn Store>, db: Arc<dyn Sql>) {
    let lc: &dyn AuditLifecycle = store.as_ref();
    let created = lc.ensure_partitions_at(at("2030-12-31T23:30:00Z"), 3).await.unwrap();
    let rule = rule_id(store.as_ref()).await;
    write(store.as_ref(), rule, "2030-12-31T23:59:59Z", 2, "dec").await;
    write(store.as_ref(), rule, "2031-01-01T00:00:00Z", 3, "jan").await;
    let listed = lc.list_partitions(true).await.unwrap();
    if db.partitioned() {
        assert_eq!(created, [month(2030, 12), month(2031, 1), month(2031, 2), month(2031, 3)]);
        let names = partition_names(store.as_ref()).await;
        for n in
            ["event_audit_log_2030_12", "event_audit_log_2031_01", "event_audit_log_2031_02", "event_audit_log_2031_03"]
        {
            assert!(names.contains(&n.to_string()), "{n} in {names:?}");
        }
        assert!(!names.contains(&"event_audit_log_2031_04".to_string()));
        assert_eq!(db.count("SELECT count(*) FROM event_audit_log_2030_12").await, 2);
        assert_eq!(db.count("SELECT count(*) FROM event_audit_log_2031_01").await, 3);
        assert_eq!(db.count("SELECT count(*) FROM event_audit_log_default").await, 0);
        let jan = listed.iter().find(|p| p.name == "event_audit_log_2031_01").unwrap();
        assert_eq!((jan.month, jan.rows, jan.is_default), (Some(month(2031, 1)), Some(3), false));
        assert!(jan.bytes.unwrap() > 0);
        assert!(listed.last().unwrap().is_default, "DEFAULT listed last");
        // Idempotent; a month later only the new fourth month is missing.
        assert!(lc.ensure_partitions_at(at("2030-12-01T00:00:00Z"), 3).await.unwrap().is_empty());
        assert_eq!(lc.ensure_partitions_at(at("2031-01-31T12:00:00Z"), 3).await.unwrap(), [month(2031, 4)]);
    } else {
        assert!(created.is_empty(), "no partitions on SQLite");
        let months: Vec<_> = listed.iter().map(|p| (p.name.as_str(), p.month, p.rows, p.bytes)).collect();
        assert_eq!(
            months,
            [
                ("event_audit_log", Some(month(2030, 12)), Some(2), None),
                ("event_audit_log", Some(month(2031, 1)), Some(3), None)
            ]
        );
    }
}

/// Retention at 2030-03-15 with 35 days: January has expired whole (PostgreSQL drops its
/// partition), February straddles the cutoff (its old rows go in chunks), March stays.
pub async fn dropping_an_expired_partition_keeps_newer_rows(store: Arc<dyn Store>, db: Arc<dyn Sql>) {
    let lc: &dyn AuditLifecycle = store.as_ref();
    lc.ensure_partitions_at(at("2030-01-10T00:00:00Z"), 2).await.unwrap();
    let rule = rule_id(store.as_ref()).await;
    write(store.as_ref(), rule, "2030-01-05T00:00:00Z", 7, "jan").await;
    write(store.as_ref(), rule, "2030-02-03T00:00:00Z", 4, "feb-old").await;
    write(store.as_ref(), rule, "2030-02-20T00:00:00Z", 5, "feb-new").await;
    write(store.as_ref(), rule, "2030-03-14T00:00:00Z", 6, "mar").await;
    let cfg = RetentionConfig { event_audit_days: 35, batch_size: 3, ..RetentionConfig::default() };
    let stop = CancellationToken::new();
    let report = retention::run_at(store.as_ref(), &cfg, at("2030-03-15T00:00:00Z"), &NoProgress, &stop).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.event_rows, 11, "January's 7 and February's 4 old rows");
    assert_eq!(audit_rows(db.as_ref()).await, 11);
    let hosts = db.rows("SELECT hostname, count(*) FROM event_audit_log GROUP BY hostname ORDER BY hostname").await;
    assert_eq!(hosts, [vec!["feb-new".to_string(), "5".into()], vec!["mar".into(), "6".into()]]);
    if db.partitioned() {
        // (The partitions `migrate` made around the real month have expired too, empty.)
        let dropped: Vec<_> = ours(&report.partitions_dropped);
        assert_eq!(dropped, [("event_audit_log_2030_01", Some(7))]);
        assert_eq!(db.count("SELECT count(*) FROM pg_class WHERE relname = 'event_audit_log_2030_01'").await, 0);
        let names = partition_names(store.as_ref()).await;
        assert!(names.contains(&"event_audit_log_2030_02".to_string()), "February's partition stays");
        // A later row of an expired month goes to DEFAULT and is trimmed by rows next time.
        write(store.as_ref(), rule, "2030-01-06T00:00:00Z", 1, "late").await;
        assert_eq!(db.count("SELECT count(*) FROM event_audit_log_default").await, 1);
    } else {
        assert!(report.partitions_dropped.is_empty());
        write(store.as_ref(), rule, "2030-01-06T00:00:00Z", 1, "late").await;
    }
    let again = retention::run_at(store.as_ref(), &cfg, at("2030-03-15T00:00:00Z"), &NoProgress, &stop).await;
    assert_eq!((again.event_rows, again.partitions_dropped.len()), (1, 0));
    assert_eq!(audit_rows(db.as_ref()).await, 11);
}

/// With an archive kept, expired rows move to `event_audit_log_archive` by column name: the
/// source id in `original_id` (not in the archive's own id), the event time in
/// `original_partition_timestamp`, the partition in `archived_from_partition`, every data
/// column as it was. Archive rows past the archive's years are deleted.
pub async fn archive_copies_rows_with_the_explicit_mapping(store: Arc<dyn Store>, db: Arc<dyn Sql>) {
    let lc: &dyn AuditLifecycle = store.as_ref();
    lc.ensure_partitions_at(at("2030-01-10T00:00:00Z"), 2).await.unwrap();
    let rule = rule_id(store.as_ref()).await;
    // Moves the audit ids ahead of the archive's, so that a positional copy would show (they
    // stay: they are not old enough).
    write(store.as_ref(), rule, "2030-03-01T00:00:00Z", 5, "spacer").await;
    write(store.as_ref(), rule, "2030-01-05T00:00:00Z", 3, "jan").await;
    write(store.as_ref(), rule, "2030-02-03T00:00:00Z", 2, "feb-old").await;
    write(store.as_ref(), rule, "2020-06-01T00:00:00Z", 1, "ancient").await;
    write(store.as_ref(), rule, "2030-03-10T00:00:00Z", 4, "mar").await;
    let dump = "SELECT id, event_id, event_timestamp, hostname, matched_rule_id, handling_decision,
                       forwarded_to_moog, raw_message, flap_suppressed FROM event_audit_log
                 WHERE hostname IN ('jan', 'feb-old') ORDER BY id";
    let before = db.rows(dump).await;
    assert_eq!(before.len(), 5);

    let cfg = RetentionConfig { event_audit_days: 35, archive_years: Some(7), ..RetentionConfig::default() };
    let stop = CancellationToken::new();
    let report = retention::run_at(store.as_ref(), &cfg, at("2030-03-15T00:00:00Z"), &NoProgress, &stop).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.event_rows, report.events_archived), (6, 6));
    assert_eq!(report.archive_rows_deleted, 1, "the 2020 row is past seven years");
    assert_eq!(audit_rows(db.as_ref()).await, 9, "March stays");

    let archived = db
        .rows(
            "SELECT original_id, event_id, original_partition_timestamp, hostname, matched_rule_id,
                    handling_decision, forwarded_to_moog, raw_message, archived_from_partition, id,
                    event_timestamp = original_partition_timestamp, archived_at IS NOT NULL, flap_suppressed
               FROM event_audit_log_archive ORDER BY original_id",
        )
        .await;
    assert_eq!(archived.len(), 5);
    for (src, arc) in before.iter().zip(&archived) {
        assert_eq!(&arc[..8], &src[..8], "every column maps by name");
        assert_ne!(arc[9], arc[0], "the archive has ids of its own");
        assert!(matches!(arc[10].as_str(), "t" | "1"), "event time in original_partition_timestamp");
        assert!(matches!(arc[11].as_str(), "t" | "1"));
        assert_eq!(arc[12], src[8], "flap_suppressed kept");
        let from = match (db.partitioned(), arc[3].as_str()) {
            (false, _) => "event_audit_log",
            (true, "jan") => "event_audit_log_2030_01",
            (true, _) => "event_audit_log_2030_02",
        };
        assert_eq!(arc[8], from);
    }
}

/// The partitions of the test's own years, with their rows.
fn ours(ps: &[mutt_store::partitions::PartitionInfo]) -> Vec<(&str, Option<u64>)> {
    ps.iter().filter(|p| p.name.starts_with("event_audit_log_203")).map(|p| (p.name.as_str(), p.rows)).collect()
}

fn change(by: &str) -> ConfigChange {
    ConfigChange {
        changed_by: by.into(),
        operation: "UPDATE".into(),
        table_name: "dynamic_config".into(),
        record_id: 1,
        old_values: None,
        new_values: Some(serde_json::json!({"value": 1})),
        reason: None,
        correlation_id: None,
    }
}

/// A dry run reports what a real run then removes, and changes nothing: every table's rows
/// and every partition are as before.
pub async fn retention_dry_run_changes_nothing(store: Arc<dyn Store>, db: Arc<dyn Sql>) {
    let lc: &dyn AuditLifecycle = store.as_ref();
    lc.ensure_partitions_at(at("2030-01-10T00:00:00Z"), 2).await.unwrap();
    let rule = rule_id(store.as_ref()).await;
    write(store.as_ref(), rule, "2030-01-05T00:00:00Z", 7, "jan").await;
    write(store.as_ref(), rule, "2030-02-03T00:00:00Z", 4, "feb").await;
    write(store.as_ref(), rule, "2030-03-14T00:00:00Z", 6, "mar").await;
    store.record_config_change(&change("old")).await.unwrap();
    store.record_config_change(&change("new")).await.unwrap();
    // Dated into the test's own time (the store always writes now()).
    db.execute("UPDATE config_audit_log SET changed_at = '2028-01-01T00:00:00.000Z' WHERE changed_by = 'old'").await;
    db.execute("UPDATE config_audit_log SET changed_at = '2030-03-10T00:00:00.000Z' WHERE changed_by = 'new'").await;
    let counts = || async {
        (
            audit_rows(db.as_ref()).await,
            db.count("SELECT count(*) FROM config_audit_log").await,
            db.count("SELECT count(*) FROM event_audit_log_archive").await,
            partition_names(store.as_ref()).await,
        )
    };
    let before = counts().await;
    for archive_years in [None, Some(1)] {
        let cfg = RetentionConfig { event_audit_days: 35, archive_years, dry_run: true, ..RetentionConfig::default() };
        let stop = CancellationToken::new();
        let r = retention::run_at(store.as_ref(), &cfg, at("2030-03-15T00:00:00Z"), &NoProgress, &stop).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.dry_run);
        assert_eq!((r.event_rows, r.config_rows), (11, 1));
        assert_eq!(r.events_archived, if archive_years.is_some() { 11 } else { 0 });
        let would_drop = ours(&r.partitions_dropped);
        if db.partitioned() {
            assert_eq!(would_drop, [("event_audit_log_2030_01", Some(7))]);
        } else {
            assert!(would_drop.is_empty());
        }
        assert_eq!(counts().await, before, "the dry run changed nothing");
    }
    let cfg = RetentionConfig { event_audit_days: 35, ..RetentionConfig::default() };
    let r = retention::run_at(store.as_ref(), &cfg, at("2030-03-15T00:00:00Z"), &NoProgress, &CancellationToken::new())
        .await;
    assert_eq!((r.event_rows, r.config_rows), (11, 1), "the real run removes what the dry run counted");
    assert_eq!(audit_rows(db.as_ref()).await, 6);
    assert_eq!(db.count("SELECT count(*) FROM config_audit_log").await, 1);
}

/// The job as the alerter runs it: the original's metric names and values.
pub async fn retention_job_exports_the_originals_metrics(store: Arc<dyn Store>, _db: Arc<dyn Sql>) {
    let rule = rule_id(store.as_ref()).await;
    let ago = |days: i64| (Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    write(store.as_ref(), rule, &ago(200), 3, "old").await;
    write(store.as_ref(), rule, &ago(1), 2, "new").await;
    let metrics = RetentionMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let cfg = RetentionConfig { archive_years: Some(7), ..RetentionConfig::default() };
    let stop = CancellationToken::new();
    let job = retention::spawn(store.clone(), cfg, metrics.clone(), stop.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metrics.archived() < 3 {
        assert!(std::time::Instant::now() < deadline, "the job did not archive the 3 old rows");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
    job.await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"mutt_retention_cleanup_records_deleted_total{type="event_audit"} 3"#,
        r#"mutt_retention_cleanup_records_deleted_total{type="config_audit"} 0"#,
        r#"mutt_retention_policy_days{type="event_audit"} 90"#,
        r#"mutt_retention_policy_days{type="config_audit"} 365"#,
        r#"mutt_retention_policy_days{type="archive"} 2555"#,
        "mutt_retention_events_archived_total 3",
        "mutt_retention_events_deleted_total 0",
        "mutt_retention_config_audits_deleted_total 0",
        r#"mutt_retention_errors_total{task="event_audit"} 0"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    for name in [
        "mutt_retention_cleanup_last_run_timestamp_seconds ",
        "mutt_retention_last_run_timestamp ",
        "mutt_retention_enforcement_duration_seconds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name} in:\n{text}");
    }
}
