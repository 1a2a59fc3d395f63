//! `muttd run` while the Redis and PostgreSQL passwords are rotated on the live servers (spec
//! §11.4 and its [ADD]): events flow through ingestor → alerter (audit) → forwarder while
//! `ACL SETUSER` / `ALTER ROLE` change the passwords and every session is cut; the processes
//! move to the _NEXT passwords, later back to _CURRENT, without a restart; every event is
//! audited and delivered, and the log names the password that worked, never its value.
//!
//! Servers of the test's own: the shared test PostgreSQL trusts local connections (it never
//! checks a password), and the whole Redis password changes here.

mod common;

use common::spawn_run;
use mutt_testkit::{PostgresServer, RedisServer, TestCertificates, WebhookReceiver};
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const DB_CURRENT: &str = "db-cur-8f21c4";
const DB_NEXT: &str = "db-next-3a9e77";
const REDIS_CURRENT: &str = "redis-cur-b61d05";
const REDIS_NEXT: &str = "redis-next-47ce92";
const INGEST_KEY: &str = "ingest-rot-key-1";
const EVENTS: usize = 240;

async fn pg_admin(pg: &PostgresServer, db: &str) -> tokio_postgres::Client {
    // Plain connections from 127.0.0.1 are trusted on this server (TLS ones need the password).
    let url = format!("postgres://mutt@127.0.0.1:{}/{db}?sslmode=disable", pg.port());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(conn);
    client
}

async fn redis_admin(port: u16, password: &str, cmd: &mut redis::Cmd) {
    let client = redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}/0")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
}

/// Both passwords changed on the servers, then every session of muttd's cut.
async fn rotate(pg: &tokio_postgres::Client, redis_port: u16, (redis_old, redis_new): (&str, &str), db_new: &str) {
    pg.batch_execute(&format!("ALTER ROLE rot PASSWORD '{db_new}'")).await.unwrap();
    pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rot'", &[]).await.unwrap();
    let setuser = &mut redis::cmd("ACL");
    setuser.arg("SETUSER").arg("default").arg("resetpass").arg(format!(">{redis_new}"));
    redis_admin(redis_port, redis_old, setuser).await;
    redis_admin(redis_port, redis_new, redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal")).await;
}

/// Every `rot-<n>` in a request body (a batch holds several alerts).
fn hosts(body: &str) -> Vec<String> {
    body.split("rot-")
        .skip(1)
        .map(|s| s.chars().take_while(char::is_ascii_digit).collect::<String>())
        .filter(|n| !n.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_rotated_on_live_servers_while_events_flow() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().expect("openssl");
    let pg = PostgresServer::start_tls(&certs.cert, &certs.key, "admin-unused-9d").expect("TLS PostgreSQL");
    let admin = pg_admin(&pg, "postgres").await;
    admin.batch_execute(&format!("CREATE ROLE rot LOGIN PASSWORD '{DB_CURRENT}'")).await.unwrap();
    admin.batch_execute("CREATE DATABASE rotdb OWNER rot").await.unwrap();
    let redis = RedisServer::start_with(false, &["--requirepass", REDIS_CURRENT]).expect("redis-server");
    let receiver = WebhookReceiver::start().await;
    let log_path = dir.path().join("muttd.log");
    let mut cmd = common::muttd(dir.path());
    cmd.env("MUTT_REDIS__URL", format!("redis://127.0.0.1:{}/0", redis.port()))
        .env("MUTT_DATABASE__URL", format!("postgres://rot@127.0.0.1:{}/rotdb?sslmode=require", pg.port()))
        .env("MUTT_FORWARDER__WEBHOOK_URL", receiver.url())
        .env("REDIS_PASS_CURRENT", REDIS_CURRENT)
        .env("REDIS_PASS_NEXT", REDIS_NEXT)
        .env("DB_PASS_CURRENT", DB_CURRENT)
        .env("DB_PASS_NEXT", DB_NEXT)
        .env("INGEST_API_KEY", INGEST_KEY)
        .env("WEBUI_API_KEY", "web-rot-key-2")
        .env("MOOG_API_KEY", "moog-rot-key-3");
    let migrate = Command::new(cmd.get_program())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let db = pg_admin(&pg, "rotdb").await;
    db.batch_execute(
        "INSERT INTO alert_rules (match_string, match_type, priority, prod_handling, dev_handling, team_assignment) \
         VALUES ('ROTATION', 'contains', 10, 'Page_and_ticket', 'Ticket_only', 'NETO')",
    )
    .await
    .unwrap();
    let (mut child, stdout) = spawn_run(cmd.stderr(std::fs::File::create(&log_path).unwrap()));
    let ingest = stdout.ingest_url();
    let http = reqwest::Client::new();
    let mut refused = 0;
    for n in 0..EVENTS {
        if n == EVENTS / 3 {
            rotate(&admin, redis.port(), (REDIS_CURRENT, REDIS_NEXT), DB_NEXT).await;
        }
        if n == 2 * EVENTS / 3 {
            // Every event sent under the NEXT passwords audited first: otherwise the alerter may
            // not touch PostgreSQL between the two rotations and never need DB_PASS_NEXT.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let audited: i64 = db
                    .query_one("SELECT count(DISTINCT hostname) FROM event_audit_log WHERE hostname LIKE 'rot-%'", &[])
                    .await
                    .unwrap()
                    .get(0);
                if audited as usize >= n {
                    break;
                }
                assert!(Instant::now() < deadline, "events sent under DB_PASS_NEXT not audited: {audited} of {n}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            rotate(&admin, redis.port(), (REDIS_NEXT, REDIS_CURRENT), DB_CURRENT).await;
        }
        let event = json!({"hostname": format!("rot-{n}"), "message": format!("ROTATION check {n}"),
            "timestamp": "2026-12-01T12:00:00Z"});
        let deadline = Instant::now() + Duration::from_secs(30);
        // A 503 while the ingestor reconnects is the client's cue to send again.
        while http
            .post(&ingest)
            .header("X-API-KEY", INGEST_KEY)
            .json(&event)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "event {n} never accepted");
            refused += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let (audited, delivered) = loop {
        let audited: i64 = db
            .query_one("SELECT count(DISTINCT hostname) FROM event_audit_log WHERE hostname LIKE 'rot-%'", &[])
            .await
            .unwrap()
            .get(0);
        let delivered: BTreeSet<String> = receiver.accepted().iter().flat_map(|r| hosts(&r.body.to_string())).collect();
        if (audited as usize, delivered.len()) == (EVENTS, EVENTS) || Instant::now() > deadline {
            break (audited as usize, delivered.len());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(child.terminate(Duration::from_secs(30)).is_some(), "muttd stops on SIGTERM");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let notable: Vec<&str> =
        log.lines().filter(|l| l.contains("password") || l.contains("ERROR") || l.contains("authenticated")).collect();
    let notable = notable.iter().take(60).copied().collect::<Vec<_>>().join("\n");
    assert_eq!((audited, delivered), (EVENTS, EVENTS), "every event audited and delivered\n{notable}");
    for name in ["REDIS_PASS_NEXT", "DB_PASS_NEXT", "REDIS_PASS_CURRENT", "DB_PASS_CURRENT"] {
        assert!(log.contains(&format!("authenticated with {name}")), "{name} not named in the log:\n{notable}");
    }
    for secret in [DB_CURRENT, DB_NEXT, REDIS_CURRENT, REDIS_NEXT] {
        assert!(!log.contains(secret), "a password in the log:\n{log}");
    }
    println!("{EVENTS} events through two rotations; {refused} sends answered other than 200 and sent again");
}
