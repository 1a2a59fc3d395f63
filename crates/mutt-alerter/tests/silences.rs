//! Silences and maintenance windows in the alerter, on both backends, with a test clock:
//! matching alerts held back and only those, every event audited with `silenced_by`; start
//! and end on time; early expiry; a fresh alerter after a restart honours stored silences; a
//! weekly window across both daylight-saving changes.

mod common;

use chrono::{DateTime, Utc, Weekday};
use common::Setup;
use mutt_alerter::silence::Clock;
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome};
use mutt_core::silence::{Matcher, NewSilence, WeeklyWindow};
use mutt_queue::WorkerRole;
use mutt_testapp::{BackendKind, both_backends};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio_util::sync::CancellationToken;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A clock the test sets (milliseconds since the epoch).
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(s: &str) -> Self {
        Self(Arc::new(AtomicI64::new(t(s).timestamp_millis())))
    }

    fn set(&self, s: &str) {
        self.0.store(t(s).timestamp_millis(), Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let ms = self.0.clone();
        Arc::new(move || DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst)).unwrap_or_default())
    }
}

fn event(host: &str) -> Value {
    json!({"hostname": host, "message": "CRITICAL: link down", "timestamp": "2026-11-08T12:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": format!("c-{host}")})
}

fn silence(host: &str, start: &str, end: Option<&str>, window: Option<WeeklyWindow>) -> NewSilence {
    NewSilence {
        matcher: Matcher { host: Some(host.into()), ..Default::default() },
        starts_at: t(start),
        ends_at: end.map(t),
        window,
        created_by: "ops".into(),
        comment: "core router upgrade".into(),
    }
}

