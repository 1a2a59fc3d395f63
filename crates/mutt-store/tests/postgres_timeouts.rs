//! PostgreSQL time-outs: a statement past `statement_timeout` is cancelled by the server (an
//! outage for the caller, so the work is retried), and a server that accepts the connection
//! but never answers fails the connection within `connect_timeout`, not after minutes.

use mutt_store::Store;
use mutt_store::postgres::{PgStore, PgTimeouts, PostgresConfig};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_statement_past_statement_timeout_is_cancelled() {
    let url = mutt_testkit::fresh_database().await;
    let timeouts = PgTimeouts { statement_timeout: Some(Duration::from_millis(500)), ..PgTimeouts::default() };
    let store = PgStore::with_timeouts(&PostgresConfig { url, password: None, pool_size: 1 }, &timeouts).unwrap();
    let client = store.pool().get().await.expect("connection");
    let shown: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "500ms");
    let started = Instant::now();
    let err = client.simple_query("SELECT pg_sleep(5)").await.expect_err("cancelled");
    assert!(started.elapsed() < Duration::from_secs(3), "cancelled after {:?}", started.elapsed());
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
    drop(client);
    // The pool's connections keep the setting; None leaves the server's (0: no limit).
    let url = mutt_testkit::fresh_database().await;
    let off = PgTimeouts { statement_timeout: None, ..PgTimeouts::default() };
    let store = PgStore::with_timeouts(&PostgresConfig { url, password: None, pool_size: 1 }, &off).unwrap();
    let client = store.pool().get().await.expect("connection");
    let shown: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "0");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_connect_timeout() {
    // Accepts TCP connections (the kernel completes the handshake) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://mutt@127.0.0.1:{}/mutt?sslmode=disable", silent.local_addr().unwrap().port());
    let timeouts = PgTimeouts { connect_timeout: Duration::from_secs(1), ..PgTimeouts::default() };
    let store = PgStore::with_timeouts(&PostgresConfig { url, password: None, pool_size: 1 }, &timeouts).unwrap();
    let started = Instant::now();
    let err = store.ping().await.expect_err("no answer");
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "gave up after {:?}", started.elapsed());
}
