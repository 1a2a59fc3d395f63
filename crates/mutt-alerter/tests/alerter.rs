//! The alerter against real Redis and PostgreSQL, driven one batch at a time.

use mutt_alerter::{Alerter, AlerterConfig, AlerterError, AlerterMetrics, BatchOutcome};
use mutt_core::{MatchType, PodName};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, WorkerRole};
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{NewRule, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Setup {
    queue: RedisQueue,
    store: Arc<PgStore>,
    db_url: String,
}

async fn setup_with(db_url: String) -> Setup {
    let queue = RedisQueue::connect(&RedisConfig::single(
        mutt_testkit::redis_url(),
        KeySpace::with_prefix(&mutt_testkit::unique_prefix()),
    ))
    .await
    .unwrap();
    let store = Arc::new(PgStore::new(&PostgresConfig { url: db_url.clone(), password: None, pool_size: 4 }).unwrap());
    store.migrate().await.unwrap();
    store.create_rule(&rule("CRITICAL", 10, "Page_and_ticket", "Ticket_only", "NETO")).await.unwrap();
    store.create_rule(&rule("ERROR", 20, "Ticket_only", "Ignore", "NETO")).await.unwrap();
    store.set_device_team("noisy-host", "NetOps").await.unwrap();
    Setup { queue, store, db_url }
}

async fn setup() -> Setup {
    setup_with(mutt_testkit::fresh_database().await).await
}

fn rule(text: &str, priority: i32, prod: &str, dev: &str, team: &str) -> NewRule {
    NewRule {
        match_string: Some(text.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority,
        prod_handling: prod.into(),
        dev_handling: dev.into(),
        team_assignment: team.into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    }
}

fn event(host: &str, message: &str) -> Value {
    json!({"hostname": host, "message": message, "timestamp": "2025-11-08T12:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": "c-test"})
}

impl Setup {
    async fn alerter(&self, pod: &str) -> Alerter {
        let mut cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(pod).unwrap());
        cc.heartbeat_ttl = Duration::from_secs(3);
        cc.heartbeat_interval = Duration::from_secs(1);
        let config = AlerterConfig {
            block_timeout: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..AlerterConfig::default()
        };
        let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
        Alerter::start(
            Arc::new(self.queue.clone()),
            Arc::new(self.queue.clone()),
            self.store.clone(),
            cc,
            config,
            metrics,
        )
        .await
        .unwrap()
    }

    async fn push(&self, events: &[Value]) {
        let raw: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
        self.queue.push(QueueId::Ingest, &raw).await.unwrap();
    }

    async fn push_raw(&self, raw: &[&[u8]]) {
        let raw: Vec<Vec<u8>> = raw.iter().map(|r| r.to_vec()).collect();
        self.queue.push(QueueId::Ingest, &raw).await.unwrap();
    }

    async fn list(&self, key: &str) -> Vec<Value> {
        let mut c = self.queue.connection();
        let items: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut c).await.unwrap();
        items.iter().rev().map(|b| serde_json::from_slice(b).unwrap()).collect()
    }

    async fn set_config(&self, key: &str, value: &str) {
        let mut c = self.queue.connection();
        let _: () = redis::cmd("SET")
            .arg(format!("{}:{key}", self.queue.keys().config_prefix))
            .arg(value)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    async fn audit_count(&self) -> (i64, i64) {
        let (c, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = c.query_one("SELECT count(*), count(DISTINCT event_id) FROM event_audit_log", &[]).await.unwrap();
        (row.get(0), row.get(1))
    }
}

async fn drain(a: &mut Alerter) -> Vec<BatchOutcome> {
    let sd = CancellationToken::new();
    let mut out = Vec::new();
    loop {
        match a.process_one_batch(&sd).await.unwrap() {
            BatchOutcome::Empty => return out,
            o => out.push(o),
        }
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_alone_and_its_batch_mates_go_on() {
    let s = setup().await;
    let mut bad_ts = event("h1", "CRITICAL bad time");
    bad_ts["timestamp"] = json!("yesterday");
    s.push(&[event("h1", "CRITICAL one"), bad_ts]).await;
    s.push_raw(&[b"{not json", br#"{"hostname":"h","message":"","timestamp":"2025-11-08T12:00:00Z"}"#]).await;
    s.push(&[event("h2", "ERROR two")]).await;
    let mut a = s.alerter("poison").await;
    let outcomes = drain(&mut a).await;
    assert_eq!(
        outcomes,
        vec![BatchOutcome::Processed {
            events: 5,
            handled: 2,
            unhandled: 0,
            audited: 2,
            alerts: 2,
            dead_lettered: 3,
            retried: 0
        }]
    );
    let dlq = s.list(&s.queue.keys().alerter_dlq).await;
    let reasons: Vec<&str> = dlq.iter().map(|d| d["_dlq_reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, vec!["bad_timestamp", "invalid_event", "missing_field"]);
    assert!(dlq[0]["_dlq_error"].as_str().unwrap().contains("yesterday"));
    assert_eq!(dlq[1]["raw"], "{not json");
    assert_eq!(s.audit_count().await, (2, 2));
    let alerts = s.list(&s.queue.keys().alert_queue).await;
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.get("api_key").is_none()), "no secrets in alerts");
}

#[tokio::test]
async fn a_redelivered_event_is_audited_once() {
    let s = setup().await;
    let e = event("h1", "CRITICAL again");
    s.push(std::slice::from_ref(&e)).await;
    let mut a = s.alerter("redelivery").await;
    drain(&mut a).await;
    s.push(&[e.clone(), e]).await; // as a janitor would hand it back after a crash
    let outcomes = drain(&mut a).await;
    assert!(matches!(outcomes[0], BatchOutcome::Processed { audited: 0, .. }), "{outcomes:?}");
    assert_eq!(s.audit_count().await, (1, 1));
}

#[tokio::test]
async fn unhandled_meta_alert_fires_exactly_once_at_the_threshold() {
    let s = setup().await;
    s.set_config("unhandled_threshold", "3").await;
    s.set_config("unhandled_expiry_seconds", "600").await;
    let events: Vec<Value> = (0..7).map(|_| event("noisy-host", "fan tray ok")).collect();
    s.push(&events[..2]).await;
    let mut a = s.alerter("meta").await;
    drain(&mut a).await;
    assert!(s.list(&s.queue.keys().alert_queue).await.is_empty(), "2 < threshold");
    s.push(&events[2..]).await;
    drain(&mut a).await;
    let alerts = s.list(&s.queue.keys().alert_queue).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["hostname"], "MUTT_Alerter");
    assert_eq!(alerts[0]["team_assignment"], "NetOps", "team from device_teams");
    assert_eq!(
        alerts[0]["message_body"],
        "[MUTT] Detected 3 unhandled messages in 600s from 'noisy-host'. Sample message: fan tray ok"
    );
    assert_eq!(alerts[0]["raw_json"]["_event_id"], events[2]["_event_id"], "the third event triggered it");
    assert_eq!(s.audit_count().await, (0, 0), "unhandled events are not audited");
    // Another host counts separately and gets the default team.
    s.push(&(0..3).map(|_| event("quiet-host", "fan tray ok")).collect::<Vec<_>>()).await;
    drain(&mut a).await;
    let alerts = s.list(&s.queue.keys().alert_queue).await;
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1]["team_assignment"], "NETO");
}

#[tokio::test]
async fn backpressure_sheds_to_the_dlq_or_defers() {
    let s = setup().await;
    s.set_config("alerter_queue_shed_threshold", "2").await;
    s.queue.push(QueueId::Alert, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).await.unwrap();
    s.push(&[event("h", "CRITICAL 1"), event("h", "CRITICAL 2")]).await;
    let mut a = s.alerter("shed").await;
    let sd = CancellationToken::new();
    assert_eq!(a.process_one_batch(&sd).await.unwrap(), BatchOutcome::Shed(2));
    let dlq = s.list(&s.queue.keys().alerter_dlq).await;
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0]["_dlq_reason"], "shed");
    assert_eq!(dlq[0]["_dlq_error"], "queue_depth_exceeded:3>2");
    assert_eq!(dlq[0]["message"], "CRITICAL 1", "the event itself is kept for replay");

    let s = setup().await;
    s.set_config("alerter_queue_shed_threshold", "2").await;
    s.set_config("alerter_shed_mode", "defer").await;
    s.set_config("alerter_defer_sleep_ms", "10").await;
    s.queue.push(QueueId::Alert, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).await.unwrap();
    s.push(&[event("h", "CRITICAL 1")]).await;
    let mut a = s.alerter("defer").await;
    assert_eq!(a.process_one_batch(&sd).await.unwrap(), BatchOutcome::Deferred);
    assert_eq!(s.queue.depth(QueueId::Ingest).await.unwrap(), 1, "deferred, not shed");
    assert!(s.list(&s.queue.keys().alerter_dlq).await.is_empty());
}

#[tokio::test]
async fn first_rule_load_failure_refuses_to_start() {
    let queue = RedisQueue::connect(&RedisConfig::single(
        mutt_testkit::redis_url(),
        KeySpace::with_prefix(&mutt_testkit::unique_prefix()),
    ))
    .await
    .unwrap();
    let store = Arc::new(
        PgStore::new(&PostgresConfig { url: "postgres://mutt@127.0.0.1:1/x".into(), password: None, pool_size: 1 })
            .unwrap(),
    );
    let cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse("noload").unwrap());
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let r =
        Alerter::start(Arc::new(queue.clone()), Arc::new(queue), store, cc, AlerterConfig::default(), metrics).await;
    assert!(matches!(r, Err(AlerterError::InitialLoad(_))));
}