impl Setup {
    async fn alerter_at(&self, clock: &TestClock, metrics: AlerterMetrics) -> Alerter {
        let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, "s");
        let config = AlerterConfig { block_timeout: std::time::Duration::from_millis(100), ..AlerterConfig::default() };
        let b = &self.backend;
        Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics)
            .await
            .unwrap()
            .with_silence_clock(clock.clock())
            .await
    }

    /// Pushes one event per host, runs the alerter over them and returns the hosts of the
    /// alerts that came out (the alert queue is emptied).
    async fn run_hosts(&self, a: &mut Alerter, hosts: &[&str]) -> Vec<String> {
        let before = self.list(&self.keys().alert_queue).await.len();
        self.push(&hosts.iter().map(|h| event(h)).collect::<Vec<_>>()).await;
        let sd = CancellationToken::new();
        let mut seen = 0;
        while seen < hosts.len() {
            match a.process_one_batch(&sd).await.unwrap() {
                BatchOutcome::Processed { events, .. } => seen += events,
                BatchOutcome::Empty => panic!("events went missing"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let alerts = self.list(&self.keys().alert_queue).await;
        let mut hosts: Vec<String> =
            alerts[before..].iter().map(|a| a["hostname"].as_str().unwrap_or_default().to_owned()).collect();
        hosts.sort();
        hosts
    }

    /// Every audit row as (hostname, silenced_by, forwarded_to_moog), by hostname.
    async fn audit(&self) -> Vec<(String, Option<i64>, bool)> {
        let sql = "SELECT hostname, silenced_by, forwarded_to_moog FROM event_audit_log ORDER BY hostname, id";
        self.site.rows(sql).await
    }
}

fn silenced(metrics: &AlerterMetrics, rule_id: i32) -> u64 {
    metrics.silences.events_silenced.get_or_create(&mutt_alerter::silence::RuleLabel { rule_id }).get()
}

async fn a_silence_holds_back_matching_alerts_only(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let id = s
        .backend
        .store
        .create_silence(&silence("CORE-*", "2026-12-01T10:00:00Z", Some("2026-12-01T11:00:00Z"), None))
        .await
        .unwrap();
    let clock = TestClock::at("2026-12-01T10:30:00Z");
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let mut a = s.alerter_at(&clock, metrics.clone()).await;
    let out = s.run_hosts(&mut a, &["core-1", "edge-1", "core-2", "edge-2"]).await;
    assert_eq!(out, ["edge-1", "edge-2"], "only the unsilenced hosts' alerts go out");
    assert_eq!(
        s.audit().await,
        [
            ("core-1".to_owned(), Some(id), false),
            ("core-2".to_owned(), Some(id), false),
            ("edge-1".to_owned(), None, true),
            ("edge-2".to_owned(), None, true),
        ],
        "every event audited; the silenced ones name the silence"
    );
    let rule_id = s.backend.store.list_rules().await.unwrap()[0].id;
    assert_eq!(silenced(&metrics, rule_id), 2);
    assert_eq!(metrics.silences.active.get(), 1);
}

async fn a_silence_starts_and_ends_on_time(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let store = &s.backend.store;
    store.create_silence(&silence("core-1", "2026-12-01T10:00:00Z", Some("2026-12-01T11:00:00Z"), None)).await.unwrap();
    let clock = TestClock::at("2026-12-01T09:59:59.999Z");
    let mut a = s.alerter_at(&clock, AlerterMetrics::register(&mutt_service::Metrics::new())).await;
    assert_eq!(s.run_hosts(&mut a, &["core-1"]).await, ["core-1"], "not yet started");
    clock.set("2026-12-01T10:00:00Z");
    assert!(s.run_hosts(&mut a, &["core-1"]).await.is_empty(), "started at its start time");
    clock.set("2026-12-01T10:59:59.999Z");
    assert!(s.run_hosts(&mut a, &["core-1"]).await.is_empty());
    clock.set("2026-12-01T11:00:00Z");
    assert_eq!(s.run_hosts(&mut a, &["core-1"]).await, ["core-1"], "ended at its end time");
    let audit = s.audit().await;
    assert_eq!(audit.len(), 4, "every event audited");
    assert_eq!(audit.iter().filter(|r| r.1.is_some()).count(), 2);
}

async fn an_early_expiry_is_picked_up_at_the_next_refresh(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let store = &s.backend.store;
    let id = store
        .create_silence(&silence("core-1", "2026-12-01T10:00:00Z", Some("2026-12-01T18:00:00Z"), None))
        .await
        .unwrap();
    let clock = TestClock::at("2026-12-01T10:30:00Z");
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let mut a = s.alerter_at(&clock, metrics.clone()).await;
    assert!(s.run_hosts(&mut a, &["core-1"]).await.is_empty());
    store.expire_silence(id, "alice", t("2026-12-01T10:31:00Z")).await.unwrap();
    clock.set("2026-12-01T10:32:00Z");
    a.silences().reload(store.as_ref()).await;
    assert_eq!(metrics.silences.active.get(), 0);
    assert_eq!(s.run_hosts(&mut a, &["core-1"]).await, ["core-1"]);
    // A silence created while the alerter runs applies after a refresh, too.
    let later = store
        .create_silence(&silence("core-1", "2026-12-01T10:00:00Z", Some("2026-12-01T18:00:00Z"), None))
        .await
        .unwrap();
    a.silences().reload(store.as_ref()).await;
    assert!(s.run_hosts(&mut a, &["core-1"]).await.is_empty());
    assert_eq!(s.audit().await.last().unwrap().1, Some(later));
}

async fn a_fresh_alerter_after_a_restart_honours_stored_silences(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let id = s
        .backend
        .store
        .create_silence(&silence("core-1", "2026-12-01T10:00:00Z", Some("2026-12-01T18:00:00Z"), None))
        .await
        .unwrap();
    // A new process: the site's handles closed, the site opened again, a new alerter over it.
    let Setup { site, backend, .. } = s;
    drop(backend);
    let reopened = Setup { backend: site.open().await, site, queue_file: None };
    let clock = TestClock::at("2026-12-01T12:00:00Z");
    let mut a = reopened.alerter_at(&clock, AlerterMetrics::register(&mutt_service::Metrics::new())).await;
    assert_eq!(reopened.run_hosts(&mut a, &["core-1", "edge-1"]).await, ["edge-1"]);
    assert_eq!(reopened.audit().await[0], ("core-1".to_owned(), Some(id), false));
}

async fn a_maintenance_window_across_daylight_saving_changes(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let window = WeeklyWindow {
        days: vec![Weekday::Sun],
        start: "02:00".into(),
        duration_minutes: 120,
        time_zone: "Europe/Berlin".into(),
    };
    s.backend.store.create_silence(&silence("core-*", "2027-03-01T00:00:00Z", None, Some(window))).await.unwrap();
    let clock = TestClock::at("2027-03-28T00:59:59Z");
    let mut a = s.alerter_at(&clock, AlerterMetrics::register(&mutt_service::Metrics::new())).await;
    // Spring forward, 2027-03-28: local 02:00–03:00 does not exist; 03:00–04:00 CEST is one real hour.
    let cases = [
        ("2027-03-28T00:59:59Z", false), // 01:59:59 CET
        ("2027-03-28T01:00:00Z", true),  // 03:00 CEST
        ("2027-03-28T01:59:59Z", true),  // 03:59:59 CEST
        ("2027-03-28T02:00:00Z", false), // 04:00 CEST
        // Fall back, 2027-10-31: local 02:00–03:00 happens twice; three real hours.
        ("2027-10-30T23:59:59Z", false), // 01:59:59 CEST
        ("2027-10-31T00:00:00Z", true),  // 02:00 CEST
        ("2027-10-31T01:30:00Z", true),  // 02:30 CET, the second time
        ("2027-10-31T02:59:59Z", true),  // 03:59:59 CET
        ("2027-10-31T03:00:00Z", false), // 04:00 CET
    ];
    for (at, in_window) in cases {
        clock.set(at);
        let out = s.run_hosts(&mut a, &["core-1", "edge-1"]).await;
        let want: &[&str] = if in_window { &["edge-1"] } else { &["core-1", "edge-1"] };
        assert_eq!(out, want, "at {at}");
    }
    let audit = s.audit().await;
    assert_eq!(audit.len(), 2 * cases.len(), "every event audited");
    let held = audit.iter().filter(|r| r.1.is_some()).count();
    assert_eq!(held, cases.iter().filter(|c| c.1).count());
}

/// A running alerter (its own refresher, the wall clock) takes up a silence created while it
/// runs: at once on Redis (the announcement), within the 5 s refresh embedded.
async fn a_running_alerter_takes_up_a_new_silence(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, "r");
    let config = AlerterConfig { block_timeout: std::time::Duration::from_millis(100), ..AlerterConfig::default() };
    let b = &s.backend;
    let a = Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics.clone())
        .await
        .unwrap();
    let sd = CancellationToken::new();
    let task = tokio::spawn(a.run(sd.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // the watcher subscribes
    let now = chrono::Utc::now();
    let id = b
        .store
        .create_silence(&NewSilence {
            starts_at: now - chrono::Duration::minutes(1),
            ends_at: Some(now + chrono::Duration::hours(1)),
            ..silence("core-1", "2026-01-01T00:00:00Z", None, None)
        })
        .await
        .unwrap();
    b.coordination.publish_rules_changed().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while metrics.silences.active.get() != 1 {
        assert!(std::time::Instant::now() < deadline, "the silence was not taken up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.push(&[event("core-1"), event("edge-1")]).await;
    while s.audit().await.len() < 2 {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(5), "events not audited");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sd.cancel();
    task.await.unwrap().unwrap();
    let alerts = s.list(&s.keys().alert_queue).await;
    assert_eq!(alerts.iter().map(|a| a["hostname"].as_str().unwrap()).collect::<Vec<_>>(), ["edge-1"]);
    assert_eq!(s.audit().await[0], ("core-1".to_owned(), Some(id), false));
}

both_backends!(
    a_running_alerter_takes_up_a_new_silence,
    a_silence_holds_back_matching_alerts_only,
    a_silence_starts_and_ends_on_time,
    an_early_expiry_is_picked_up_at_the_next_refresh,
    a_fresh_alerter_after_a_restart_honours_stored_silences,
    a_maintenance_window_across_daylight_saving_changes,
);
