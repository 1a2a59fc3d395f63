//! Flap suppression with two alerters on one backend (both backends): a burst past a rule's
//! flap threshold sends exactly one first alert and, once the window closed, exactly one
//! summary; every event is audited (the held-back ones marked `flap_suppressed`); a burst
//! within the threshold goes out untouched and sends no summary. An alerter that dies or
//! stalls between claiming a closed window and acknowledging it loses no summary, and none
//! reaches the webhook twice.

mod common;

use common::Setup;
use mutt_alerter::metrics::{StatusLabel, SuppressedLabel};
use mutt_alerter::timings::PhaseLabel;
use mutt_alerter::{AlerterConfig, AlerterMetrics, Phase};
use mutt_core::{MatchType, RuleSet};
use mutt_forwarder::{Destination, ForwarderConfig, ForwarderMetrics, OutputFormat};
use mutt_queue::{FlapAck, QueueId, WorkerRole};
use mutt_store::NewRule;
use mutt_testapp::{BackendKind, TestBackend, both_backends};
use mutt_testkit::WebhookReceiver;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const WINDOW_SECS: i32 = 2;

fn flap_rule(threshold: i32) -> NewRule {
    NewRule {
        match_string: Some("LINK-DOWN".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 1,
        prod_handling: "Page_only".into(),
        dev_handling: "Ignore".into(),
        team_assignment: "NetOps".into(),
        is_active: true,
        flap_threshold: Some(threshold),
        flap_window_secs: Some(WINDOW_SECS),
    }
}

fn event(host: &str, n: usize) -> Value {
    json!({"hostname": host, "message": format!("LINK-DOWN Gi0/{n}"), "timestamp": "2026-12-01T10:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": format!("c-{host}-{n}")})
}

/// Two alerters running as in production (their loops and summary tasks), each on a
/// connection of its own where the backend allows it (the embedded file has one owner).
struct Pair {
    registries: [mutt_service::Metrics; 2],
    metrics: [AlerterMetrics; 2],
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pair {
    async fn start(s: &Setup) -> Self {
        let second = match s.site.kind() {
            BackendKind::RedisPostgres => s.site.open().await,
            BackendKind::Embedded => s.backend.clone(),
        };
        let shutdown = CancellationToken::new();
        let registries = [0, 1].map(|_| mutt_service::Metrics::new());
        let metrics = [0, 1].map(|n| AlerterMetrics::register(&registries[n]));
        let mut tasks = Vec::new();
        for (n, b) in [&s.backend, &second].into_iter().enumerate() {
            let a = start(b, &format!("flap{n}"), metrics[n].clone()).await;
            let sd = shutdown.clone();
            tasks.push(tokio::spawn(async move { a.run(sd).await.unwrap() }));
        }
        let pair = Pair { registries, metrics, shutdown, tasks };
        pair.wait_until_both_poll().await;
        pair
    }

    /// Until both loops have asked for work once: on a loaded machine the second one could
    /// still be starting while the first leased a whole burst alone.
    async fn wait_until_both_poll(&self) {
        let lease = PhaseLabel { phase: Phase::Lease.name() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metrics.iter().any(|m| m.batch_phase_seconds.get_or_create(&lease).get() == 0.0) {
            assert!(Instant::now() < deadline, "an alerter never polled its queue");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), t).await.unwrap().unwrap();
        }
    }

    fn suppressed(&self, rule_id: i32) -> u64 {
        let label = SuppressedLabel { rule_id: rule_id.to_string() };
        self.metrics.iter().map(|m| m.events_suppressed.get_or_create(&label).get()).sum()
    }

    /// Events each alerter handled.
    fn handled(&self) -> [u64; 2] {
        let label = StatusLabel { status: "handled" };
        [0, 1].map(|n| self.metrics[n].events_processed.get_or_create(&label).get())
    }

    fn summaries(&self) -> u64 {
        self.metrics.iter().map(|m| m.flap_summaries.get()).sum()
    }
}

async fn start(b: &TestBackend, pod: &str, metrics: AlerterMetrics) -> mutt_alerter::Alerter {
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, pod);
    // Small batches, so that both alerters take part in the burst.
    let config = AlerterConfig { batch_size: 4, block_timeout: Duration::from_millis(100), ..AlerterConfig::default() };
    mutt_alerter::Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics)
        .await
        .unwrap()
}

