//! `mutt_alerter_queue_depth` is the depth the backpressure check saw, set at every check
//! (spec §10.1), not only by the 5 s queue sampler (none runs here); and a shed threshold set
//! at run time applies from the next batch, not after the settings cache's 5 s refresh.

use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome};
use mutt_core::PodName;
use mutt_queue::{ConsumerConfig, QueueId, QueueMetrics, WorkerRole};
use mutt_testapp::{BackendKind, Site};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn event(message: &str) -> Vec<u8> {
    json!({"hostname": "h", "message": message, "timestamp": "2025-11-08T12:00:00Z",
           "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": "c"})
    .to_string()
    .into_bytes()
}

/// The gauge's value in the `/metrics` text.
fn gauge(metrics: &mutt_service::Metrics) -> String {
    let text = metrics.encode();
    let line = text.lines().find(|l| l.starts_with("mutt_alerter_queue_depth "));
    line.unwrap_or_else(|| panic!("no mutt_alerter_queue_depth in\n{text}")).rsplit(' ').next().unwrap_or("").to_owned()
}

mutt_testapp::both_backends!(every_backpressure_check_sets_the_alert_queue_gauge);

async fn every_backpressure_check_sets_the_alert_queue_gauge(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let metrics = mutt_service::Metrics::new();
    let queue_metrics = QueueMetrics::default();
    metrics.register(|r| queue_metrics.register(r));
    let mut cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse("gauge").unwrap());
    cc.metrics = queue_metrics;
    let config = AlerterConfig { block_timeout: Duration::from_millis(100), ..AlerterConfig::default() };
    let am = AlerterMetrics::register(&metrics);
    let mut alerter = Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, am)
        .await
        .expect("alerter starts");
    let sd = CancellationToken::new();
    assert_eq!(gauge(&metrics), "0");

    b.queue.push(QueueId::Alert, &[b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]).await.unwrap();
    b.queue.push(QueueId::Ingest, &[event("no rule matches")]).await.unwrap();
    assert!(matches!(alerter.process_one_batch(&sd).await.unwrap(), BatchOutcome::Processed { events: 1, .. }));
    assert_eq!(gauge(&metrics), "3", "the depth the check saw before the batch");

    b.queue.push(QueueId::Alert, &[b"a4".to_vec()]).await.unwrap();
    assert_eq!(alerter.process_one_batch(&sd).await.unwrap(), BatchOutcome::Empty);
    assert_eq!(gauge(&metrics), "4", "an idle check sets it too");

    // Shedding from the next batch on (Redis: once the subscription delivers the change).
    b.coordination.set_config_value("alerter_queue_shed_threshold", "3").await.unwrap();
    if kind == BackendKind::RedisPostgres {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.queue.push(QueueId::Alert, &[b"a5".to_vec()]).await.unwrap();
    b.queue.push(QueueId::Ingest, &[event("shed me")]).await.unwrap();
    assert_eq!(alerter.process_one_batch(&sd).await.unwrap(), BatchOutcome::Shed(1));
    assert_eq!(gauge(&metrics), "5");
    assert_eq!(b.queue.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
}
