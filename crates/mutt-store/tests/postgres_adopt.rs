//! `muttd migrate` on a database the original MUTT v2.5 made: the schema is adopted, every row
//! kept, and the store works on it (an upgrading site keeps its rules and audit trail).

use chrono::Utc;
use mutt_core::EventId;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{AuditRecord, Store};

const ORIGINAL: &str = include_str!("fixtures/original_v2_5_schema.sql");

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn the_original_schema_is_adopted_with_its_rows() {
    let url = mutt_testkit::fresh_database().await;
    let db = client(&url).await;
    db.batch_execute(ORIGINAL).await.expect("the original's schema");

    let store = PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 2 }).expect("store");
    let applied = store.migrate().await.expect("migrate adopts the original schema");
    assert!(!applied.iter().any(|m| m.contains("initial_schema")), "V1 is recorded, not run: {applied:?}");

    // Everything the original wrote is still there.
    let rules = store.load_rules().await.expect("rules");
    assert_eq!(rules.rules.len(), 3);
    assert!(rules.development_hosts.contains("dev-router1"));
    assert_eq!(count(&db, "SELECT count(*) FROM event_audit_log").await, 2);
    assert_eq!(count(&db, "SELECT count(DISTINCT event_id) FROM event_audit_log").await, 2, "old rows got ids");
    assert_eq!(count(&db, "SELECT count(*) FROM config_audit_log").await, 1);

    // muttd writes its audit idempotently on the adopted table, also in a month without a
    // partition (the DEFAULT partition the original lacked).
    let row = |when| AuditRecord {
        event_id: EventId::new(),
        event_timestamp: when,
        hostname: "router3".into(),
        matched_rule_id: rules.rules[0].id,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: "{}".into(),
        silenced_by: None,
        flap_suppressed: false,
    };
    let now = row(Utc::now());
    let future = row(Utc::now() + chrono::Duration::days(400));
    assert_eq!(store.write_audit(&[now.clone(), future.clone()]).await.expect("audit"), 2);
    assert_eq!(store.write_audit(&[now, future]).await.expect("audit again"), 0, "idempotent on event_id");

    // The original alerter's plain INSERT keeps working during a rolling upgrade.
    db.execute(
        "INSERT INTO event_audit_log (event_timestamp, hostname, matched_rule_id, handling_decision) \
         VALUES (now(), 'router4', $1, 'Ticket_only')",
        &[&rules.rules[0].id],
    )
    .await
    .expect("the original's INSERT");

    // A second migrate has nothing to do, and partitions are managed by muttd's function.
    assert!(store.migrate().await.expect("migrate again").is_empty());
    db.batch_execute("SELECT create_monthly_partition((now() + interval '400 days')::date)").await.expect("partition");
    assert_eq!(count(&db, "SELECT count(*) FROM event_audit_log").await, 5);
}

#[tokio::test]
async fn a_fresh_database_is_not_adopted() {
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url, password: None, pool_size: 2 }).expect("store");
    let applied = store.migrate().await.expect("migrate");
    assert!(applied.iter().any(|m| m.contains("initial_schema")), "{applied:?}");
}
