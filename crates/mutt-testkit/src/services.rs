//! Handles to the test services started by `scripts/test-services.sh`.

use std::time::Duration;

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through scripts/test.sh, which starts a private \
             redis-server and PostgreSQL and exports it (or `source .test-services/env`)"
        )
    })
}

/// The URL of the test Redis.
pub fn redis_url() -> String {
    required_env("MUTT_TEST_REDIS_URL")
}

/// A key prefix no other test uses, e.g. `t3f9a1c2:`.
pub fn unique_prefix() -> String {
    format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Creates an empty database on the test PostgreSQL and returns its URL.
pub async fn fresh_database() -> String {
    let admin = required_env("MUTT_TEST_DATABASE_URL");
    let name = format!("mutt_test_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at MUTT_TEST_DATABASE_URL: {e}"));
    let task = tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("MUTT_TEST_DATABASE_URL has no database part: {admin}"),
    }
}