impl Setup {
    /// Every audit row as (hostname, forwarded_to_moog, flap_suppressed).
    async fn flap_audit(&self) -> Vec<(String, bool, bool)> {
        let sql = "SELECT hostname, forwarded_to_moog, flap_suppressed FROM event_audit_log ORDER BY hostname, id";
        self.site.rows(sql).await
    }

    /// Waits until `audited` rows are written and `alerts` alerts are queued (15 s at most),
    /// then returns the alerts.
    async fn wait_for(&self, audited: usize, alerts: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let queued = self.list(&self.keys().alert_queue).await;
            let rows = self.flap_audit().await.len();
            if (rows >= audited && queued.len() >= alerts) || Instant::now() > deadline {
                assert_eq!(rows, audited, "audit rows");
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn is_summary(a: &Value) -> bool {
    a["raw_json"]["flap_summary"] == json!(true)
}

async fn a_burst_sends_one_first_alert_and_one_summary(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let rule = s.backend.store.create_rule(&flap_rule(1)).await.unwrap();
    let pair = Pair::start(&s).await;
    let mut burst: Vec<Value> = (0..40).map(|n| event("router1", n)).collect();
    burst.push(event("router2", 0));
    s.push(&burst).await;

    // 41 audited; router1's first alert, router2's alert, then router1's summary.
    let alerts = s.wait_for(41, 3).await;
    // Long enough for a second summary or a stray alert to show up if there were one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alerts_after = s.list(&s.keys().alert_queue).await;
    assert_eq!(alerts_after.len(), alerts.len(), "nothing more after the summary: {alerts_after:#?}");
    assert_eq!(alerts.len(), 3, "{alerts:#?}");

    let (summaries, plain): (Vec<&Value>, Vec<&Value>) = alerts.iter().partition(|a| is_summary(a));
    let mut hosts: Vec<&str> = plain.iter().map(|a| a["hostname"].as_str().unwrap()).collect();
    hosts.sort();
    assert_eq!(hosts, ["router1", "router2"], "one first alert per host");
    assert_eq!(summaries.len(), 1, "one summary, for router1 only (router2 suppressed nothing)");
    let summary = summaries[0];
    assert_eq!(summary["message_body"], "LINK-DOWN on router1: 40 times in 2 s");
    assert_eq!(summary["hostname"], "router1");
    assert_eq!(summary["team_assignment"], "NetOps");
    assert_eq!(summary["rule_id"], rule);
    assert_eq!(summary["handling"], "Page_only");
    assert_eq!((&summary["raw_json"]["flap_count"], &summary["raw_json"]["flap_suppressed"]), (&json!(40), &json!(39)));
    assert_eq!(summary["raw_json"]["flap_window_secs"], 2);

    let audit = s.flap_audit().await;
    let router1: Vec<_> = audit.iter().filter(|(h, ..)| h == "router1").collect();
    assert_eq!(router1.len(), 40, "every event audited");
    assert_eq!(router1.iter().filter(|(_, fwd, sup)| *fwd && !*sup).count(), 1, "one forwarded");
    assert_eq!(router1.iter().filter(|(_, fwd, sup)| !*fwd && *sup).count(), 39, "the rest suppressed");
    assert!(audit.contains(&("router2".to_owned(), true, false)));
    assert_eq!(pair.suppressed(rule), 39);
    assert_eq!(pair.summaries(), 1);
    assert!(pair.handled().iter().all(|&n| n > 0), "both alerters took part: {:?}", pair.handled());
    let text: String = pair.registries.iter().map(|r| r.encode()).collect();
    assert!(text.contains(&format!("mutt_alerter_events_suppressed_total{{rule_id=\"{rule}\"}}")), "{text}");
    assert!(text.contains("mutt_alerter_flap_summaries_total"), "{text}");

    // The window closed: the next event opens a new one and is forwarded.
    s.push(&[event("router1", 99)]).await;
    let alerts = s.wait_for(42, 4).await;
    assert_eq!(alerts.last().unwrap()["message_body"], "LINK-DOWN Gi0/99");
    pair.stop().await;
}

async fn a_burst_within_the_threshold_is_forwarded_untouched(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let rule = s.backend.store.create_rule(&flap_rule(5)).await.unwrap();
    let pair = Pair::start(&s).await;
    s.push(&(0..5).map(|n| event("router1", n)).collect::<Vec<_>>()).await;
    let alerts = s.wait_for(5, 5).await;
    // Past the window's close and its claim: no summary for a window that held nothing back.
    tokio::time::sleep(Duration::from_millis(WINDOW_SECS as u64 * 1000 + 800)).await;
    let alerts_after = s.list(&s.keys().alert_queue).await;
    assert_eq!(alerts_after.len(), 5, "{alerts_after:#?}");
    assert!(!alerts.iter().any(is_summary));
    let mut messages: Vec<&str> = alerts.iter().map(|a| a["message_body"].as_str().unwrap()).collect();
    messages.sort();
    assert_eq!(messages, (0..5).map(|n| format!("LINK-DOWN Gi0/{n}")).collect::<Vec<_>>());
    assert!(s.flap_audit().await.iter().all(|(_, fwd, sup)| *fwd && !*sup), "all forwarded, none suppressed");
    assert_eq!((pair.suppressed(rule), pair.summaries()), (0, 0));
    pair.stop().await;
}

/// A forwarder to the test webhook receiver (the alert as JSON, one per request).
async fn forwarder(s: &Setup, receiver: &WebhookReceiver) -> (mutt_forwarder::Forwarder, ForwarderMetrics) {
    let config = ForwarderConfig {
        destination: Destination::Webhook(receiver.url()),
        format: OutputFormat::Generic,
        timeout: Duration::from_secs(2),
        block_timeout: Duration::from_millis(100),
        rate_limit: None,
        breaker: None,
        ..ForwarderConfig::default()
    };
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Forwarder, "f");
    let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
    let b = &s.backend;
    let f = mutt_forwarder::Forwarder::start(b.queue.clone(), b.coordination.clone(), cc, config, metrics.clone())
        .await
        .unwrap();
    (f, metrics)
}

impl Setup {
    /// Flap windows left in the backend (Redis: keys under `<prefix>flap:`; embedded: rows).
    async fn flap_windows_left(&self) -> usize {
        match self.site.kind() {
            BackendKind::RedisPostgres => {
                let client = redis::Client::open(self.site.redis_url().unwrap()).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let pattern = format!("{}flap:*", self.keys().prefix);
                let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut c).await.unwrap();
                keys.len()
            }
            BackendKind::Embedded => {
                let file = self.queue_file.clone().unwrap_or_else(|| self.site.data_file().unwrap());
                let db = mutt_sqlite::Database::open(file, Default::default()).unwrap();
                db.read(|c| c.query_row("SELECT count(*) FROM flap_window", [], |r| r.get::<_, i64>(0))).await.unwrap()
                    as usize
            }
        }
    }
}

/// What the claim's lease is for. Two bursts are counted and audited by real alerters, which
/// stop before their windows close; then a claimer takes both closed windows (a short lease)
/// and acknowledges neither in time: it died (router1) or stalled (router2). New alerters
/// claim both again once the lease expired and queue the summaries; the stalled claimer's late
/// acknowledgement, summary and all, queues nothing. The webhook gets each summary exactly
/// once, no window is left behind, and a copy of a delivered summary (same id: rule, host,
/// window end) queued by hand is dropped by the forwarder.
async fn a_summary_claimed_by_an_alerter_that_died_arrives_once(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let window = 4;
    let rule = s.backend.store.create_rule(&NewRule { flap_window_secs: Some(window), ..flap_rule(1) }).await.unwrap();
    let pair = Pair::start(&s).await;
    let burst: Vec<Value> = (0..4).flat_map(|n| [event("router1", n), event("router2", n)]).collect();
    s.push(&burst).await;
    assert_eq!(s.wait_for(8, 2).await.len(), 2, "one first alert per host");
    pair.stop().await;

    let coordination = &s.backend.coordination;
    let deadline = Instant::now() + Duration::from_secs(window as u64 + 5);
    let mut claimed = Vec::new();
    while claimed.len() < 2 && Instant::now() < deadline {
        claimed.extend(coordination.flap_claim_due(10, Duration::from_secs(1)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    claimed.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let hosts: Vec<(&str, u64)> = claimed.iter().map(|c| (c.hostname.as_str(), c.count)).collect();
    assert_eq!(hosts, [("router1", 4), ("router2", 4)]);
    let rules = RuleSet::compile(s.backend.store.load_rules().await.unwrap());
    let stalled = mutt_alerter::flap::summary_alert(&claimed[1], &rules).unwrap();

    let receiver = WebhookReceiver::start().await;
    let (f, forwarded) = forwarder(&s, &receiver).await;
    let shutdown = CancellationToken::new();
    let fwd = tokio::spawn(f.run(shutdown.clone()));
    let pair = Pair::start(&s).await;
    assert_eq!(receiver.wait_accepted(4, Duration::from_secs(15)).await.len(), 4, "two first alerts, two summaries");
    let late = FlapAck { claim: claimed[1].claim.clone(), summary: Some(stalled.to_json().into_bytes()) };
    assert_eq!(coordination.flap_ack(&[late]).await.unwrap(), 0, "the claim was taken over: nothing queued");
    // A copy of a delivered summary, as a claimer acknowledging twice would queue it.
    s.backend.queue.push(QueueId::Alert, &[stalled.to_json().into_bytes()]).await.unwrap();
    // Long enough for a copy, or a window claimed once more, to show up if there were one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while forwarded.duplicates.get() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let bodies: Vec<Value> = receiver.accepted().into_iter().map(|r| r.body).collect();
    let summaries: Vec<&Value> = bodies.iter().filter(|b| is_summary(b)).collect();
    let mut got: Vec<(&str, &str)> =
        summaries.iter().map(|b| (b["hostname"].as_str().unwrap(), b["message_body"].as_str().unwrap())).collect();
    got.sort();
    assert_eq!(
        got,
        [("router1", "LINK-DOWN on router1: 4 times in 4 s"), ("router2", "LINK-DOWN on router2: 4 times in 4 s")],
        "each summary exactly once: {bodies:#?}"
    );
    assert_eq!(bodies.len(), 4, "two first alerts, two summaries: {bodies:#?}");
    assert_eq!(forwarded.duplicates.get(), 1, "the hand-queued copy dropped as delivered");
    let router2 = summaries.iter().find(|b| b["hostname"] == "router2").unwrap();
    assert_eq!(router2["_event_id"], stalled.event_id.as_str(), "one id per window, whoever builds it");
    assert_eq!(router2["rule_id"], rule);
    assert_eq!(pair.summaries(), 2, "the new alerters queued both");
    pair.stop().await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), fwd).await.unwrap().unwrap();
    assert_eq!(s.flap_windows_left().await, 0, "every claim acknowledged");
    assert_eq!(s.flap_audit().await.len(), 8, "every event audited once");
}

both_backends!(
    a_burst_sends_one_first_alert_and_one_summary,
    a_burst_within_the_threshold_is_forwarded_untouched,
    a_summary_claimed_by_an_alerter_that_died_arrives_once
);
