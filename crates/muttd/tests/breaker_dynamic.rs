//! `circuit_breaker_threshold` and `circuit_breaker_timeout` in dynamic configuration are read
//! when the forwarder starts (spec §7.3: "startup only") and win over the static settings: with
//! the dynamic threshold at 2 (static 10), the shared breaker opens after the first failed batch
//! of five and nothing more is sent while it stays open (600 s, the dynamic timeout).

use mutt_core::Alert;
use mutt_queue::{BreakerState, QueueId};
use mutt_testapp::{BackendKind, Site};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use muttd::app::{self, Role, StartOptions};
use muttd::config::Config;
use muttd::secrets::EnvSecrets;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn alert(n: usize) -> Vec<u8> {
    Alert {
        hostname: format!("h{n}"),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: format!("CRITICAL {n}"),
        raw_json: serde_json::json!({"n": n}),
        correlation_id: "c".into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(1),
        handling: Some("Page_and_ticket".into()),
    }
    .to_json()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamic_breaker_settings_win_at_start() {
    let site = Site::fresh(BackendKind::RedisPostgres).await;
    let backend = site.open().await;
    backend.coordination.set_config_value("circuit_breaker_threshold", "2").await.unwrap();
    backend.coordination.set_config_value("circuit_breaker_timeout", "600").await.unwrap();
    let receiver = WebhookReceiver::start().await;
    receiver.set_mode(ReceiverMode::Status(503));

    let mut config = Config::default();
    config.redis.url = site.redis_url().map(str::to_owned);
    config.redis.key_prefix = site.key_prefix().unwrap().to_owned();
    config.database.url = site.database_url().map(str::to_owned);
    config.forwarder.webhook_url = Some(receiver.url());
    config.forwarder.format = mutt_forwarder::OutputFormat::Legacy;
    config.forwarder.retry_base_secs = 0.05;
    config.forwarder.retry_max_secs = 0.1;
    config.forwarder.port = 0;
    config.worker.block_timeout_secs = 0.2;
    assert_eq!(config.forwarder.circuit_breaker_threshold, 10, "the static threshold");
    let secrets = EnvSecrets::new(HashMap::from([("MOOG_API_KEY".to_string(), "k".to_string())]));
    let app =
        app::start(&config, &secrets, &[Role::Forwarder], StartOptions::default()).await.expect("forwarder starts");

    let alerts: Vec<Vec<u8>> = (0..5).map(alert).collect();
    backend.queue.push(QueueId::Alert, &alerts).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (state, _) = backend.coordination.breaker_state("moogsoft").await.unwrap();
        if state == BreakerState::Open {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never opened ({} requests)", receiver.requests().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Five failures (one batch) at most: the static threshold of 10 would not have opened it.
    let sent = receiver.requests().len();
    assert!((2..10).contains(&sent), "{sent} requests");
    // Open for 600 s: nothing more goes out (retries wait).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.requests().len(), sent, "nothing sent while open");
    assert_eq!(backend.coordination.breaker_state("moogsoft").await.unwrap().0, BreakerState::Open);
    app.stop().await.unwrap();
}
