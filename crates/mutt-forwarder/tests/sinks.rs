//! The sinks' request details (authentication per format), the live rate limit read from
//! dynamic configuration, and the forwarder's `/health` body: against real Redis and the test
//! webhook receiver.

use mutt_core::{Alert, PodName, Secret};
use mutt_forwarder::{
    Destination, ForwardOutcome, Forwarder, ForwarderConfig, ForwarderMetrics, LamAuth, OutputFormat,
};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Coordination, Queue, QueueId, WorkerRole};
use mutt_testkit::WebhookReceiver;
use std::sync::Arc;
use std::time::Duration;

async fn redis() -> RedisQueue {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys)).await.unwrap()
}

fn config(receiver: &WebhookReceiver, format: OutputFormat, lam_auth: LamAuth) -> ForwarderConfig {
    ForwarderConfig {
        destination: Destination::Webhook(receiver.url()),
        api_key: Some(Secret::new("bearer-key")),
        format,
        lam_auth,
        block_timeout: Duration::from_millis(100),
        rate_limit: None,
        breaker: None,
        ..ForwarderConfig::default()
    }
}

async fn forwarder(queue: &RedisQueue, config: ForwarderConfig) -> Forwarder {
    let pod = PodName::parse(format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..6])).unwrap();
    let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
    let cc = ConsumerConfig::new(WorkerRole::Forwarder, pod);
    Forwarder::start(Arc::new(queue.clone()), Arc::new(queue.clone()), cc, config, metrics).await.unwrap()
}

async fn push(queue: &RedisQueue, n: usize) {
    let alerts: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let raw = serde_json::json!({"hostname": format!("h{i}"), "message": "down"});
            Alert {
                hostname: format!("h{i}"),
                team_assignment: "NetOps".into(),
                severity: "Warning".into(),
                message_body: "down".into(),
                raw_json: raw,
                correlation_id: "c".into(),
                event_id: uuid::Uuid::now_v7().to_string(),
                rule_id: Some(1),
                handling: None,
            }
            .to_json()
            .into_bytes()
        })
        .collect();
    queue.push(QueueId::Alert, &alerts).await.unwrap();
}

fn authorization(r: &mutt_testkit::Recorded) -> Option<String> {
    r.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[tokio::test]
async fn each_format_authenticates_its_own_way() {
    let (queue, receiver) = (redis().await, WebhookReceiver::start().await);
    // legacy: the API key as a bearer token, one alert per request with its idempotency key.
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::Legacy, LamAuth::Token(Secret::new("t")))).await;
    push(&queue, 1).await;
    assert!(matches!(f.process_one_batch().await.unwrap(), ForwardOutcome::Processed { delivered: 1, .. }));
    let r = &receiver.accepted()[0];
    assert_eq!(authorization(r).as_deref(), Some("Bearer bearer-key"));
    assert!(r.headers.get("idempotency-key").is_some());
    assert!(r.body.get("auth_token").is_none());
    // REST LAM with basic authentication: no bearer, no token in the body.
    let basic = LamAuth::Basic { user: "moog".into(), password: Secret::new("pw") };
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::MoogRestLam, basic)).await;
    push(&queue, 3).await;
    assert!(matches!(f.process_one_batch().await.unwrap(), ForwardOutcome::Processed { delivered: 3, .. }));
    let r = &receiver.accepted()[1];
    assert_eq!(authorization(r).as_deref(), Some("Basic bW9vZzpwdw=="), "moog:pw");
    assert!(r.body.get("auth_token").is_none());
    assert_eq!(r.body["events"].as_array().map(Vec::len), Some(3));
    // REST LAM without authentication: nothing at all (the API key is not for REST LAM).
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::MoogRestLam, LamAuth::None)).await;
    push(&queue, 1).await;
    f.process_one_batch().await.unwrap();
    let r = &receiver.accepted()[2];
    assert_eq!(authorization(r), None);
    assert!(r.body.get("auth_token").is_none());
}