#[tokio::test]
async fn rule_tester_reports_handling_and_reasons() {
    let s = setup().await;
    let rules = mutt_core::RuleSet::compile(s.store.load_rules().await.unwrap());
    let e = mutt_core::Event::from_value(json!({"hostname": "r1", "message": "an ERROR happened"})).unwrap();
    let report = mutt_core::rule::tester::test_event(&rules, &e);
    assert!(report.matched_rule_id.is_some());
    assert_eq!(report.production.as_ref().unwrap().handling, "Ticket_only");
    assert!(report.production.unwrap().forwarded);
    assert!(!report.development.unwrap().forwarded);
    assert_eq!(report.not_matched.len(), 1);
    assert!(report.not_matched[0].reason.contains("CRITICAL"));
}

/// A rule created while the alerter runs (no reload requested, the timer far off) decides the
/// very next batch: the alerter checks the store's rules version before each batch.
#[tokio::test]
async fn a_rule_change_is_used_by_the_next_batch() {
    let s = setup().await;
    let mut a = s.alerter("rules-version").await;
    s.push(&[event("h1", "LINK-DOWN before")]).await;
    let before = drain(&mut a).await;
    assert!(matches!(before[..], [BatchOutcome::Processed { handled: 0, unhandled: 1, .. }]), "{before:?}");
    s.store.create_rule(&rule("LINK-DOWN", 5, "Page_and_ticket", "Ignore", "NetOps")).await.unwrap();
    s.push(&[event("h1", "LINK-DOWN after")]).await;
    let after = drain(&mut a).await;
    assert!(matches!(after[..], [BatchOutcome::Processed { handled: 1, alerts: 1, .. }]), "{after:?}");
    // A development host added from outside (psql) counts too.
    let (c, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.execute("INSERT INTO development_hosts (hostname) VALUES ('h1')", &[]).await.unwrap();
    s.push(&[event("h1", "LINK-DOWN on a dev host")]).await;
    let dev = drain(&mut a).await;
    assert!(matches!(dev[..], [BatchOutcome::Processed { handled: 1, alerts: 0, .. }]), "Ignore on dev: {dev:?}");
    assert_eq!(a.rules().current().len(), 3);
}

/// PostgreSQL stopped for 10 s mid-run, then started again: every event audited exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_mid_run_audits_every_event_exactly_once() {
    const N: usize = 3000;
    let mut pg = mutt_testkit::PostgresServer::start().expect("private PostgreSQL");
    let s = setup_with(pg.url()).await;
    // No forwarder drains the alert queue here: keep backpressure out of the way.
    s.set_config("alerter_queue_shed_threshold", "1000000").await;
    let events: Vec<Value> = (0..N).map(|i| event(&format!("host{}", i % 10), &format!("CRITICAL {i}"))).collect();
    for chunk in events.chunks(500) {
        s.push(chunk).await;
    }
    let mut a = s.alerter("pg-outage").await;
    let sd = CancellationToken::new();
    // Slow the alerter down a little so that the outage lands mid-run.
    let task = {
        let sd = sd.clone();
        tokio::spawn(async move {
            while !sd.is_cancelled() {
                match a.process_one_batch(&sd).await {
                    Ok(BatchOutcome::Empty) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(15)).await,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = s.queue.depth(QueueId::Ingest).await.unwrap();
    pg.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    pg.start_again().unwrap();
    assert!(before > 0 && (before as usize) < N, "the outage began mid-run ({before} of {N} left)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = s.queue.status().await.unwrap();
        let left = st.queues[0].depth + st.processing_lists.iter().map(|p| p.depth).sum::<u64>();
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sd.cancel();
    task.await.unwrap();
    let (rows, distinct) = s.audit_count().await;
    println!("{N} events, PostgreSQL down 10 s mid-run: {rows} audit rows, {distinct} distinct event ids");
    assert_eq!((rows, distinct), (N as i64, N as i64));
    assert_eq!(s.list(&s.queue.keys().alert_queue).await.len(), N, "one alert per event");
    assert!(s.list(&s.queue.keys().alerter_dlq).await.is_empty());
}

/// `cache_reload_interval` in dynamic configuration (1 s) replaces the static 300 s between
/// periodic rule reloads, read before each wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamic_cache_reload_interval_is_used() {
    let s = setup().await;
    s.set_config("cache_reload_interval", "1").await;
    let mut cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse("reload-interval").unwrap());
    cc.heartbeat_interval = Duration::from_secs(1);
    let config = AlerterConfig { block_timeout: Duration::from_millis(100), ..AlerterConfig::default() };
    assert_eq!(config.cache_reload_interval, Duration::from_secs(300), "the static interval");
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let q = Arc::new(s.queue.clone());
    let a = Alerter::start(q.clone(), q, s.store.clone(), cc, config, metrics.clone()).await.unwrap();
    assert_eq!(metrics.cache_reloads.get(), 1, "the first load");
    let sd = CancellationToken::new();
    let run = tokio::spawn(a.run(sd.clone()));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let reloads = metrics.cache_reloads.get();
    assert!((3..=5).contains(&reloads), "about one reload a second: {reloads}");
    sd.cancel();
    run.await.unwrap().unwrap();
}
