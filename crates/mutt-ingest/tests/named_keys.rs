//! Named API keys on the ingest API: each key admitted under its name (in the request's log
//! lines and `mutt_ingest_key_requests_total`, never the key), wrong keys of any length 401
//! with a JSON body, per-key rate limits, and `/health` without a key showing no error text
//! while Redis is down. Against a real Redis.

use mutt_core::Secret;
use mutt_ingest::{IngestConfig, RateLimit};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const OPS_KEY: &str = "ops-secret-key-0123456789";
const CI_KEY: &str = "ci-secret-key-abc";

fn keys() -> Vec<mutt_ingest::ApiKey> {
    vec![Secret::new(format!("ops:{OPS_KEY}")).into(), Secret::new(format!("ci:{CI_KEY}")).into()]
}

struct Api {
    base: String,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start(redis: &str, config: IngestConfig) -> Self {
        let redis = RedisConfig::single(redis.to_owned(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
        let queue = RedisQueue::connect(&redis).await.unwrap();
        let router =
            mutt_ingest::router(Arc::new(queue.clone()), Arc::new(queue), config, mutt_service::Metrics::new())
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(mutt_service::serve(listener, router, stop.clone()));
        Self { base, http: reqwest::Client::new(), _stop: stop.drop_guard() }
    }

    async fn post(&self, key: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}/ingest", self.base)).header("x-api-key", key).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn event() -> Value {
    json!({"hostname": "router1", "message": "LINK-DOWN", "timestamp": "2025-11-08T12:00:00Z"})
}

/// Every log line of this test binary (one global subscriber: a span's interest is cached per
/// callsite, so a thread-local subscriber would miss spans first seen by another test).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

#[tokio::test]
async fn each_named_key_is_admitted_under_its_name_and_wrong_keys_get_401() {
    let logs = logs();
    let api =
        Api::start(&mutt_testkit::redis_url(), IngestConfig { api_keys: keys(), ..IngestConfig::default() }).await;

    assert_eq!(api.post(OPS_KEY, event()).await.0, 200);
    assert_eq!(api.post(OPS_KEY, event()).await.0, 200);
    assert_eq!(api.post(CI_KEY, event()).await.0, 200);
    // A refusal after the gate is logged in the span of its key.
    let (status, _) = api.post(CI_KEY, json!({"hostname": "h"})).await;
    assert_eq!(status, 400);
    // Wrong keys: same length as a real one (one character off), shorter, longer, the name
    // with the key, the name alone, empty.
    let same_len = format!("{}X", &OPS_KEY[..OPS_KEY.len() - 1]);
    for wrong in [same_len.as_str(), "ops", "x", &format!("{OPS_KEY}0"), &format!("ops:{OPS_KEY}"), ""] {
        let (status, body) = api.post(wrong, event()).await;
        assert_eq!(status, 401, "{wrong:?}");
        assert_eq!((&body["status"], &body["message"]), (&json!("error"), &json!("Unauthorized")), "{body}");
        assert!(body["correlation_id"].is_string(), "{body}");
    }

    let (_, metrics) = api.get("/metrics", None).await;
    for line in [
        r#"mutt_ingest_key_requests_total{key="ops",status="success"} 2"#,
        r#"mutt_ingest_key_requests_total{key="ci",status="success"} 1"#,
        r#"mutt_ingest_key_requests_total{key="ci",status="fail"} 1"#,
        r#"mutt_ingest_requests_total{status="fail",reason="auth"} 6"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let text = logs.text();
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let refused = lines
        .iter()
        .find(|l| l["fields"]["message"] == "events refused")
        .unwrap_or_else(|| panic!("no 'events refused' line in:\n{text}"));
    assert_eq!(refused["span"]["key"], "ci", "{refused}");
    assert!(lines.iter().any(|l| l["span"]["key"] == "ops"), "no line in the ops key's span:\n{text}");
    for secret in [OPS_KEY, CI_KEY] {
        assert!(!text.contains(secret) && !metrics.contains(secret), "a key reached the log or metrics");
    }
}

#[tokio::test]
async fn a_key_over_its_own_rate_gets_429_and_the_other_key_does_not() {
    let window = Duration::from_secs(60);
    let config = IngestConfig {
        api_keys: keys(),
        key_rate_limits: [("ops".to_owned(), RateLimit { limit: 3, window })].into(),
        ..IngestConfig::default()
    };
    let _ = logs();
    let api = Api::start(&mutt_testkit::redis_url(), config).await;
    for _ in 0..3 {
        assert_eq!(api.post(OPS_KEY, event()).await.0, 200);
    }
    let (status, body) = api.post(OPS_KEY, event()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    for _ in 0..5 {
        assert_eq!(api.post(CI_KEY, event()).await.0, 200, "ci has no limit of its own");
    }
    let (_, metrics) = api.get("/metrics", None).await;
    assert!(metrics.contains(r#"mutt_ingest_key_requests_total{key="ops",status="fail"} 1"#), "{metrics}");
    assert!(metrics.contains("mutt_ingest_rate_limit_hits_total 1"), "{metrics}");
}

#[tokio::test]
async fn health_without_a_key_names_no_error_while_redis_is_down() {
    let logs = logs();
    let mut server = mutt_testkit::RedisServer::start(false).unwrap();
    let api = Api::start(&server.url(), IngestConfig { api_keys: keys(), ..IngestConfig::default() }).await;
    let (status, body) = api.get("/health", None).await;
    assert_eq!(status, 200, "{body}");
    server.stop().unwrap();
    let (status, public) = api.get("/health", None).await;
    assert_eq!(status, 503, "{public}");
    let body: Value = serde_json::from_str(&public).unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["redis"], "disconnected");
    assert_eq!(body["error"], "unavailable", "no error text without a key: {public}");
    let (status, detailed) = api.get("/health", Some(CI_KEY)).await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&detailed).unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| e != "unavailable" && !e.is_empty()),
        "with a key the error text is shown: {detailed}"
    );
    let (status, wrong) = api.get("/health", Some("not-a-key")).await;
    assert_eq!(status, 503);
    assert_eq!(serde_json::from_str::<Value>(&wrong).unwrap()["error"], "unavailable", "{wrong}");
    let text = logs.text();
    assert!(text.contains("health check failed"), "the failure's detail goes to the log:\n{text}");
}
