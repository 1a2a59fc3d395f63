//! Upgrading a running site: `muttd alerter` and `muttd forwarder` processes take over a Redis
//! holding what the Python MUTT left there (its default `mutt:` keys, on a Redis of this test's
//! own): ingest items without `_event_id`, alerts with the original's `api_key`, retry counts,
//! and in-flight items in the processing lists of its dead workers. Everything is audited and
//! delivered once, in the original's `legacy` payload, and the `api_key` reaches neither the
//! receiver, nor a queue, nor a log; nothing is dead-lettered.

mod common;

use common::KillOnDrop;
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_testkit::{RedisServer, WebhookReceiver};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Moog key the original alerter copied into every alert it queued.
const ORIGINAL_KEY: &str = "original-alerter-moog-key-7Qx";
/// muttd's forwarder's own key.
const MOOG_KEY: &str = "muttd-forwarder-moog-key";

/// A `muttd` role process with a log file of its own; killed when dropped.
struct Proc {
    child: KillOnDrop,
    log: PathBuf,
}

impl Proc {
    /// Starts `muttd <role>` with the original's Redis variables and a log file of its own.
    fn start(role: &str, dir: &Path, redis_port: u16, database_url: &str, extra: &[(&str, String)]) -> Self {
        let log = dir.join(format!("{role}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_muttd"));
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", redis_port.to_string())
            // The test's Redis has no TLS (the original's default is TLS on).
            .env("REDIS_TLS_ENABLED", "false")
            .env("MUTT_DATABASE__URL", database_url)
            .env("MUTT_ALERTER__PORT", "0")
            .env("MUTT_FORWARDER__PORT", "0")
            .env("MUTT_WORKER__BLOCK_TIMEOUT_SECS", "0.2")
            .env("MUTT_LOG__LEVEL", "debug")
            .env("POD_NAME", format!("muttd-{role}"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Self { child: KillOnDrop(cmd.spawn().expect("spawn muttd")), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An ingest item as the original ingestor queued it (spec §3.2): no `_event_id`.
fn original_item(cid: &str, host: &str, message: &str) -> Value {
    json!({"timestamp": "2025-11-08T12:00:00Z", "message": message, "hostname": host,
           "syslog_severity": 2, "program": "kernel", "_correlation_id": cid})
}

/// An alert as the original alerter queued it (spec §4.7), with its copy of the Moog key.
fn original_alert(cid: &str, host: &str) -> Value {
    let message = format!("CRITICAL: System failure detected on {host}");
    json!({"api_key": ORIGINAL_KEY, "hostname": host, "team_assignment": "NETO", "severity": "Warning",
           "message_body": message,
           "raw_json": original_item(cid, host, &message), "_correlation_id": cid})
}

struct Redis(redis::aio::MultiplexedConnection);

impl Redis {
    /// `redis-cli LPUSH key value`, as the original's services pushed.
    async fn lpush(&mut self, key: &str, value: &Value) {
        let _: i64 = redis::cmd("LPUSH").arg(key).arg(value.to_string()).query_async(&mut self.0).await.unwrap();
    }

    async fn int(&mut self, cmd: &str, key: &str) -> i64 {
        redis::cmd(cmd).arg(key).query_async(&mut self.0).await.unwrap()
    }

    async fn keys(&mut self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS").arg(pattern).query_async(&mut self.0).await.unwrap()
    }

    /// Messages still queued, leased or waiting for a retry, anywhere.
    async fn in_flight(&mut self) -> i64 {
        let mut n = self.int("LLEN", "mutt:ingest_queue").await + self.int("LLEN", "mutt:alert_queue").await;
        for key in self.keys("mutt:processing:*").await {
            n += self.int("LLEN", &key).await;
        }
        for key in self.keys("*delayed*").await {
            n += self.int("ZCARD", &key).await;
        }
        n
    }

    /// Every value Redis holds, as text (lists, sets, sorted sets, hashes, strings).
    async fn everything(&mut self) -> String {
        let mut all = String::new();
        for key in self.keys("*").await {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut self.0).await.unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut self.0).await.unwrap(),
                "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut self.0).await.unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut self.0).await.unwrap(),
                "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut self.0).await.unwrap(),
                "string" => {
                    let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut self.0).await.unwrap();
                    v.into_iter().collect()
                }
                _ => vec![],
            };
            all.push_str(&key);
            for v in values {
                all.push_str(&String::from_utf8_lossy(&v));
            }
        }
        all
    }
}

async fn migrated_store(database_url: &str) -> PgStore {
    let store = PgStore::new(&PostgresConfig { url: database_url.to_owned(), password: None, pool_size: 2 }).unwrap();
    store.migrate().await.unwrap();
    store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap();
    store
}

async fn audit_rows(database_url: &str) -> Vec<(String, String)> {
    let (c, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let rows = c.query("SELECT event_id::text, raw_message FROM event_audit_log ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Fills Redis as the Python MUTT left it: two ingest items (one retried once by the original
/// alerter), two alerts (one retried by the original forwarder), and one item in each of the
/// processing lists of its stopped alerter and forwarder (no heartbeat: their janitors' job).
async fn leave_what_the_original_left(r: &mut Redis) {
    r.lpush("mutt:ingest_queue", &original_item("ingest-1", "server-01", "CRITICAL: System failure detected")).await;
    let mut retried = original_item("ingest-2", "server-02", "CRITICAL: fan tray failure");
    retried["_retry_count"] = json!(2);
    r.lpush("mutt:ingest_queue", &retried).await;
    r.lpush("mutt:processing:alerter:alerter-9f3e2a", &original_item("ingest-3", "server-03", "CRITICAL: PSU 2")).await;
    r.lpush("mutt:alert_queue", &original_alert("alert-1", "router-01")).await;
    let mut retried = original_alert("alert-2", "router-02");
    retried["_moog_retry_count"] = json!(3);
    r.lpush("mutt:alert_queue", &retried).await;
    r.lpush("mutt:processing:moog:moog-forwarder-1b2c3d", &original_alert("alert-3", "router-03")).await;
}

/// Waits until nothing is queued, leased or waiting anywhere, and `done` holds.
async fn settle(r: &mut Redis, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Twice in a row: an alerter's settle empties its list and fills the alert queue at once.
        let idle = r.in_flight().await == 0 && {
            tokio::time::sleep(Duration::from_millis(300)).await;
            r.in_flight().await == 0
        };
        if idle && done() {
            return;
        }
        assert!(Instant::now() < deadline, "not settled within 30 s: {} in flight", r.in_flight().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muttd_takes_over_what_the_original_left_in_redis() {
    let server = RedisServer::start(false).unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut r = Redis(client.get_multiplexed_async_connection().await.unwrap());
    let database_url = mutt_testkit::fresh_database().await;
    let _store = migrated_store(&database_url).await;
    let receiver = WebhookReceiver::start().await;
    leave_what_the_original_left(&mut r).await;

    let dir = tempfile::tempdir().unwrap();
    let mut alerter = Proc::start("alerter", dir.path(), server.port(), &database_url, &[]);
    let forwarder_env = [
        ("MOOG_WEBHOOK_URL", receiver.url()),
        ("MOOG_API_KEY", MOOG_KEY.to_owned()),
        ("MUTT_FORWARDER__FORMAT", "legacy".to_owned()),
    ];
    let mut forwarder = Proc::start("forwarder", dir.path(), server.port(), &database_url, &forwarder_env);
    settle(&mut r, || receiver.accepted().len() >= 6).await;

    // A second copy of an ingest item and of an alert, as a redelivery would bring them.
    r.lpush("mutt:ingest_queue", &original_item("ingest-1", "server-01", "CRITICAL: System failure detected")).await;
    r.lpush("mutt:alert_queue", &original_alert("alert-1", "router-01")).await;
    settle(&mut r, || true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Audited once each: three rows, three ids, the original's correlation ids kept.
    let rows = audit_rows(&database_url).await;
    let ids: BTreeSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (3, 3), "{rows:?}");
    for cid in ["ingest-1", "ingest-2", "ingest-3"] {
        assert!(rows.iter().any(|(_, raw)| raw.contains(cid)), "{cid} audited: {rows:?}");
    }

    // Delivered once each, in the original's payload, external_id = the correlation id.
    let accepted = receiver.accepted();
    let mut external: Vec<&str> = accepted.iter().map(|a| a.body["external_id"].as_str().unwrap()).collect();
    external.sort_unstable();
    assert_eq!(external, ["alert-1", "alert-2", "alert-3", "ingest-1", "ingest-2", "ingest-3"]);
    assert_eq!(receiver.requests().len(), 6, "nothing sent twice, nothing refused");
    let alert_1 = accepted.iter().find(|a| a.body["external_id"] == "alert-1").unwrap();
    let want = json!({
        "signature": "router-01", "source_id": "router-01", "external_id": "alert-1", "manager": "MUTT",
        "source": "MUTT Alerter", "class": "NETO", "agent": "MUTT v2.3", "agent_location": "Alerter Service",
        "type": "Alert", "severity": 3, "description": "CRITICAL: System failure detected on router-01",
        "agent_time": alert_1.body["agent_time"], "custom_info": original_alert("alert-1", "router-01")["raw_json"],
    });
    assert_eq!(alert_1.body, want);
    assert!(alert_1.body["agent_time"].as_i64().is_some());
    let ingest_1 = accepted.iter().find(|a| a.body["external_id"] == "ingest-1").unwrap();
    assert_eq!(ingest_1.body["custom_info"]["program"], "kernel");
    assert_eq!(ingest_1.body["class"], "NETO");

    // The original's key went nowhere: not to the receiver, not into Redis, not into a log.
    for req in receiver.requests() {
        let raw = String::from_utf8_lossy(&req.raw);
        assert!(!raw.contains(ORIGINAL_KEY) && !raw.contains("api_key"), "{raw}");
        assert_eq!(req.headers.get("authorization").unwrap().to_str().unwrap(), format!("Bearer {MOOG_KEY}"));
    }
    assert!(!r.everything().await.contains(ORIGINAL_KEY), "the key is left in Redis");
    assert_eq!(r.int("LLEN", "mutt:dlq:alerter").await, 0, "nothing dead-lettered by the alerter");
    assert_eq!(r.int("LLEN", "mutt:dlq:moog").await, 0, "nothing dead-lettered by the forwarder");

    assert!(alerter.child.terminate(Duration::from_secs(15)).is_some_and(|s| s.success()));
    assert!(forwarder.child.terminate(Duration::from_secs(15)).is_some_and(|s| s.success()));
    for log in [alerter.log(), forwarder.log()] {
        assert!(!log.is_empty(), "the processes logged at debug level");
        assert!(!log.contains(ORIGINAL_KEY) && !log.contains(MOOG_KEY), "a key in a log:\n{log}");
    }
}
