//! Drop-in parity of the forwarder on both backends: what the receiver gets for the `legacy`
//! format (the original's payload, `external_id` = correlation id), alerts the original MUTT
//! left on the alert queue (with its `api_key`, without `_event_id`), and retry counts that
//! arrive already exhausted.

use mutt_core::Alert;
use mutt_forwarder::{Destination, ForwardOutcome, Forwarder, ForwarderConfig, ForwarderMetrics, OutputFormat};
use mutt_queue::redis::KeySpace;
use mutt_queue::{QueueId, WorkerRole};
use mutt_testapp::{BackendKind, Site, TestBackend};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::{Value, json};
use std::time::Duration;

/// The Moog key the original alerter copied into every queued alert.
const ORIGINAL_KEY: &str = "original-alerter-moog-key";
/// The forwarder's own key (sent as `Authorization: Bearer`).
const FORWARDER_KEY: &str = "muttd-forwarder-key";

/// The fields of the original's webhook body (spec §5.3).
const LEGACY_FIELDS: [&str; 13] = [
    "agent",
    "agent_location",
    "agent_time",
    "class",
    "custom_info",
    "description",
    "external_id",
    "manager",
    "severity",
    "signature",
    "source",
    "source_id",
    "type",
];

struct Setup {
    site: Site,
    backend: TestBackend,
    receiver: WebhookReceiver,
}

async fn setup(kind: BackendKind) -> Setup {
    let site = Site::fresh(kind).await;
    let backend = site.open().await;
    Setup { site, backend, receiver: WebhookReceiver::start().await }
}

/// An alert as the original alerter queued it (spec §4.7), correlation id `cid`.
fn original_alert(cid: &str, host: &str) -> Value {
    json!({"api_key": ORIGINAL_KEY, "hostname": host, "team_assignment": "NETO", "severity": "Warning",
           "message_body": format!("CRITICAL: System failure detected on {host}"),
           "raw_json": {"hostname": host, "message": format!("CRITICAL: System failure detected on {host}"),
                        "timestamp": "2025-11-08T12:00:00Z", "syslog_severity": 2, "_correlation_id": cid},
           "_correlation_id": cid})
}

fn muttd_alert(cid: &str) -> Alert {
    Alert {
        hostname: "router1".into(),
        team_assignment: "NetOps".into(),
        severity: "Major".into(),
        message_body: "LINK-DOWN".into(),
        raw_json: json!({"hostname": "router1", "message": "LINK-DOWN", "_correlation_id": cid}),
        correlation_id: cid.into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(1),
        handling: Some("Page_and_ticket".into()),
    }
}

impl Setup {
    async fn forwarder(&self, format: OutputFormat) -> Forwarder {
        self.forwarder_to(Destination::Webhook(self.receiver.url()), format).await
    }

    async fn forwarder_to(&self, destination: Destination, format: OutputFormat) -> Forwarder {
        let config = ForwarderConfig {
            destination,
            api_key: Some(mutt_core::Secret::new(FORWARDER_KEY)),
            format,
            timeout: Duration::from_secs(2),
            block_timeout: Duration::from_millis(100),
            retry_base: Duration::from_secs(30),
            rate_limit: None,
            breaker: None,
            ..ForwarderConfig::default()
        };
        let cc = mutt_testapp::fixtures::consumer(WorkerRole::Forwarder, "f");
        let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
        Forwarder::start(self.backend.queue.clone(), self.backend.coordination.clone(), cc, config, metrics)
            .await
            .unwrap()
    }

    async fn push(&self, messages: &[Value]) {
        let raw: Vec<Vec<u8>> = messages.iter().map(|m| serde_json::to_vec(m).unwrap()).collect();
        self.backend.queue.push(QueueId::Alert, &raw).await.unwrap();
    }

    /// The moog DLQ, oldest first, read where the backend keeps it.
    async fn dead_letters(&self) -> Vec<Value> {
        let keys = self.keys();
        self.stored(&keys.moog_dlq, "SELECT body FROM queue_message WHERE queue = ?1 ORDER BY seq").await
    }

    /// Retries waiting in the alert queue's delayed set.
    async fn delayed(&self) -> Vec<Value> {
        let keys = self.keys();
        let key = match self.site.kind() {
            BackendKind::RedisPostgres => keys.delayed(QueueId::Alert),
            BackendKind::Embedded => keys.alert_queue,
        };
        self.stored(&key, "SELECT body FROM queue_delayed WHERE queue = ?1 ORDER BY due_ms").await
    }

    fn keys(&self) -> KeySpace {
        self.site.key_prefix().map_or_else(KeySpace::default, KeySpace::with_prefix)
    }

