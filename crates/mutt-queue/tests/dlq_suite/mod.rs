//! The dead-letter toolbox's tests, run on every backend: each function takes a fresh, empty
//! queue. `dlq_tests!()` makes one `#[tokio::test]` per function on the including file's
//! `async fn backend() -> (Arc<dyn Backend>, impl Sized)`.
//!
//! Entries are dead-lettered the way the workers do it (a consumer's settle), or pushed in
//! the original MUTT's bare form; every test counts every message.

macro_rules! dlq_tests {
    () => {
        dlq_tests! { @go
            list_counts_depth_reasons_and_oldest_age,
            show_filters_and_pages_from_either_end,
            replay_one_by_filter_and_all_counts_every_message,
            dry_runs_change_nothing,
            park_then_replay_from_dead_goes_back_home,
            purge_by_filter_and_trim_by_age,
            concurrent_replays_never_move_an_entry_twice,
            export_writes_one_json_line_per_entry,
            unreadable_entries_are_not_replayed }
    };
    (@go $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (queue, _keep) = backend().await;
                dlq_suite::$name(queue).await;
            }
        )*
    };
}

use chrono::{Duration as Days, Utc};
use mutt_core::PodName;
use mutt_queue::dlq::{self, DeadLetterStore, Dlq, End, Selection};
use mutt_queue::{Backend, ConsumerConfig, QueueId, Settlement, WorkerRole};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn no_progress(_: u64, _: u64) {}

/// Event `n` on host `h<n % 5>`.
fn event(n: usize) -> Vec<u8> {
    json!({"n": n, "hostname": format!("h{}", n % 5), "message": format!("m{n}")}).to_string().into_bytes()
}

/// Dead-letters `bodies` through a worker of `role` (push, lease, settle), with `reason(i)`.
async fn dead_letter(
    q: &Arc<dyn Backend>,
    role: WorkerRole,
    bodies: &[Vec<u8>],
    reason: impl Fn(usize) -> &'static str,
) {
    q.push(role.source(), bodies).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(role, PodName::random("dlqtest"))).await.unwrap();
    let mut done = 0;
    while done < bodies.len() {
        let lease = c.lease(1000, Duration::from_secs(2)).await.unwrap().expect("the pushed messages");
        let mut s = Settlement::new();
        for raw in &lease.messages {
            s.dead_letter(raw, reason(n_of(raw) as usize), "boom");
        }
        c.settle(&lease, &s).await.unwrap();
        done += lease.len();
    }
    c.shutdown().await.unwrap();
}

fn json_of(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap()
}

fn n_of(raw: &[u8]) -> u64 {
    json_of(raw)["n"].as_u64().unwrap()
}

/// Takes everything from a work queue (as its worker would) and returns the messages.
async fn drain(q: &Arc<dyn Backend>, queue: QueueId) -> Vec<Value> {
    let role = if queue == QueueId::Ingest { WorkerRole::Alerter } else { WorkerRole::Forwarder };
    let mut c = q.consumer(ConsumerConfig::new(role, PodName::random("drain"))).await.unwrap();
    let mut out = Vec::new();
    while let Some(lease) = c.lease(1000, Duration::from_millis(300)).await.unwrap() {
        out.extend(lease.messages.iter().map(|m| json_of(m)));
        c.settle(&lease, &Settlement::new()).await.unwrap();
    }
    c.shutdown().await.unwrap();
    out
}

fn ns(messages: &[Value]) -> Vec<u64> {
    let mut v: Vec<u64> = messages.iter().map(|m| m["n"].as_u64().unwrap()).collect();
    v.sort();
    v
}

fn shed_or_spent(n: usize) -> &'static str {
    if n % 10 < 4 { "shed" } else { "retries_exhausted" }
}

pub async fn list_counts_depth_reasons_and_oldest_age(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let events: Vec<Vec<u8>> = (0..10).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    // An entry of the original's form, dated by its event timestamp 40 days ago.
    let old =
        json!({"n": 99, "hostname": "old", "timestamp": (Utc::now() - Days::days(40)).to_rfc3339(), "_retry_count": 4});
    store.dlq_push(Dlq::Alerter, &[old.to_string().into_bytes()]).await.unwrap();
    let list = dlq::list(store.as_ref()).await.unwrap();
    assert_eq!(list.len(), 3);
    let alerter = &list[0];
    assert_eq!((alerter.dlq, alerter.depth), (Dlq::Alerter, 11));
    assert!(alerter.name.ends_with("dlq:alerter"), "{}", alerter.name);
    assert_eq!(alerter.reasons.get("shed"), Some(&4));
    assert_eq!(alerter.reasons.get("retries_exhausted"), Some(&7));
    let age = alerter.oldest_age_secs.unwrap();
    assert!((40 * 86_400 - 5..=40 * 86_400 + 5).contains(&age), "{age}");
    assert_eq!((list[1].dlq, list[1].depth, list[2].dlq, list[2].depth), (Dlq::Moog, 0, Dlq::Dead, 0));
    assert!(list[2].name.ends_with("dlq:dead"), "{}", list[2].name);
}

