//! Partitions, retention and the archive on a real PostgreSQL (a fresh database per test),
//! plus what only PostgreSQL has: the alerter's daily partition task over months.

#[macro_use]
mod lifecycle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lifecycle::{Sql, at};
use mutt_store::Store;
use mutt_store::partitions::{self, AuditLifecycle};
use mutt_store::postgres::{PgStore, PostgresConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Pg {
    url: String,
}

impl Pg {
    async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    }
}

#[async_trait]
impl Sql for Pg {
    fn partitioned(&self) -> bool {
        true
    }

    async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        // The simple protocol returns every value as text, whatever its type.
        self.client()
            .await
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_owned()).collect())
                }
                _ => None,
            })
            .collect()
    }

    async fn execute(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }
}

async fn store() -> (PgStore, String) {
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 }).unwrap();
    store.migrate().await.expect("migrations apply");
    (store, url)
}

async fn backend() -> (Arc<dyn Store>, Arc<dyn Sql>) {
    let (store, url) = store().await;
    (Arc::new(store), Arc::new(Pg { url }))
}

lifecycle_tests!();

/// An alerter running for months: its daily task keeps creating the coming months' partitions
/// (the clock here moves a month per run), so that no month's rows go to DEFAULT.
#[tokio::test]
async fn the_daily_task_keeps_months_out_of_the_default_partition() {
    let (store, url) = store().await;
    let db = Pg { url };
    let store: Arc<PgStore> = Arc::new(store);
    let clock = Arc::new(Mutex::new(at("2030-10-15T12:00:00Z")));
    let now = {
        let clock = clock.clone();
        Arc::new(move || -> DateTime<Utc> {
            let mut t = clock.lock().unwrap();
            let current = *t;
            *t = partitions::Month::of(current).plus(1).start() + chrono::Duration::days(14);
            current
        })
    };
    let stop = CancellationToken::new();
    let lc: Arc<dyn AuditLifecycle> = store.clone();
    let task = partitions::spawn_daily(lc, 2, Duration::from_millis(10), now, stop.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.count("SELECT count(*) FROM pg_class WHERE relname = 'event_audit_log_2031_06'").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the task did not reach June 2031");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    task.await.unwrap();
    let rule = lifecycle::rule_id(store.as_ref()).await;
    for m in ["2030-10", "2030-12", "2031-01", "2031-03", "2031-06"] {
        lifecycle::write(store.as_ref(), rule, &format!("{m}-28T23:59:59Z"), 1, m).await;
    }
    assert_eq!(db.count("SELECT count(*) FROM event_audit_log_default").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM event_audit_log_2031_01").await, 1);
}
