//! Audit writes that fail, on both backends: a row the database refuses (here a DBA's trigger)
//! costs its event a retry and, once `ALERTER_MAX_RETRIES` are spent, a place in the alerter
//! DLQ with the database's message, while its batch mates are audited; an outage (here a lock
//! held by another session past the alerter's lock or busy timeout) is waited for without
//! counting anything against the events.

mod common;

use common::Setup;
use mutt_alerter::{Alerter, AlerterConfig, BatchOutcome};
use mutt_queue::QueueId;
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_sqlite::{Database, DbOptions};
use mutt_store::sqlite::SqliteStore;
use mutt_testapp::{BackendKind, Site, TestBackend};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const QUARANTINED: &str = "quarantined-host";
const REFUSAL: &str = "quarantined by a DBA trigger";

fn event(host: &str, n: usize) -> Value {
    json!({"hostname": host, "message": format!("CRITICAL {n}"), "timestamp": "2025-11-08T12:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": format!("c-{n}")})
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

impl Setup {
    /// A site whose store gives up on a lock after 100 ms: PostgreSQL's `lock_timeout` for this
    /// test's database; the embedded store's busy timeout, with the queue in a file of its own
    /// so that a lock on the store's file holds up the audit write but not the lease.
    async fn split_embedded(kind: BackendKind) -> Self {
        let site = Site::fresh(kind).await;
        let (backend, queue_file) = match kind {
            BackendKind::RedisPostgres => {
                let c = pg_client(site.database_url().unwrap()).await;
                let name: String = c.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
                c.batch_execute(&format!("ALTER DATABASE \"{name}\" SET lock_timeout = '100ms'")).await.unwrap();
                (site.open().await, None)
            }
            BackendKind::Embedded => {
                let dir = site.data_dir().unwrap();
                let options = DbOptions { busy_timeout: Duration::from_millis(100), ..DbOptions::default() };
                let store = SqliteStore::new(Database::open(site.data_file().unwrap(), options).unwrap());
                store.migrate().await.unwrap();
                let queue_file = dir.join("queue.db");
                let queue_db = Database::open(&queue_file, DbOptions::default()).unwrap();
                let queue = SqliteQueue::open(queue_db, KeySpace::default()).await.unwrap();
                let backend = TestBackend {
                    kind,
                    queue: Arc::new(queue.clone()),
                    coordination: Arc::new(queue),
                    store: Arc::new(store),
                };
                (backend, Some(queue_file))
            }
        };
        backend.store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap();
        Setup { site, backend, queue_file }
    }

    async fn alerter(&self) -> Alerter {
        let config = AlerterConfig {
            block_timeout: Duration::from_millis(100),
            // Also the ceiling of the retry delays: keeps the test short.
            max_backoff: Duration::from_millis(200),
            max_retries: 3,
            ..AlerterConfig::default()
        };
        self.start_alerter(config).await
    }

    /// A DBA's trigger that refuses audit rows of one hostname.
    async fn install_refusing_trigger(&self) {
        match self.site.kind() {
            BackendKind::RedisPostgres => {
                let c = pg_client(self.site.database_url().unwrap()).await;
                c.batch_execute(&format!(
                    "CREATE FUNCTION refuse_quarantined() RETURNS trigger AS $$
                     BEGIN
                         IF NEW.hostname = '{QUARANTINED}' THEN
                             RAISE EXCEPTION '{REFUSAL}: %', NEW.hostname;
                         END IF;
                         RETURN NEW;
                     END $$ LANGUAGE plpgsql;
                     CREATE TRIGGER refuse_quarantined BEFORE INSERT ON event_audit_log
                         FOR EACH ROW EXECUTE FUNCTION refuse_quarantined();"
                ))
                .await
                .unwrap();
            }
            BackendKind::Embedded => {
                let cli = mutt_sqlite::rusqlite::Connection::open(self.site.data_file().unwrap()).unwrap();
                cli.execute_batch(&format!(
                    "CREATE TRIGGER refuse_quarantined BEFORE INSERT ON event_audit_log
                         WHEN NEW.hostname = '{QUARANTINED}'
                     BEGIN SELECT RAISE(ABORT, '{REFUSAL}: {QUARANTINED}'); END;"
                ))
                .unwrap();
            }
        }
    }

    /// Delayed retries not yet due.
    async fn delayed(&self) -> u64 {
        self.backend.queue.status().await.unwrap().delayed_retries.iter().map(|d| d.depth).sum()
    }

    /// (hostname, raw_message) of every audit row, by hostname.
    async fn audit_rows(&self) -> Vec<(String, Value)> {
        let sql = "SELECT hostname, raw_message FROM event_audit_log ORDER BY hostname";
        let rows: Vec<(String, String)> = match self.site.kind() {
            BackendKind::RedisPostgres => {
                let c = pg_client(self.site.database_url().unwrap()).await;
                c.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
            }
            BackendKind::Embedded => {
                let db = Database::open(self.site.data_file().unwrap(), DbOptions::default()).unwrap();
                db.read(move |c| c.prepare(sql)?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                    .await
                    .unwrap()
            }
        };
        rows.into_iter().map(|(h, raw)| (h, serde_json::from_str(&raw).unwrap())).collect()
    }
}

/// Sums of the batches' counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    handled: usize,
    audited: u64,
    alerts: usize,
    dead_lettered: usize,
    retried: usize,
}

impl Totals {
    fn add(&mut self, o: &BatchOutcome) {
        if let BatchOutcome::Processed { handled, audited, alerts, dead_lettered, retried, .. } = o {
            self.handled += handled;
            self.audited += audited;
            self.alerts += alerts;
            self.dead_lettered += dead_lettered;
            self.retried += retried;
        }
    }
}

/// Two events of the quarantined host among six others, in one batch: the six are audited and
/// alerted at once; the two are retried three times each (`_retry_count` 1, 2, 3), then
/// dead-lettered with the trigger's message.
async fn a_refused_row_is_retried_then_dead_lettered_and_its_batch_mates_audited(kind: BackendKind) {
    let s = Setup::new(kind).await;
    s.install_refusing_trigger().await;
    let mut a = s.alerter().await;
    let hosts = ["h0", QUARANTINED, "h2", "h3", "h4", QUARANTINED, "h6", "h7"];
    let events: Vec<Value> = hosts.iter().enumerate().map(|(n, h)| event(h, n)).collect();
    s.push(&events).await;

    let sd = CancellationToken::new();
    let first = a.process_one_batch(&sd).await.unwrap();
    assert_eq!(
        first,
        BatchOutcome::Processed {
            events: 8,
            handled: 6,
            unhandled: 0,
            audited: 6,
            alerts: 6,
            dead_lettered: 0,
            retried: 2
        }
    );
    let mut totals = Totals::default();
    totals.add(&first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while totals.dead_lettered < 2 {
        assert!(Instant::now() < deadline, "the retries did not end in the DLQ: {totals:?}");
        totals.add(&a.process_one_batch(&sd).await.unwrap());
    }
    assert_eq!(totals, Totals { handled: 6, audited: 6, alerts: 6, dead_lettered: 2, retried: 6 });

    let mut dlq = s.list(&s.keys().alerter_dlq).await;
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    // Retries due at the same moment may come back in either order.
    dlq.sort_by_key(|d| d["_correlation_id"].as_str().unwrap_or_default().to_owned());
    for (d, n) in dlq.iter().zip([1, 5]) {
        assert_eq!(d["hostname"], QUARANTINED);
        assert_eq!(d["_correlation_id"], format!("c-{n}"));
        assert_eq!(d["_event_id"], events[n]["_event_id"], "the same event, retried");
        assert_eq!(d["_retry_count"], 3, "ALERTER_MAX_RETRIES attempts after the first");
        assert_eq!(d["_dlq_reason"], "retries_exhausted");
        let error = d["_dlq_error"].as_str().unwrap();
        assert!(error.starts_with("audit write failed: "), "{error}");
        assert!(error.contains(&format!("{REFUSAL}: {QUARANTINED}")), "the database's message: {error}");
    }
    let audited = s.audit_rows().await;
    let audited_hosts: Vec<&str> = audited.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(audited_hosts, ["h0", "h2", "h3", "h4", "h6", "h7"], "each batch mate once");
    assert!(audited.iter().all(|(_, raw)| raw.get("_retry_count").is_none()));
    let alerts = s.list(&s.keys().alert_queue).await;
    assert_eq!(alerts.len(), 6);
    assert!(alerts.iter().all(|a| a["hostname"] != QUARANTINED));
    assert_eq!(s.backend.queue.depth(QueueId::Ingest).await.unwrap(), 0);
    assert_eq!(s.delayed().await, 0);
}

/// Another session holds a lock on the audit table past the alerter's timeout: every attempt
/// fails as an outage, so the batch stays leased and nothing is retried, dead-lettered or
/// alerted; once the lock goes, every event is audited and alerted once, with no retry count.
async fn a_locked_audit_table_is_waited_for_without_counting_retries(kind: BackendKind) {
    let s = Setup::split_embedded(kind).await;
    let mut a = s.alerter().await;
    let events: Vec<Value> = (0..3).map(|n| event(&format!("h{n}"), n)).collect();
    s.push(&events).await;

    // The lock, held by a session of the test's own database or data file.
    let pg = match kind {
        BackendKind::RedisPostgres => {
            let c = pg_client(s.site.database_url().unwrap()).await;
            c.batch_execute("BEGIN; LOCK TABLE event_audit_log IN ACCESS EXCLUSIVE MODE;").await.unwrap();
            Some(c)
        }
        BackendKind::Embedded => None,
    };
    let sqlite = match kind {
        BackendKind::Embedded => {
            let cli = mutt_sqlite::rusqlite::Connection::open(s.site.data_file().unwrap()).unwrap();
            cli.execute_batch("BEGIN IMMEDIATE").unwrap();
            Some(cli)
        }
        BackendKind::RedisPostgres => None,
    };

    let batch = tokio::spawn(async move {
        let out = a.process_one_batch(&CancellationToken::new()).await.unwrap();
        (a, out)
    });
    // Several timed-out attempts (100 ms each, backoff up to 200 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!batch.is_finished(), "the batch waits for the database");
    assert_eq!(s.backend.queue.depth(QueueId::Ingest).await.unwrap(), 0, "the batch stays leased");
    assert_eq!(s.delayed().await, 0, "no retry counted");
    assert!(s.list(&s.keys().alerter_dlq).await.is_empty());
    assert!(s.list(&s.keys().alert_queue).await.is_empty(), "no alert before its audit row");

    if let Some(c) = pg {
        c.batch_execute("ROLLBACK").await.unwrap();
    }
    if let Some(cli) = sqlite {
        cli.execute_batch("ROLLBACK").unwrap();
    }
    let (_a, out) =
        tokio::time::timeout(Duration::from_secs(10), batch).await.expect("done once the lock goes").unwrap();
    assert_eq!(
        out,
        BatchOutcome::Processed {
            events: 3,
            handled: 3,
            unhandled: 0,
            audited: 3,
            alerts: 3,
            dead_lettered: 0,
            retried: 0
        }
    );
    let audited = s.audit_rows().await;
    assert_eq!(audited.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), ["h0", "h1", "h2"]);
    assert!(audited.iter().all(|(_, raw)| raw.get("_retry_count").is_none()), "no retry counted");
    assert_eq!(s.list(&s.keys().alert_queue).await.len(), 3);
    assert!(s.list(&s.keys().alerter_dlq).await.is_empty());
}

mutt_testapp::both_backends!(
    a_refused_row_is_retried_then_dead_lettered_and_its_batch_mates_audited,
    a_locked_audit_table_is_waited_for_without_counting_retries,
);