pub async fn show_filters_and_pages_from_either_end(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let events: Vec<Vec<u8>> = (0..10).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    let s = store.as_ref();
    let oldest = dlq::show(s, Dlq::Alerter, &Selection::all(), End::Oldest, 0, 3).await.unwrap();
    let got: Vec<u64> = oldest.entries.iter().map(|e| e.message["n"].as_u64().unwrap()).collect();
    assert_eq!((got, oldest.more, oldest.depth), (vec![0, 1, 2], true, 10));
    let newest = dlq::show(s, Dlq::Alerter, &Selection::all(), End::Newest, 0, 2).await.unwrap();
    let got: Vec<u64> = newest.entries.iter().map(|e| e.message["n"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![9, 8]);
    let e = &oldest.entries[0].info;
    assert_eq!(
        (e.reason.as_deref(), e.error.as_deref(), e.hostname.as_deref()),
        (Some("shed"), Some("boom"), Some("h0"))
    );
    assert!(e.failed_at.is_some() && e.age_secs.unwrap() < 60);
    let shed = Selection { reason: Some("shed".into()), ..Selection::default() };
    let p1 = dlq::show(s, Dlq::Alerter, &shed, End::Oldest, 0, 3).await.unwrap();
    let p2 = dlq::show(s, Dlq::Alerter, &shed, End::Oldest, 3, 3).await.unwrap();
    assert_eq!((p1.entries.len(), p1.more, p2.entries.len(), p2.more), (3, true, 1, false));
    let host = Selection { host: Some("H1".into()), ..Selection::default() };
    let h = dlq::show(s, Dlq::Alerter, &host, End::Oldest, 0, 100).await.unwrap();
    assert_eq!(h.entries.iter().map(|e| e.message["n"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 6]);
    let by_id = Selection::id(&h.entries[1].info.id[..8]);
    let one = dlq::show(s, Dlq::Alerter, &by_id, End::Oldest, 0, 100).await.unwrap();
    assert_eq!(one.entries.len(), 1);
    assert_eq!(one.entries[0].message["n"], 6);
    let older = Selection { older_than_secs: Some(3600), ..Selection::default() };
    assert!(dlq::show(s, Dlq::Alerter, &older, End::Oldest, 0, 100).await.unwrap().entries.is_empty());
}

pub async fn replay_one_by_filter_and_all_counts_every_message(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let s = store.as_ref();
    let events: Vec<Vec<u8>> = (0..10).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    let page = dlq::show(s, Dlq::Alerter, &Selection::all(), End::Oldest, 5, 1).await.unwrap();
    let one = dlq::replay(s, Dlq::Alerter, &Selection::id(page.entries[0].info.id.clone()), false, &no_progress)
        .await
        .unwrap();
    assert_eq!((one.total(), one.gone, one.ids.len()), (1, 0, 1));
    assert_eq!(one.moved.keys().next().map(|k| k.ends_with("ingest_queue")), Some(true), "{:?}", one.moved);
    assert_eq!((q.depth(QueueId::Ingest).await.unwrap(), s.dlq_depth(Dlq::Alerter).await.unwrap()), (1, 9));
    let shed = Selection { reason: Some("shed".into()), ..Selection::default() };
    assert_eq!(dlq::replay(s, Dlq::Alerter, &shed, false, &no_progress).await.unwrap().total(), 4);
    let limited = Selection { limit: Some(2), ..Selection::default() };
    assert_eq!(dlq::replay(s, Dlq::Alerter, &limited, false, &no_progress).await.unwrap().total(), 2);
    let seen = std::sync::Mutex::new(Vec::new());
    let rest = dlq::replay(s, Dlq::Alerter, &Selection::all(), false, &|d, t| seen.lock().unwrap().push((d, t)))
        .await
        .unwrap();
    assert_eq!((rest.total(), rest.examined), (3, 3));
    assert_eq!(seen.lock().unwrap().last(), Some(&(3, 3)), "progress reaches its total");
    assert_eq!(s.dlq_depth(Dlq::Alerter).await.unwrap(), 0);
    let replayed = drain(&q, QueueId::Ingest).await;
    assert_eq!(ns(&replayed), (0..10).collect::<Vec<u64>>(), "each event exactly once");
    for m in &replayed {
        let fields: BTreeSet<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, BTreeSet::from(["n", "hostname", "message", "_replay_count"]), "{m}");
        assert_eq!(m["_replay_count"], 1);
    }
}

pub async fn dry_runs_change_nothing(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let s = store.as_ref();
    let events: Vec<Vec<u8>> = (0..10).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    let old = json!({"n": 50, "hostname": "x", "failed_at": (Utc::now() - Days::days(31)).to_rfc3339()});
    store.dlq_push(Dlq::Dead, &[old.to_string().into_bytes()]).await.unwrap();
    let before = dlq::list(s).await.unwrap();
    let r = dlq::replay(s, Dlq::Alerter, &Selection::all(), true, &no_progress).await.unwrap();
    assert_eq!((r.total(), r.dry_run, r.ids.len()), (10, true, 10));
    let p = dlq::park(
        s,
        Dlq::Alerter,
        &Selection { reason: Some("shed".into()), ..Default::default() },
        "manual",
        true,
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(p.total(), 4);
    assert_eq!(dlq::purge(s, Dlq::Alerter, &Selection::all(), true, &no_progress).await.unwrap().total(), 10);
    let t = dlq::trim(s, 30, true, &no_progress).await.unwrap();
    assert_eq!(t.iter().map(|r| r.total()).collect::<Vec<_>>(), vec![0, 0, 1]);
    assert_eq!(dlq::list(s).await.unwrap(), before, "nothing changed");
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

pub async fn park_then_replay_from_dead_goes_back_home(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let s = store.as_ref();
    let alerts: Vec<Vec<u8>> = (0..4)
        .map(|n| {
            json!({"n": n, "hostname": "a", "message_body": "x", "raw_json": {}, "_moog_retry_count": 6})
                .to_string()
                .into_bytes()
        })
        .collect();
    dead_letter(&q, WorkerRole::Forwarder, &alerts, |_| "retries_exhausted").await;
    let events: Vec<Vec<u8>> = (10..13).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, |_| "retries_exhausted").await;
    assert_eq!(dlq::park(s, Dlq::Moog, &Selection::all(), "manual", false, &no_progress).await.unwrap().total(), 4);
    assert_eq!(dlq::park(s, Dlq::Alerter, &Selection::all(), "manual", false, &no_progress).await.unwrap().total(), 3);
    assert!(dlq::park(s, Dlq::Dead, &Selection::all(), "manual", false, &no_progress).await.is_err());
    let depths = |l: Vec<dlq::DlqSummary>| l.iter().map(|d| d.depth).collect::<Vec<_>>();
    assert_eq!(depths(dlq::list(s).await.unwrap()), vec![0, 0, 7]);
    let dead = dlq::show(s, Dlq::Dead, &Selection::all(), End::Oldest, 0, 100).await.unwrap();
    assert_eq!(dead.entries[0].info.parked_from, Some(Dlq::Moog));
    assert_eq!(dead.entries[0].message["_parked_reason"], "manual");
    let r = dlq::replay(s, Dlq::Dead, &Selection::all(), false, &no_progress).await.unwrap();
    assert_eq!((r.total(), r.moved.len()), (7, 2), "{:?}", r.moved);
    let to_alert = drain(&q, QueueId::Alert).await;
    let to_ingest = drain(&q, QueueId::Ingest).await;
    assert_eq!((ns(&to_alert), ns(&to_ingest)), (vec![0, 1, 2, 3], vec![10, 11, 12]));
    assert!(to_alert.iter().all(|m| m.get("_moog_retry_count").is_none() && m["_replay_count"] == 1));
    assert!(to_ingest.iter().all(|m| m.get("_parked_from").is_none() && m.get("_dlq_reason").is_none()));
    assert_eq!(depths(dlq::list(s).await.unwrap()), vec![0, 0, 0]);
}

pub async fn purge_by_filter_and_trim_by_age(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let s = store.as_ref();
    let events: Vec<Vec<u8>> = (0..10).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    let host = Selection { host: Some("h2".into()), ..Selection::default() };
    assert_eq!(dlq::purge(s, Dlq::Alerter, &host, false, &no_progress).await.unwrap().total(), 2);
    let dated = |n: usize, days: i64| {
        json!({"n": n, "hostname": "x", "failed_at": (Utc::now() - Days::days(days)).to_rfc3339()})
            .to_string()
            .into_bytes()
    };
    store.dlq_push(Dlq::Alerter, &[dated(20, 31), dated(21, 29)]).await.unwrap();
    store.dlq_push(Dlq::Moog, &[dated(22, 45)]).await.unwrap();
    store.dlq_push(Dlq::Dead, &[dated(23, 400), br#"{"n":24,"no":"date"}"#.to_vec()]).await.unwrap();
    let t = dlq::trim(s, 30, false, &no_progress).await.unwrap();
    assert_eq!(t.iter().map(|r| r.total()).collect::<Vec<_>>(), vec![1, 1, 1]);
    let left = |d| async move { dlq::show(s, d, &Selection::all(), End::Oldest, 0, 100).await.unwrap().entries };
    let alerter: Vec<u64> = left(Dlq::Alerter).await.iter().map(|e| e.message["n"].as_u64().unwrap()).collect();
    assert_eq!(alerter, vec![0, 1, 3, 4, 5, 6, 8, 9, 21]);
    assert!(left(Dlq::Moog).await.is_empty());
    let dead: Vec<u64> = left(Dlq::Dead).await.iter().map(|e| e.message["n"].as_u64().unwrap()).collect();
    assert_eq!(dead, vec![24], "undated entries stay");
}

pub async fn concurrent_replays_never_move_an_entry_twice(q: Arc<dyn Backend>) {
    let events: Vec<Vec<u8>> = (0..1200).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, |_| "retries_exhausted").await;
    let run = |store: Arc<dyn DeadLetterStore>| {
        tokio::spawn(async move {
            dlq::replay(store.as_ref(), Dlq::Alerter, &Selection::all(), false, &no_progress).await.unwrap()
        })
    };
    let (a, b) = (run(q.dead_letters()), run(q.dead_letters()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.total() + b.total(), 1200, "a: {a:?}\nb: {b:?}");
    let replayed = drain(&q, QueueId::Ingest).await;
    assert_eq!(ns(&replayed), (0..1200).collect::<Vec<u64>>(), "each event exactly once");
    assert_eq!(q.dead_letters().dlq_depth(Dlq::Alerter).await.unwrap(), 0);
}

pub async fn export_writes_one_json_line_per_entry(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let events: Vec<Vec<u8>> = (0..6).map(event).collect();
    dead_letter(&q, WorkerRole::Alerter, &events, shed_or_spent).await;
    let mut out = Vec::new();
    let n = dlq::export_jsonl(store.as_ref(), Dlq::Alerter, &Selection::all(), End::Oldest, &mut out).await.unwrap();
    let lines: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((n, lines.len()), (6, 6));
    assert_eq!(lines[0]["message"]["n"], 0);
    assert_eq!(lines[0]["reason"], "shed");
    assert_eq!(lines[5]["dlq"], "alerter");
    assert_eq!(store.dlq_depth(Dlq::Alerter).await.unwrap(), 6, "an export removes nothing");
}

pub async fn unreadable_entries_are_not_replayed(q: Arc<dyn Backend>) {
    let store = q.dead_letters();
    let s = store.as_ref();
    q.push(QueueId::Ingest, &[b"not json".to_vec()]).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("t"))).await.unwrap();
    let lease = c.lease(10, Duration::from_secs(2)).await.unwrap().unwrap();
    let mut st = Settlement::new();
    st.dead_letter(&lease.messages[0], "invalid_json", "not an object");
    c.settle(&lease, &st).await.unwrap();
    c.shutdown().await.unwrap();
    let r = dlq::replay(s, Dlq::Alerter, &Selection::all(), false, &no_progress).await.unwrap();
    assert_eq!((r.total(), r.not_replayable), (0, 1));
    assert_eq!(s.dlq_depth(Dlq::Alerter).await.unwrap(), 1);
    assert_eq!(
        dlq::park(s, Dlq::Alerter, &Selection::all(), "unreadable", false, &no_progress).await.unwrap().total(),
        1
    );
    let dead = dlq::show(s, Dlq::Dead, &Selection::all(), End::Oldest, 0, 10).await.unwrap();
    assert_eq!(dead.entries[0].message["raw"], "not json");
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}
