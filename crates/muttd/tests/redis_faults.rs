//! The alerter and the forwarder (in one process, as `muttd run` with those roles) reach Redis,
//! or the alerter PostgreSQL, through a fault proxy (mutt_testkit::FaultProxy), while the test
//! pushes events and reads the results straight from Redis and PostgreSQL. Lost replies,
//! resets and delays lose and duplicate nothing; a Redis or PostgreSQL that goes silent makes
//! /health fail within the watchdog's stall timeout, and work resumes without a restart once
//! it answers again.

use mutt_queue::{QueueId, WorkerRole};
use mutt_testapp::{BackendKind, Site, TestBackend};
use mutt_testkit::receiver::alerts_in;
use mutt_testkit::{FaultMode, FaultProxy, WebhookReceiver};
use muttd::app::{self, App, Role, StartOptions};
use muttd::config::Config;
use muttd::secrets::EnvSecrets;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Both tests switch faults on a shared proxy and watch timings: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Rig {
    app: App,
    proxy: Arc<FaultProxy>,
    receiver: WebhookReceiver,
    site: Site,
    /// Straight to Redis and PostgreSQL: the test's own view.
    direct: TestBackend,
}

/// `redis://host:port/db` → (`host:port`, `/db`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("redis://");
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), String::new()),
    }
}

/// Which connection the proxy sits on.
#[derive(Clone, Copy, PartialEq)]
enum Between {
    Redis,
    Postgres,
}

/// `postgres://user@host:port/db` with `host:port` replaced: (the new URL, the old `host:port`).
fn via_proxy_pg(url: &str, proxy: &str) -> (String, String) {
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (hostport, path) = rest.split_once('/').unwrap();
    (format!("{scheme_user}@{proxy}/{path}"), hostport.to_owned())
}

async fn rig(stall_timeout_secs: u64) -> Rig {
    rig_between(stall_timeout_secs, Between::Redis).await
}

async fn rig_between(stall_timeout_secs: u64, between: Between) -> Rig {
    let receiver = WebhookReceiver::start().await;
    let site = Site::fresh(BackendKind::RedisPostgres).await;
    let (redis_target, db) = split_url(site.redis_url().unwrap());
    let (_, pg_target) = via_proxy_pg(site.database_url().unwrap(), "");
    let target = if between == Between::Redis { redis_target } else { pg_target };
    let proxy = Arc::new(FaultProxy::start(target).await.unwrap());
    let mut config = Config::default();
    config.redis.url = site.redis_url().map(str::to_owned);
    config.database.url = site.database_url().map(str::to_owned);
    match between {
        Between::Redis => config.redis.url = Some(format!("redis://{}{db}", proxy.addr())),
        Between::Postgres => {
            config.database.url = Some(via_proxy_pg(site.database_url().unwrap(), &proxy.addr().to_string()).0);
            // An audit write on a silent connection is given up after the statement timeout
            // plus 5 s, one pooled connection at a time: keep both small here.
            config.database.statement_timeout_secs = 2;
            config.database.pool_size = 2;
        }
    }
    config.redis.key_prefix = site.key_prefix().unwrap_or_default().to_owned();
    config.forwarder.webhook_url = Some(receiver.url());
    config.forwarder.rate_limit_enabled = false;
    config.alerter.port = 0;
    config.forwarder.port = 0;
    config.worker.block_timeout_secs = 0.2;
    config.worker.stall_timeout_secs = stall_timeout_secs;
    let secrets = EnvSecrets::new(HashMap::from([("MOOG_API_KEY".to_string(), "moog-key".to_string())]));
    let app = app::start(&config, &secrets, &[Role::Alerter, Role::Forwarder], StartOptions { migrate: true })
        .await
        .expect("alerter and forwarder start");
    let direct = site.open().await;
    // Thousands of alerts wait in the alert queue at times: no shedding here.
    direct.coordination.set_config_value("alerter_queue_shed_threshold", "1000000").await.unwrap();
    let rule = mutt_testapp::fixtures::rule("CRITICAL");
    direct.store.create_rule(&rule).await.unwrap();
    let metrics = mutt_alerter::AlerterMetrics::register(&mutt_service::Metrics::new());
    app.alerter_rules.as_ref().unwrap().reload(direct.store.as_ref(), &metrics).await.unwrap();
    Rig { app, proxy, receiver, site, direct }
}

