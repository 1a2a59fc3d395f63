//! The ingestor's dynamic settings (spec §7.3: `max_ingest_queue_size`, `ingest_max_rate`,
//! `ingest_rate_window`) apply as soon as they are set, well before the cache's 5 s refresh:
//! on the very next accept on the embedded backend (told in-process), within a moment on
//! Redis (the `mutt:config:updates` message arrives on the ingestor's own subscription).

mod common;

use common::setup;
use mutt_ingest::{Ingest, IngestConfig, RateLimit, Rejection, Submission};
use mutt_testapp::BackendKind;
use serde_json::json;
use std::time::{Duration, Instant};

fn one_event() -> Submission {
    let ev = json!({"hostname": "r1", "message": "LINK-DOWN Gi0/1", "timestamp": "2026-12-01T10:00:00Z"});
    Submission {
        events: vec![ev.as_object().cloned().unwrap_or_default().into()],
        batch: false,
        correlation_id: "c".into(),
    }
}

/// Accepts until one is refused; returns the refusal and how many were still accepted. The
/// embedded backend must refuse the first; Redis within a second (the refresh period is 5 s).
async fn next_refusal(kind: BackendKind, ingest: &Ingest) -> (Rejection, usize) {
    let t0 = Instant::now();
    let mut accepted = 0;
    loop {
        match ingest.accept(one_event()).await {
            Err(r) => return (r, accepted),
            Ok(_) => accepted += 1,
        }
        assert!(kind == BackendKind::RedisPostgres, "embedded: the very next accept must see the change");
        assert!(t0.elapsed() < Duration::from_secs(1), "not applied after {:?} ({accepted} accepted)", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

mutt_testapp::both_backends!(the_queue_limit_set_at_run_time_applies_at_once, the_rate_set_at_run_time_applies_at_once);

async fn the_queue_limit_set_at_run_time_applies_at_once(kind: BackendKind) {
    let config = IngestConfig { rate_limit: None, ..IngestConfig::default() };
    let (_site, b, ingest) = setup(kind, config).await;
    for _ in 0..3 {
        ingest.accept(one_event()).await.expect("under the static limit");
    }
    assert_eq!(ingest.settings().await.max_queue_size, 1_000_000);
    b.coordination.set_config_value("max_ingest_queue_size", "3").await.unwrap();
    let (refusal, slipped) = next_refusal(kind, &ingest).await;
    let depth = 3 + slipped as u64;
    assert!(matches!(refusal, Rejection::QueueFull { limit: 3, depth: d } if d == depth), "{refusal:?}");
    println!("{}: {slipped} accepted after the change", kind.name());
    // Raised again: accepted again, as promptly.
    b.coordination.set_config_value("max_ingest_queue_size", "1000").await.unwrap();
    let t0 = Instant::now();
    while ingest.accept(one_event()).await.is_err() {
        assert!(kind == BackendKind::RedisPostgres && t0.elapsed() < Duration::from_secs(1), "still refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn the_rate_set_at_run_time_applies_at_once(kind: BackendKind) {
    let rate = RateLimit { limit: 1000, window: Duration::from_secs(60) };
    let config = IngestConfig { rate_limit: Some(rate), ..IngestConfig::default() };
    let (_site, b, ingest) = setup(kind, config).await;
    for _ in 0..2 {
        ingest.accept(one_event()).await.expect("under the static rate");
    }
    b.coordination.set_config_value("ingest_max_rate", "2").await.unwrap();
    let (refusal, _) = next_refusal(kind, &ingest).await;
    let Rejection::RateLimited { retry_after } = refusal else { panic!("{refusal:?}") };
    assert!(retry_after <= Duration::from_secs(60), "{retry_after:?}");
    let s = ingest.settings().await;
    assert_eq!(s.rate_limit, Some(RateLimit { limit: 2, window: Duration::from_secs(60) }));
}