    /// Messages under a Redis key (a list oldest first, or a sorted set), or the SQLite rows
    /// `sql` selects for the queue named `key`.
    async fn stored(&self, key: &str, sql: &'static str) -> Vec<Value> {
        let raw: Vec<Vec<u8>> = match self.site.kind() {
            BackendKind::RedisPostgres => {
                let client = redis::Client::open(self.site.redis_url().unwrap()).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut c).await.unwrap();
                let cmd = if kind == "zset" { "ZRANGE" } else { "LRANGE" };
                let mut v: Vec<Vec<u8>> = redis::cmd(cmd).arg(key).arg(0).arg(-1).query_async(&mut c).await.unwrap();
                if cmd == "LRANGE" {
                    v.reverse();
                }
                v
            }
            BackendKind::Embedded => {
                let db = mutt_sqlite::Database::open(self.site.data_file().unwrap(), Default::default()).unwrap();
                let key = key.to_owned();
                db.read(move |c| {
                    let mut s = c.prepare(sql)?;
                    let rows = s.query_map([key], |r| r.get::<_, Vec<u8>>(0))?;
                    rows.collect()
                })
                .await
                .unwrap()
            }
        };
        raw.iter().map(|b| serde_json::from_slice(b).unwrap()).collect()
    }

    /// Everything the receiver got, bodies and headers, as text.
    fn everything_received(&self) -> String {
        let mut all = String::new();
        for r in self.receiver.requests() {
            all.push_str(&String::from_utf8_lossy(&r.raw));
            for (name, value) in &r.headers {
                all.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
            }
        }
        all
    }
}

async fn one_batch(f: &mut Forwarder) -> ForwardOutcome {
    f.process_one_batch().await.unwrap()
}

/// Alerts the original queued are delivered in the `legacy` format exactly as the original
/// sent them, with the correlation id as `external_id`; their `api_key` reaches nothing; a
/// second copy of the same alert is recognised as delivered.
async fn original_alerts_are_delivered_as_the_original_did(kind: BackendKind) {
    let s = setup(kind).await;
    let mut f = s.forwarder(OutputFormat::Legacy).await;
    let mut retried = original_alert("cid-2", "server-02");
    retried["_moog_retry_count"] = json!(2);
    s.push(&[original_alert("cid-1", "server-01"), retried]).await;
    s.push(&[serde_json::to_value(muttd_alert("cid-3")).unwrap()]).await;
    let out = one_batch(&mut f).await;
    assert!(matches!(out, ForwardOutcome::Processed { delivered: 3, dead_lettered: 0, .. }), "{out:?}");

    let bodies: Vec<Value> = s.receiver.accepted().into_iter().map(|r| r.body).collect();
    let ids: Vec<&str> = bodies.iter().map(|b| b["external_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["cid-1", "cid-2", "cid-3"], "external_id is the correlation id, muttd's alerts too");
    for b in &bodies {
        let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, LEGACY_FIELDS, "the original's fields, no more: {b}");
    }
    let first = &bodies[0];
    assert_eq!(first["signature"], "server-01");
    assert_eq!(first["source_id"], "server-01");
    assert_eq!((&first["manager"], &first["source"]), (&json!("MUTT"), &json!("MUTT Alerter")));
    assert_eq!((&first["class"], &first["agent"]), (&json!("NETO"), &json!("MUTT v2.3")));
    assert_eq!((&first["agent_location"], &first["type"]), (&json!("Alerter Service"), &json!("Alert")));
    assert_eq!(first["severity"], 3, "Warning");
    assert_eq!(first["description"], "CRITICAL: System failure detected on server-01");
    assert_eq!(first["custom_info"], original_alert("cid-1", "server-01")["raw_json"]);
    let now = chrono::Utc::now().timestamp();
    assert!((now - 60..=now).contains(&first["agent_time"].as_i64().unwrap()));
    assert_eq!(bodies[2]["severity"], 4, "Major");

    let received = s.everything_received();
    assert!(!received.contains(ORIGINAL_KEY) && !received.contains("api_key"), "{received}");
    assert!(received.contains(&format!("Bearer {FORWARDER_KEY}")), "the forwarder's own key authenticates");

    // The same original alert again (a redelivery): the same derived id, not sent twice.
    s.push(&[original_alert("cid-1", "server-01")]).await;
    let out = one_batch(&mut f).await;
    assert!(matches!(out, ForwardOutcome::Processed { duplicates: 1, delivered: 0, .. }), "{out:?}");
    assert_eq!(s.receiver.requests().len(), 3);
    assert!(s.dead_letters().await.is_empty());
}

/// An original alert that fails is retried and, if refused, dead-lettered, both without its
/// `api_key`.
async fn original_alerts_are_requeued_and_dead_lettered_without_the_key(kind: BackendKind) {
    let s = setup(kind).await;
    let mut f = s.forwarder(OutputFormat::Legacy).await;
    s.receiver.set_mode(ReceiverMode::Status(503));
    s.push(&[original_alert("cid-r", "server-r")]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { retried: 1, .. }));
    let delayed = s.delayed().await;
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0]["_moog_retry_count"], 1);
    assert_eq!(delayed[0]["_correlation_id"], "cid-r");
    assert!(delayed[0].get("api_key").is_none(), "{}", delayed[0]);

    s.receiver.set_mode(ReceiverMode::Status(400));
    s.push(&[original_alert("cid-d", "server-d")]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { dead_lettered: 1, .. }));
    let dlq = s.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["_dlq_reason"], "rejected_by_receiver");
    assert_eq!(dlq[0]["_correlation_id"], "cid-d");
    assert!(!dlq[0].to_string().contains(ORIGINAL_KEY), "{}", dlq[0]);
}

