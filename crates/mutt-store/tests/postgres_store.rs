//! The store interface against a real PostgreSQL (a fresh database per test): the conformance
//! suite, plus what only PostgreSQL has (partitions, a server to lose).

#[macro_use]
mod suite;

use async_trait::async_trait;
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PostgresConfig};
use std::sync::Arc;
use suite::{Inspect, audit, rule};

async fn store() -> (PgStore, String) {
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 }).unwrap();
    let applied = store.migrate().await.expect("migrations apply");
    assert!(!applied.is_empty());
    (store, url)
}

async fn count(url: &str, sql: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.query_one(sql, &[]).await.unwrap().get(0)
}

struct PgInspect {
    url: String,
}

#[async_trait]
impl Inspect for PgInspect {
    async fn audit_rows(&self) -> u64 {
        count(&self.url, "SELECT count(*) FROM event_audit_log").await.try_into().unwrap()
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.execute(sql, &[]).await.map_err(|e| e.to_string())
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        // The simple protocol returns every value as text, whatever its type.
        c.simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_owned()),
                _ => None,
            })
            .collect()
    }
}

async fn backend() -> (Arc<dyn Store>, Arc<dyn Inspect>) {
    let (store, url) = store().await;
    (Arc::new(store), Arc::new(PgInspect { url }))
}

conformance!();

#[tokio::test]
async fn migrate_is_repeatable() {
    let (store, _) = store().await;
    assert!(store.migrate().await.unwrap().is_empty(), "second run applies nothing");
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

/// What the alerter waits for (an outage) and what it counts against a message (anything
/// else), by SQLSTATE: a trigger raises the code its row's hostname names.
#[tokio::test]
async fn only_the_servers_state_is_transient() {
    let (store, url) = store().await;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE FUNCTION raise_named() RETURNS trigger AS $$
         BEGIN
             RAISE EXCEPTION 'refused by a DBA trigger' USING ERRCODE = substr(NEW.hostname, 10);
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER raise_named BEFORE INSERT ON event_audit_log
             FOR EACH ROW EXECUTE FUNCTION raise_named();",
    )
    .await
    .unwrap();
    let cases = [
        ("08006", true),  // connection failure
        ("53300", true),  // too many connections
        ("57014", true),  // statement timeout, cancel
        ("57P01", true),  // administrator shutdown
        ("58030", true),  // the server's I/O
        ("40001", true),  // serialization failure
        ("40P01", true),  // deadlock
        ("55P03", true),  // lock_timeout
        ("P0001", false), // a trigger's plain RAISE EXCEPTION
        ("42501", false), // permission denied
        ("23514", false), // a check constraint
        ("22001", false), // value too long
        ("XX000", false), // internal error
        ("55000", false), // object not in prerequisite state (class 55 other than 55P03)
    ];
    for (code, transient) in cases {
        let row = mutt_store::AuditRecord { hostname: format!("sqlstate-{code}"), ..audit(id, "2026-01-01T00:00:00Z") };
        let err = store.write_audit(&[row]).await.unwrap_err();
        assert_eq!(err.is_unavailable(), transient, "{code}: {err}");
        assert!(err.to_string().contains("refused by a DBA trigger"), "the database's message: {err}");
    }
    let err = store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap_err();
    assert!(matches!(err, mutt_store::StoreError::Failed(_)), "a code that is no SQLSTATE at all: {err}");
}