#[tokio::test]
async fn a_replaced_key_is_sent_from_the_next_request_in_each_scheme() {
    let (queue, receiver) = (redis().await, WebhookReceiver::start().await);
    // Bearer (legacy): the old key, then the new one.
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::Legacy, LamAuth::None)).await;
    let key = f.moog_key().expect("the webhook's credential");
    push(&queue, 1).await;
    f.process_one_batch().await.unwrap();
    assert!(key.set(Secret::new("rotated-key")));
    push(&queue, 1).await;
    f.process_one_batch().await.unwrap();
    // REST LAM token and basic auth: the secret is replaced, the scheme (and user) stay.
    let token = LamAuth::Token(Secret::new("old-token"));
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::MoogRestLam, token)).await;
    assert!(f.moog_key().unwrap().set(Secret::new("new-token")));
    push(&queue, 1).await;
    f.process_one_batch().await.unwrap();
    let basic = LamAuth::Basic { user: "moog".into(), password: Secret::new("pw") };
    let mut f = forwarder(&queue, config(&receiver, OutputFormat::MoogRestLam, basic)).await;
    assert!(f.moog_key().unwrap().set(Secret::new("pw2")));
    push(&queue, 1).await;
    f.process_one_batch().await.unwrap();
    // Without credentials there is no scheme to put a key in.
    let f = forwarder(&queue, config(&receiver, OutputFormat::MoogRestLam, LamAuth::None)).await;
    assert!(!f.moog_key().unwrap().set(Secret::new("x")));
    let got = receiver.accepted();
    assert_eq!(authorization(&got[0]).as_deref(), Some("Bearer bearer-key"));
    assert_eq!(authorization(&got[1]).as_deref(), Some("Bearer rotated-key"));
    assert_eq!(got[2].body["auth_token"], "new-token");
    assert_eq!(authorization(&got[3]).as_deref(), Some("Basic bW9vZzpwdzI="), "moog:pw2");
}

#[tokio::test]
async fn the_rate_limit_set_at_run_time_is_used() {
    let (queue, receiver) = (redis().await, WebhookReceiver::start().await);
    queue.set_config_value("moog_rate_limit", "3").await.unwrap();
    queue.set_config_value("moog_rate_period", "60").await.unwrap();
    let mut cfg = config(&receiver, OutputFormat::Legacy, LamAuth::None);
    cfg.rate_limit = Some((1000, Duration::from_secs(1)));
    let mut f = forwarder(&queue, cfg).await;
    push(&queue, 5).await;
    let out = f.process_one_batch().await.unwrap();
    assert!(matches!(out, ForwardOutcome::Processed { delivered: 3, put_back: 2, .. }), "{out:?}");
    assert!(matches!(f.process_one_batch().await.unwrap(), ForwardOutcome::Paused(_)), "3 per minute: the rest wait");
    assert_eq!(queue.depth(QueueId::Alert).await.unwrap(), 2, "put back, not dropped");
}

#[tokio::test]
async fn the_alerts_file_is_not_rate_limited() {
    let queue = redis().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out").join("alerts.jsonl");
    let cfg = ForwarderConfig {
        destination: Destination::File(path.clone()),
        format: OutputFormat::Legacy,
        rate_limit: Some((1, Duration::from_secs(60))),
        block_timeout: Duration::from_millis(100),
        ..ForwarderConfig::default()
    };
    let mut f = forwarder(&queue, cfg).await;
    push(&queue, 4).await;
    assert!(matches!(f.process_one_batch().await.unwrap(), ForwardOutcome::Processed { delivered: 4, .. }));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4, "one line per legacy request");
}

#[tokio::test]
async fn health_names_what_is_down() {
    let (queue, receiver) = (redis().await, WebhookReceiver::start().await);
    let up = mutt_forwarder::health(Arc::new(queue.clone()), receiver.url(), "fwd-0".into()).report().await;
    assert!(up.healthy);
    assert_eq!(
        up.body,
        serde_json::json!({"status": "healthy", "service": "mutt-moog-forwarder",
            "version": env!("CARGO_PKG_VERSION"), "pod": "fwd-0"})
    );
    let down = mutt_forwarder::health(Arc::new(queue.clone()), "http://127.0.0.1:1/events".into(), "fwd-0".into())
        .report()
        .await;
    assert!(!down.healthy);
    assert_eq!(down.body["status"], "unhealthy");
    assert_eq!(down.body["errors"], serde_json::json!(["Webhook: unreachable"]));
    let no_webhook = mutt_forwarder::health(Arc::new(queue), String::new(), "fwd-0".into()).report().await;
    assert!(no_webhook.healthy, "without a webhook only Redis is checked");
}
