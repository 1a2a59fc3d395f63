//! The store interface against a real PostgreSQL (a fresh database per test).

use chrono::{DateTime, Utc};
use mutt_core::{EventId, MatchType};
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{AuditRecord, NewRule, Store, StoreError};

async fn store() -> (PgStore, String) {
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 }).unwrap();
    let applied = store.migrate().await.expect("migrations apply");
    assert!(!applied.is_empty());
    (store, url)
}

fn rule(s: &str, prio: i32) -> NewRule {
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
    }
}

fn audit(rule_id: i32, at: &str) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: at.parse::<DateTime<Utc>>().unwrap(),
        hostname: "router1".into(),
        matched_rule_id: rule_id,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: r#"{"message":"x"}"#.into(),
    }
}

async fn count(url: &str, sql: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn migrate_is_repeatable() {
    let (store, _) = store().await;
    assert!(store.migrate().await.unwrap().is_empty(), "second run applies nothing");
}

#[tokio::test]
async fn rules_and_lookups_round_trip() {
    let (store, _) = store().await;
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
    assert!(snap.development_hosts.contains("dev-router1"));
    assert_eq!(snap.device_teams.get("router1").map(String::as_str), Some("Security"));
}

#[tokio::test]
async fn database_rejects_invalid_rules() {
    let (store, _) = store().await;
    let mut bad = rule("x", 1);
    bad.syslog_severity = Some(9);
    assert!(matches!(store.create_rule(&bad).await, Err(StoreError::Rejected(_))));
}

#[tokio::test]
async fn audit_is_idempotent_on_event_id() {
    let (store, url) = store().await;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let now = Utc::now().to_rfc3339();
    let rows: Vec<AuditRecord> = (0..50).map(|_| audit(id, &now)).collect();
    assert_eq!(store.write_audit(&rows).await.unwrap(), 50);
    // Redelivery of the same events (plus one new) inserts only the new one.
    let mut again = rows.clone();
    again.push(audit(id, &now));
    assert_eq!(store.write_audit(&again).await.unwrap(), 1);
    assert_eq!(count(&url, "SELECT count(*) FROM event_audit_log").await, 51);
}

#[tokio::test]
async fn any_timestamp_finds_a_partition_and_late_partitions_take_their_rows() {
    let (store, url) = store().await;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    // Years outside the pre-created months land in the DEFAULT partition.
    let rows = vec![audit(id, "2019-03-04T05:06:07Z"), audit(id, "2031-01-01T00:00:00Z")];
    assert_eq!(store.write_audit(&rows).await.unwrap(), 2);
    assert_eq!(count(&url, "SELECT count(*) FROM event_audit_log_default").await, 2);
    // Creating the month's partition later moves its rows out of DEFAULT.
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.execute("SELECT create_monthly_partition('2019-03-01')", &[]).await.unwrap();
    assert_eq!(count(&url, "SELECT count(*) FROM event_audit_log_2019_03").await, 1);
    assert_eq!(count(&url, "SELECT count(*) FROM event_audit_log_default").await, 1);
    // And the idempotency still holds across partitions.
    assert_eq!(store.write_audit(&rows).await.unwrap(), 0);
}

#[tokio::test]
async fn unreachable_database_is_unavailable_not_rejected() {
    let store = PgStore::new(&PostgresConfig {
        url: "postgres://mutt@127.0.0.1:1/nothing".into(),
        password: None,
        pool_size: 1,
    })
    .unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}