impl Rig {
    /// Pushes `n` matching events with ids of their own; returns the ids.
    async fn push(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        let mut raw = Vec::with_capacity(n);
        for i in 0..n {
            let id = uuid::Uuid::now_v7().to_string();
            raw.push(
                json!({"hostname": format!("h{}", i % 40), "message": format!("CRITICAL {i}"),
                       "timestamp": "2025-11-08T12:00:00Z", "_event_id": id, "_correlation_id": format!("c{i}")})
                .to_string()
                .into_bytes(),
            );
            ids.push(id);
        }
        for chunk in raw.chunks(500) {
            self.direct.queue.push(QueueId::Ingest, chunk).await.unwrap();
        }
        ids
    }

    /// External ids of every alert the receiver accepted, duplicates included.
    fn delivered(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for req in self.receiver.accepted() {
            ids.extend(alerts_in(&req.body).iter().filter_map(|e| e["external_id"].as_str().map(str::to_owned)));
        }
        ids
    }

    /// (audit rows, distinct event ids) in PostgreSQL.
    async fn audited(&self) -> (i64, i64) {
        let (c, conn) =
            tokio_postgres::connect(self.site.database_url().unwrap(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = c.query_one("SELECT count(*), count(DISTINCT event_id) FROM event_audit_log", &[]).await.unwrap();
        (row.get(0), row.get(1))
    }

    /// Messages anywhere but where they end: queues, processing lists, delayed retries, DLQs.
    async fn in_flight(&self) -> u64 {
        let s = self.direct.queue.status().await.unwrap();
        let sum = |v: &[mutt_queue::NamedDepth]| v.iter().map(|d| d.depth).sum::<u64>();
        sum(&s.queues)
            + sum(&s.delayed_retries)
            + sum(&s.dead_letter_queues)
            + s.processing_lists.iter().map(|p| p.depth).sum::<u64>()
    }

    /// Lease tokens left by either role (a lease not settled nor handed back).
    async fn lease_tokens(&self) -> u64 {
        let client = redis::Client::open(self.site.redis_url().unwrap()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys = mutt_queue::redis::KeySpace::with_prefix(self.site.key_prefix().unwrap());
        let mut n = 0;
        for role in [WorkerRole::Alerter, WorkerRole::Forwarder] {
            let len: u64 =
                redis::cmd("HLEN").arg(format!("{}:leases", keys.workers(role))).query_async(&mut c).await.unwrap();
            n += len;
        }
        n
    }

    /// `/health` of a role: (status, body); a request that takes over 20 s fails the test.
    async fn health(&self, role: Role) -> (u16, Value) {
        let url = format!("http://{}/health", self.app.address(role).unwrap());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let r = client.get(url).send().await.expect("/health answers");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// The outcome of [`Rig::through_faults`].
struct FaultRun {
    ids: HashSet<String>,
    elapsed: Duration,
}

impl FaultRun {
    /// Prints the figures; returns the proxy's counts, the delivered ids and the duplicates.
    fn report(&self, rig: &Rig, between: &str) -> (mutt_testkit::ProxyCounts, Vec<String>, usize) {
        let counts = rig.proxy.counts();
        let delivered = rig.delivered();
        let duplicates = delivered.len() - delivered.iter().collect::<HashSet<_>>().len();
        println!(
            "{between}: {} events in {:?}; proxy: {} connections, {} replies dropped, {} resets; {} alerts delivered, {duplicates} duplicates",
            self.ids.len(),
            self.elapsed,
            counts.connections,
            counts.replies_dropped,
            counts.resets,
            delivered.len()
        );
        assert!(counts.replies_dropped > 0 && counts.resets > 0, "the faults happened: {counts:?}");
        (counts, delivered, duplicates)
    }
}

impl Rig {
    /// Pushes 3,000 events while the proxy switches between pass, lost replies, resets and
    /// delays every 40 ms, and 1,000 more each time those are done, for at least 8 s and until
    /// both a reply was lost and a connection reset (at most 60 s of faults); then waits,
    /// faults off, until every event is delivered and nothing is in flight.
    async fn through_faults(&self) -> FaultRun {
        let stop = tokio_util::sync::CancellationToken::new();
        let chaos = {
            let (stop, proxy) = (stop.clone(), self.proxy.clone());
            tokio::spawn(async move {
                let modes = [
                    FaultMode::Pass,
                    FaultMode::DropReplies,
                    FaultMode::Pass,
                    FaultMode::Reset,
                    FaultMode::Pass,
                    FaultMode::Delay(Duration::from_millis(40)),
                ];
                let mut i = 0;
                while !stop.is_cancelled() {
                    proxy.set_mode(modes[i % modes.len()]);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                proxy.set_mode(FaultMode::Pass);
            })
        };
        let t0 = Instant::now();
        let mut ids: HashSet<String> = self.push(3000).await.into_iter().collect();
        loop {
            let k = self.proxy.counts();
            let enough = k.replies_dropped > 0 && k.resets > 0 && t0.elapsed() > Duration::from_secs(8);
            if enough || t0.elapsed() > Duration::from_secs(60) {
                stop.cancel(); // the rest without faults
            }
            let delivered: HashSet<String> = self.delivered().into_iter().collect();
            if ids.iter().all(|id| delivered.contains(id)) && self.in_flight().await == 0 {
                if stop.is_cancelled() {
                    break;
                }
                ids.extend(self.push(1000).await);
            }
            assert!(t0.elapsed() < Duration::from_secs(240), "{} of {} delivered", delivered.len(), ids.len());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        chaos.await.unwrap();
        FaultRun { ids, elapsed: t0.elapsed() }
    }
}

fn stalled(body: &Value) -> bool {
    body["errors"].as_array().is_some_and(|e| e.iter().any(|e| e.as_str().is_some_and(|s| s.starts_with("worker:"))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_resets_and_delays_on_redis_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    let rig = rig(120).await;
    let run = rig.through_faults().await;
    let (counts, delivered, duplicates) = run.report(&rig, "redis");
    assert_eq!(rig.audited().await, (run.ids.len() as i64, run.ids.len() as i64), "every event audited exactly once");
    let unknown: Vec<_> = delivered.iter().filter(|id| !run.ids.contains(*id)).collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // A duplicate needs a delivery whose batch could then be neither recorded as delivered
    // nor settled (both replies lost or reset): the batch goes back and is sent again.
    assert!(duplicates <= (counts.replies_dropped + counts.resets) as usize * 100, "{duplicates} duplicates");
    assert_eq!(rig.in_flight().await, 0, "nothing queued, leased, delayed or dead-lettered");
    assert_eq!(rig.lease_tokens().await, 0, "no lease left open");
    rig.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_makes_health_fail_within_the_stall_timeout_and_work_resumes() {
    const STALL: Duration = Duration::from_secs(3);
    let _serial = SERIAL.lock().await;
    let rig = rig(STALL.as_secs()).await;
    let ids = rig.push(200).await;
    rig.receiver.wait_accepted(1, Duration::from_secs(20)).await;
    for role in [Role::Alerter, Role::Forwarder] {
        let (status, body) = rig.health(role).await;
        assert_eq!(status, 200, "{role:?}: {body}");
    }
    rig.proxy.set_mode(FaultMode::Blackhole);
    let t0 = Instant::now();
    let more = rig.push(300).await;
    // Each /health waits up to the check deadline (5 s) for the silent Redis, then reports.
    let limit = STALL + mutt_service::health::CHECK_TIMEOUT * 2 + Duration::from_secs(3);
    for role in [Role::Alerter, Role::Forwarder] {
        loop {
            let (status, body) = rig.health(role).await;
            if status == 503 && stalled(&body) {
                println!("{role:?}: 503 with a stalled worker after {:?}: {body}", t0.elapsed());
                break;
            }
            assert!(t0.elapsed() < limit, "{role:?} still {status} after {:?}: {body}", t0.elapsed());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Redis answers again: the roles reconnect by themselves and finish the work.
    rig.proxy.set_mode(FaultMode::Pass);
    let t0 = Instant::now();
    let all: HashSet<String> = ids.into_iter().chain(more).collect();
    loop {
        let delivered: HashSet<String> = rig.delivered().into_iter().collect();
        if all.iter().all(|id| delivered.contains(id)) && rig.in_flight().await == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{} of {} delivered after the blackhole",
            delivered.len(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for role in [Role::Alerter, Role::Forwarder] {
        let (status, body) = rig.health(role).await;
        assert_eq!(status, 200, "{role:?} healthy again: {body}");
    }
    println!("recovered {:?} after Redis answered again", t0.elapsed());
    assert_eq!(rig.audited().await, (500, 500));
    assert_eq!(rig.lease_tokens().await, 0);
    rig.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_resets_and_delays_on_postgres_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    let rig = rig_between(120, Between::Postgres).await;
    let run = rig.through_faults().await;
    let (_, _, duplicates) = run.report(&rig, "postgres");
    assert_eq!(rig.audited().await, (run.ids.len() as i64, run.ids.len() as i64), "every event audited exactly once");
    assert_eq!(duplicates, 0, "the forwarder never saw a fault");
    assert_eq!(rig.in_flight().await, 0);
    assert_eq!(rig.lease_tokens().await, 0);
    rig.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_postgres_makes_the_alerters_health_fail_within_the_stall_timeout() {
    const STALL: Duration = Duration::from_secs(3);
    let _serial = SERIAL.lock().await;
    let rig = rig_between(STALL.as_secs(), Between::Postgres).await;
    let ids = rig.push(100).await;
    rig.receiver.wait_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(rig.health(Role::Alerter).await.0, 200);
    rig.proxy.set_mode(FaultMode::Blackhole);
    let t0 = Instant::now();
    let more = rig.push(100).await;
    let limit = STALL + mutt_service::health::CHECK_TIMEOUT * 2 + Duration::from_secs(3);
    loop {
        let (status, body) = rig.health(Role::Alerter).await;
        if status == 503 && stalled(&body) {
            println!("alerter: 503 with a stalled worker after {:?}: {body}", t0.elapsed());
            break;
        }
        assert!(t0.elapsed() < limit, "still {status} after {:?}: {body}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rig.proxy.set_mode(FaultMode::Pass);
    let t0 = Instant::now();
    let all: HashSet<String> = ids.into_iter().chain(more).collect();
    loop {
        let delivered: HashSet<String> = rig.delivered().into_iter().collect();
        if all.iter().all(|id| delivered.contains(id)) && rig.in_flight().await == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{} of {} delivered after the blackhole",
            delivered.len(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("recovered {:?} after PostgreSQL answered again", t0.elapsed());
    assert_eq!(rig.audited().await, (200, 200));
    rig.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shed_path_through_redis_faults_sheds_or_audits_every_event_once() {
    const N: usize = 3000;
    let _serial = SERIAL.lock().await;
    let rig = rig(120).await;
    // Shed to the DLQ whenever more than 20 alerts wait: both paths run all the time.
    let c = &rig.direct.coordination;
    c.set_config_value("alerter_shed_mode", "dlq").await.unwrap();
    c.set_config_value("alerter_queue_shed_threshold", "20").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids = rig.push(N).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let chaos = {
        let (stop, proxy) = (stop.clone(), rig.proxy.clone());
        tokio::spawn(async move {
            let modes = [FaultMode::Pass, FaultMode::DropReplies, FaultMode::Pass, FaultMode::Reset];
            let mut i = 0;
            while !stop.is_cancelled() {
                proxy.set_mode(modes[i % modes.len()]);
                i += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            proxy.set_mode(FaultMode::Pass);
        })
    };
    let keys = mutt_queue::redis::KeySpace::with_prefix(rig.site.key_prefix().unwrap());
    let client = redis::Client::open(rig.site.redis_url().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t0 = Instant::now();
    let shed = loop {
        if t0.elapsed() > Duration::from_secs(25) {
            stop.cancel();
        }
        let dead: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(&keys.alerter_dlq).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        let (audited, _) = rig.audited().await;
        if dead.len() + audited as usize >= N && rig.in_flight().await == dead.len() as u64 {
            break dead;
        }
        assert!(t0.elapsed() < Duration::from_secs(240), "{} shed, {audited} audited of {N}", dead.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    chaos.await.unwrap();
    let counts = rig.proxy.counts();
    let shed_ids: Vec<String> = shed
        .iter()
        .map(|raw| {
            let v: Value = serde_json::from_slice(raw).unwrap();
            assert_eq!(v["_dlq_reason"], "shed");
            v["_event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let shed_set: HashSet<&String> = shed_ids.iter().collect();
    assert_eq!(shed_set.len(), shed_ids.len(), "no event shed twice");
    let (audited, distinct) = rig.audited().await;
    println!(
        "{N} events in {:?}: {} shed, {audited} audited; proxy: {} replies dropped, {} resets",
        t0.elapsed(),
        shed_ids.len(),
        counts.replies_dropped,
        counts.resets
    );
    assert!(!shed_ids.is_empty() && audited > 0, "both paths ran");
    assert_eq!(audited, distinct, "audited once each");
    assert_eq!(shed_ids.len() + audited as usize, N, "every event shed or audited, never both");
    assert!(shed_ids.iter().all(|id| ids.contains(id)));
    assert_eq!(rig.lease_tokens().await, 0, "no lease left open");
    rig.app.stop().await.unwrap();
}
