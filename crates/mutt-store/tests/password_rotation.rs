//! The PostgreSQL password rotated on a live server while audit rows are written (spec §11.4
//! and its [ADD]): `ALTER ROLE … PASSWORD` plus the role's sessions cut, so every connection
//! is opened again; the pool moves to DB_PASS_NEXT, later back to DB_PASS_CURRENT, no row is
//! lost, and the log names the password that worked without printing it.
//!
//! A server of the test's own (testkit `PostgresServer` with TLS): the shared test PostgreSQL
//! trusts every local connection, so it never checks a password.

use mutt_core::Secret;
use mutt_core::credentials::{Candidate, Credentials};
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PgTimeouts, PostgresConfig};
use mutt_testkit::{PostgresServer, TestCertificates};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CURRENT: &str = "pw-current-5c1e8a";
const NEXT: &str = "pw-next-93bd20";
const ROWS: u64 = 600;

/// Everything logged, for the assertions on the log.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn record(i: u64, rule: i32) -> mutt_store::AuditRecord {
    mutt_store::AuditRecord {
        event_id: mutt_core::EventId::new(),
        event_timestamp: chrono::Utc::now(),
        hostname: format!("rotation-{i}"),
        matched_rule_id: rule,
        handling_decision: "Forward".into(),
        forwarded_to_moog: false,
        raw_message: format!("event {i}"),
        silenced_by: None,
        flap_suppressed: false,
    }
}

async fn admin(server: &PostgresServer) -> tokio_postgres::Client {
    // Plain connections from 127.0.0.1 are trusted on this server (TLS ones need the password).
    let (client, conn) = tokio_postgres::connect(&format!("{}?sslmode=disable", server.url()), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    client
}

/// Changes the role's password and ends its sessions: the pool must connect again.
async fn rotate(admin: &tokio_postgres::Client, password: &str) {
    admin.batch_execute(&format!("ALTER ROLE rot PASSWORD '{password}'")).await.unwrap();
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rot'", &[]).await.unwrap();
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_a_live_server_while_rows_are_written() {
    let log = Log::default();
    let writer = log.clone();
    let _ = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).try_init();
    let certs = TestCertificates::generate().expect("openssl");
    let server = PostgresServer::start_tls(&certs.cert, &certs.key, "admin-unused-4e1").expect("PostgreSQL");
    let admin = admin(&server).await;
    admin.batch_execute(&format!("CREATE ROLE rot LOGIN PASSWORD '{CURRENT}'")).await.unwrap();
    admin.batch_execute("CREATE DATABASE rotdb OWNER rot").await.unwrap();

    let url = format!("postgres://rot@127.0.0.1:{}/rotdb?sslmode=require", server.port());
    let credentials = Arc::new(Credentials::new(vec![
        Candidate::new("DB_PASS_CURRENT", Secret::new(CURRENT)),
        Candidate::new("DB_PASS_NEXT", Secret::new(NEXT)),
    ]));
    let config = PostgresConfig { url, password: None, pool_size: 2 };
    let store = PgStore::with_credentials(&config, &PgTimeouts::default(), credentials.clone()).unwrap();
    store.migrate().await.expect("migrations as the role");
    assert_eq!(credentials.working().as_deref(), Some("DB_PASS_CURRENT"));
    let rule = store
        .create_rule(&mutt_store::NewRule {
            match_string: Some("ERROR".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: mutt_core::MatchType::Contains,
            priority: 10,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NETO".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        })
        .await
        .unwrap();

    // The writer retries a failed batch, as the alerter does: nothing may be lost.
    let written = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let task = {
        let (store, written, failures) = (store.clone(), written.clone(), failures.clone());
        tokio::spawn(async move {
            for i in 0..ROWS {
                let row = [record(i, rule)];
                while let Err(e) = store.write_audit(&row).await {
                    assert!(e.is_unavailable(), "{e}");
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                written.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    wait_for("first rows", || written.load(Ordering::Relaxed) >= 100).await;
    rotate(&admin, NEXT).await;
    let at = written.load(Ordering::Relaxed);
    wait_for("rows after the rotation", || written.load(Ordering::Relaxed) >= at + 100).await;
    assert_eq!(credentials.working().as_deref(), Some("DB_PASS_NEXT"));
    // Rolled back: CURRENT is tried again.
    rotate(&admin, CURRENT).await;
    let at = written.load(Ordering::Relaxed);
    wait_for("rows after the roll-back", || written.load(Ordering::Relaxed) >= at + 100).await;
    assert_eq!(credentials.working().as_deref(), Some("DB_PASS_CURRENT"));
    tokio::time::timeout(Duration::from_secs(60), task).await.expect("writer finished").unwrap();

    let count: i64 = admin_count(&server).await;
    assert_eq!(count as u64, ROWS, "every row written exactly once");
    let text = log.text();
    assert!(text.contains("authenticated with DB_PASS_NEXT"), "{text}");
    assert!(text.contains("authenticated with DB_PASS_CURRENT"), "{text}");
    assert!(!text.contains(CURRENT) && !text.contains(NEXT), "a password in the log:\n{text}");
    eprintln!("failed batches during the rotations: {}", failures.load(Ordering::Relaxed));
}

async fn admin_count(server: &PostgresServer) -> i64 {
    let url = format!("postgres://mutt@127.0.0.1:{}/rotdb?sslmode=disable", server.port());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.query_one("SELECT count(*) FROM event_audit_log", &[]).await.unwrap().get(0)
}