/// `_moog_retry_count` above `max_retries` (5) on arrival: dead-lettered with a reason,
/// never sent; 5 itself still gets its last attempt.
async fn exhausted_retry_counts_are_dead_lettered_on_arrival(kind: BackendKind) {
    let s = setup(kind).await;
    let mut f = s.forwarder(OutputFormat::Legacy).await;
    let mut from_original = original_alert("cid-old", "server-old");
    from_original["_moog_retry_count"] = json!(9);
    let mut replayed = serde_json::to_value(muttd_alert("cid-replayed")).unwrap();
    replayed["_moog_retry_count"] = json!(6);
    let mut last_try = serde_json::to_value(muttd_alert("cid-last")).unwrap();
    last_try["_moog_retry_count"] = json!(5);
    s.push(&[from_original, replayed, last_try]).await;
    let out = one_batch(&mut f).await;
    assert!(matches!(out, ForwardOutcome::Processed { delivered: 1, dead_lettered: 2, .. }), "{out:?}");
    let sent: Vec<Value> = s.receiver.requests().into_iter().map(|r| r.body["external_id"].clone()).collect();
    assert_eq!(sent, vec![json!("cid-last")]);
    let dlq = s.dead_letters().await;
    let got: Vec<(&str, &str)> =
        dlq.iter().map(|d| (d["_correlation_id"].as_str().unwrap(), d["_dlq_reason"].as_str().unwrap())).collect();
    assert_eq!(got, vec![("cid-old", "retries_exhausted"), ("cid-replayed", "retries_exhausted")]);
    assert_eq!(dlq[0]["_dlq_error"], "arrived with _moog_retry_count 9, above MOOG_MAX_RETRIES (5)");
    assert_eq!(dlq[0]["_moog_retry_count"], 9, "the message as it came");
    assert!(dlq[0].get("api_key").is_none(), "{}", dlq[0]);
    assert!(s.delayed().await.is_empty());
}

/// `moog-rest-lam` and `generic` send the event id as `external_id` / `_event_id`; an
/// original alert's is derived from its content, the same for every copy.
async fn rest_lam_and_generic_send_event_ids(kind: BackendKind) {
    let s = setup(kind).await;
    let mut lam = s.forwarder(OutputFormat::MoogRestLam).await;
    let ours = muttd_alert("shared-cid");
    s.push(&[original_alert("shared-cid", "server-01"), serde_json::to_value(&ours).unwrap()]).await;
    assert!(matches!(one_batch(&mut lam).await, ForwardOutcome::Processed { delivered: 2, .. }));
    let body = &s.receiver.accepted()[0].body;
    let ids: Vec<&str> =
        body["events"].as_array().unwrap().iter().map(|e| e["external_id"].as_str().unwrap()).collect();
    let derived = Alert::from_queue(&serde_json::to_vec(&original_alert("shared-cid", "server-01")).unwrap())
        .unwrap()
        .alert
        .event_id;
    assert_eq!(ids, vec![derived.as_str(), ours.event_id.as_str()]);
    assert_eq!(uuid::Uuid::parse_str(ids[0]).unwrap().get_version_num(), 5);
    drop(lam);

    let mut generic = s.forwarder(OutputFormat::Generic).await;
    s.push(&[original_alert("cid-g", "server-g")]).await;
    assert!(matches!(one_batch(&mut generic).await, ForwardOutcome::Processed { delivered: 1, .. }));
    let body = &s.receiver.accepted()[1].body;
    assert!(uuid::Uuid::parse_str(body["_event_id"].as_str().unwrap()).is_ok(), "{body}");
    assert_eq!(body["_correlation_id"], "cid-g");
    assert!(!s.everything_received().contains(ORIGINAL_KEY));
}

/// The alerts file gets the original's alerts in the chosen format, without the key.
async fn original_alerts_reach_the_alerts_file_without_the_key(kind: BackendKind) {
    let s = setup(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    for (i, format) in [OutputFormat::Legacy, OutputFormat::Generic, OutputFormat::MoogRestLam].into_iter().enumerate()
    {
        let mut f = s.forwarder_to(Destination::File(path.clone()), format).await;
        s.push(&[original_alert(&format!("cid-file-{i}"), "server-file")]).await;
        let out = one_batch(&mut f).await;
        assert!(matches!(out, ForwardOutcome::Processed { delivered: 1, .. }), "{format:?}: {out:?}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("cid-file-2") && !text.contains(ORIGINAL_KEY) && !text.contains("api_key"), "{text}");
}

mutt_testapp::both_backends!(
    original_alerts_reach_the_alerts_file_without_the_key,
    original_alerts_are_delivered_as_the_original_did,
    original_alerts_are_requeued_and_dead_lettered_without_the_key,
    exhausted_retry_counts_are_dead_lettered_on_arrival,
    rest_lam_and_generic_send_event_ids,
);
