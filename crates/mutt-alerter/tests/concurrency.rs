//! `alerter.concurrency`: several batch loops in one alerter, each a consumer of its own, on
//! both backends: every event audited and forwarded exactly once, the loops really lease
//! (each under its own pod name), and nothing is left leased or heart-beating after shutdown.

mod common;

use common::Setup;
use mutt_alerter::loops::loop_pod;
use mutt_alerter::metrics::StatusLabel;
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics};
use mutt_queue::{QueueId, WorkerRole};
use mutt_store::manage::EventAuditFilter;
use mutt_testapp::BackendKind;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 600;

mutt_testapp::both_backends!(three_loops_process_every_event_once);
mutt_testapp::both_backends!(loops_after_the_first_rest_without_a_backlog);

/// An alerter of three loops (batches of 10), its pod and its metrics.
async fn three_loops(s: &Setup) -> (Alerter, mutt_core::PodName, AlerterMetrics) {
    let config = AlerterConfig {
        batch_size: 10,
        block_timeout: Duration::from_millis(100),
        concurrency: 3,
        ..AlerterConfig::default()
    };
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, "a");
    let pod = cc.pod.clone();
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let b = &s.backend;
    let alerter = Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics.clone())
        .await
        .unwrap();
    (alerter, pod, metrics)
}

async fn three_loops_process_every_event_once(kind: BackendKind) {
    let s = Setup::new(kind).await;
    // Half the events match the rule (audited and forwarded), half match nothing (unhandled).
    let events: Vec<_> = (0..EVENTS)
        .map(|i| {
            let text = if i % 2 == 0 { format!("CRITICAL disk {i}") } else { format!("all fine {i}") };
            json!({"hostname": format!("h{}", i % 7), "message": text, "timestamp": "2025-11-08T12:00:00Z",
                   "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": "conc"})
        })
        .collect();
    s.push(&events).await;
    let (alerter, pod, metrics) = three_loops(&s).await;
    let timings = alerter.shared_timings();
    let sd = CancellationToken::new();
    let task = tokio::spawn(alerter.run(sd.clone()));

    // Each loop is a worker of its own, with its own heartbeat.
    let want: HashSet<String> = (0..3).map(|k| loop_pod(&pod, k).unwrap().to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut alive, mut most_leased) = (HashSet::new(), 0);
    loop {
        let status = s.backend.queue.status().await.unwrap();
        let mine = status.processing_lists.iter().filter(|p| p.role == "alerter" && want.contains(&p.pod));
        alive.extend(mine.clone().filter(|p| p.alive).map(|p| p.pod.clone()));
        most_leased = most_leased.max(mine.map(|p| p.depth).sum::<u64>());
        let count = |status| metrics.events_processed.get_or_create(&StatusLabel { status }).get();
        let done = count("handled") + count("unhandled");
        if done == EVENTS as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {EVENTS} events processed in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(alive, want, "three loops, three live workers");
    sd.cancel();
    task.await.unwrap().unwrap();

    // Each handled event audited once, each alert queued once.
    let audit = s
        .backend
        .store
        .search_event_audit(&EventAuditFilter { limit: 1000, ..EventAuditFilter::default() })
        .await
        .unwrap();
    let audited: HashSet<String> = audit.rows.iter().map(|r| r.event_id.clone()).collect();
    assert_eq!((audit.rows.len(), audited.len()), (EVENTS / 2, EVENTS / 2));
    let alerts = s.list(&s.keys().alert_queue).await;
    let alert_ids: HashSet<String> = alerts.iter().map(|a| a["_event_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!((alerts.len(), alert_ids), (EVENTS / 2, audited));
    assert_eq!(s.backend.queue.depth(QueueId::Ingest).await.unwrap(), 0);

    // The three loops all leased batches: the timings count every batch of every loop.
    let t = timings.snapshot();
    assert_eq!(t.events, EVENTS as u64);
    assert!(t.batches >= (EVENTS / 10) as u64, "{t:?}");
    let status = s.backend.queue.status().await.unwrap();
    let left: Vec<_> =
        status.processing_lists.iter().filter(|p| p.role == "alerter" && (p.depth > 0 || p.alive)).collect();
    assert!(left.is_empty(), "after shutdown no alerter loop holds a lease or a heartbeat: {left:?}");
    println!("{kind:?}: at most {most_leased} events leased at once by the three loops (batches of 10)");
}

/// An event that matches no rule (counted as unhandled, neither audited nor forwarded).
fn quiet_event(i: usize) -> serde_json::Value {
    json!({"hostname": "h1", "message": format!("all fine {i}"), "timestamp": "2025-11-08T12:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": "elastic"})
}

/// Waits up to 30 s for `cond`, sampling every millisecond; the greatest `mutt_alerter_active_loops`
/// seen meanwhile.
async fn until(metrics: &AlerterMetrics, what: &str, cond: impl Fn(&AlerterMetrics) -> bool) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut most = 0;
    while !cond(metrics) {
        most = most.max(metrics.active_loops.get());
        assert!(Instant::now() < deadline, "{what}: not within 30 s (active loops {})", metrics.active_loops.get());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    most.max(metrics.active_loops.get())
}

fn processed(m: &AlerterMetrics) -> u64 {
    m.events_processed.get_or_create(&StatusLabel { status: "unhandled" }).get()
}

/// Elastic loops: with a trickle (every lease one event, far below half the batch) only the
/// first loop leases; a backlog wakes the others; when it is gone they rest again.
async fn loops_after_the_first_rest_without_a_backlog(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let (alerter, _, metrics) = three_loops(&s).await;
    let sd = CancellationToken::new();
    let task = tokio::spawn(alerter.run(sd.clone()));

    // Idle: the loops after the first rest after their first (empty) lease.
    until(&metrics, "idle loops resting", |m| m.active_loops.get() == 1).await;

    // A trickle: one event at a time, each processed before the next.
    for i in 0..20 {
        s.push(&[quiet_event(i)]).await;
        let most = until(&metrics, "a trickled event processed", |m| processed(m) == i as u64 + 1).await;
        assert_eq!(most, 1, "a lease of one event (batches of 10) woke a resting loop");
    }

    // A backlog: leases come back full, so the others wake and share it.
    let backlog: Vec<_> = (20..620).map(quiet_event).collect();
    s.push(&backlog).await;
    let most = until(&metrics, "the backlog processed", |m| processed(m) == 620).await;
    assert_eq!(most, 3, "the backlog woke both resting loops");

    // Gone: they rest again (their next leases are empty or short).
    until(&metrics, "loops resting after the backlog", |m| m.active_loops.get() == 1).await;
    assert_eq!(s.backend.queue.depth(QueueId::Ingest).await.unwrap(), 0);
    sd.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(metrics.active_loops.get(), 0, "no loop counts as active after shutdown");
    assert_eq!(processed(&metrics), 620, "every event processed once");
}

#[test]
fn loop_pods_are_suffixed_after_the_first() {
    let pod = mutt_core::PodName::parse("alerter-7f9c").unwrap();
    assert_eq!(loop_pod(&pod, 0).unwrap(), pod);
    assert_eq!(loop_pod(&pod, 2).unwrap().as_ref(), "alerter-7f9c-2");
    let long = mutt_core::PodName::parse("p".repeat(200)).unwrap();
    assert!(loop_pod(&long, 1).is_err(), "a pod name too long for its suffix is refused, not cut");
}
