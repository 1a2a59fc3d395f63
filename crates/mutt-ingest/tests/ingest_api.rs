//! The ingest API against a real redis-server: every row of the response table (spec §2.3),
//! batches, limits, and malformed bodies that must each get a 4xx JSON error with nothing queued.

use mutt_core::Secret;
use mutt_ingest::{IngestConfig, RateLimit};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Queue, QueueId};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KEY: &str = "ingest-test-key";

struct Api {
    base: String,
    queue: RedisQueue,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    async fn start(config: IngestConfig) -> Self {
        Self::start_on(&mutt_testkit::redis_url(), config).await
    }

    async fn start_on(redis: &str, config: IngestConfig) -> Self {
        Self::start_limited(redis, config, mutt_service::HttpLimits::default()).await
    }

    async fn start_limited(redis: &str, config: IngestConfig, limits: mutt_service::HttpLimits) -> Self {
        let redis = RedisConfig::single(redis.to_owned(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
        let queue = RedisQueue::connect(&redis).await.unwrap();
        let router =
            mutt_ingest::router(Arc::new(queue.clone()), Arc::new(queue.clone()), config, mutt_service::Metrics::new())
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(mutt_service::serve_with(listener, router, stop.clone(), limits));
        Self { base, queue, http: reqwest::Client::new(), _stop: stop.drop_guard() }
    }

    async fn send(
        &self,
        path: &str,
        content_type: Option<&str>,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("JSON body for {status}: {bytes:?}"));
        Reply { status, headers, body }
    }

    async fn post(&self, body: Value) -> Reply {
        self.send("/ingest", Some("application/json"), Some(KEY), body.to_string()).await
    }

    async fn depth(&self) -> u64 {
        self.queue.depth(QueueId::Ingest).await.unwrap()
    }

    async fn queued(&self) -> Vec<Value> {
        let mut c = self.queue.connection();
        let items: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(&self.queue.keys().ingest_queue).arg(0).arg(-1).query_async(&mut c).await.unwrap();
        items.iter().rev().map(|b| serde_json::from_slice(b).unwrap()).collect()
    }
}

fn config() -> IngestConfig {
    IngestConfig {
        api_keys: vec![Secret::new(KEY).into(), Secret::new("second-key").into()],
        ..IngestConfig::default()
    }
}

fn event() -> Value {
    json!({"hostname": "router1", "message": "LINK-DOWN on Gi0/1", "timestamp": "2025-11-08T12:00:00Z"})
}

fn assert_error(r: &Reply, status: u16, message_starts: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["status"], "error", "{}", r.body);
    let msg = r.body["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with(message_starts), "message {msg:?} should start with {message_starts:?}");
    assert!(r.body["correlation_id"].as_str().is_some_and(|c| !c.is_empty()), "{}", r.body);
}

#[tokio::test]
async fn queued_event_gets_ids_and_exact_body() {
    let api = Api::start(config()).await;
    let r = api.post(event()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["queue_depth"], 1);
    let cid = r.body["correlation_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(cid).unwrap().get_version_num(), 7, "UUIDv7 correlation id");
    let queued = api.queued().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["_correlation_id"], cid);
    assert!(uuid::Uuid::parse_str(queued[0]["_event_id"].as_str().unwrap()).is_ok());
    assert_eq!(queued[0]["message"], "LINK-DOWN on Gi0/1");
}

#[tokio::test]
async fn client_correlation_id_is_kept_and_second_key_works() {
    let api = Api::start(config()).await;
    let resp = api
        .http
        .post(format!("{}/api/v2/ingest", api.base))
        .header("x-api-key", "second-key")
        .header("x-correlation-id", "abc-123")
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-correlation-id"], "abc-123");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["correlation_id"], "abc-123");
    assert_eq!(api.queued().await[0]["_correlation_id"], "abc-123");
}

#[tokio::test]
async fn v1_alias_is_marked_deprecated() {
    let api = Api::start(config()).await;
    let r = api.send("/api/v1/ingest", Some("application/json"), Some(KEY), event().to_string()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-api-deprecated"], "true");
}

#[tokio::test]
async fn auth_failures_are_401_before_routing() {
    let api = Api::start(config()).await;
    for key in [None, Some(""), Some("wrong"), Some("ingest-test-ke")] {
        let r = api.send("/ingest", Some("application/json"), key, event().to_string()).await;
        assert_error(&r, 401, "Unauthorized");
    }
    // Unknown paths without a key are 401 too (the gate runs before routing).
    let r = api.send("/nope", Some("application/json"), None, "{}").await;
    assert_error(&r, 401, "Unauthorized");
    assert_eq!(api.depth().await, 0);
    // Public paths need no key.
    for path in ["/health", "/live", "/"] {
        let resp = api.http.get(format!("{}{path}", api.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let metrics = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mutt_ingest_requests_total{status=\"fail\",reason=\"auth\"} 5"), "{metrics}");
}

#[tokio::test]
async fn admin_config_needs_the_key_and_hides_secrets() {
    let api = Api::start(config()).await;
    let resp = api.http.get(format!("{}/admin/config", api.base)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = api.http.get(format!("{}/admin/config", api.base)).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(KEY) && !text.contains("second-key"), "{text}");
    assert!(text.contains("\"api_keys_configured\":2"), "{text}");
}

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after() {
    let cfg = IngestConfig { rate_limit: Some(RateLimit { limit: 2, window: Duration::from_secs(30) }), ..config() };
    let api = Api::start(cfg).await;
    assert_eq!(api.post(event()).await.status, 200);
    assert_eq!(api.post(event()).await.status, 200);
    let r = api.post(event()).await;
    assert_error(&r, 429, "Too Many Requests - rate limit exceeded");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(r.body["retry_after"], retry);
    assert_eq!(api.depth().await, 2);
}

#[tokio::test]
async fn missing_and_empty_fields_are_400() {
    let api = Api::start(config()).await;
    let r = api.post(json!({"hostname": "h"})).await;
    assert_error(&r, 400, "Missing required fields: ['message', 'timestamp']");
    let r = api.post(json!({"hostname": "", "message": "m", "timestamp": "2025-11-08T12:00:00Z"})).await;
    assert_error(&r, 400, "Missing required fields: ['hostname']");
    let r = api.post(json!({"hostname": "h", "message": null, "timestamp": "2025-11-08T12:00:00Z"})).await;
    assert_error(&r, 400, "Missing required fields: ['message']");
    assert_eq!(api.depth().await, 0);
}

#[tokio::test]
async fn queue_full_is_503_with_depth_and_limit() {
    let api = Api::start(IngestConfig { max_queue_size: 2, ..config() }).await;
    assert_eq!(api.post(event()).await.status, 200);
    assert_eq!(api.post(event()).await.status, 200);
    let r = api.post(event()).await;
    assert_error(&r, 503, "Service Unavailable - queue full");
    assert_eq!(r.body["queue_depth"], 2);
    assert_eq!(r.body["queue_limit"], 2);
    assert_eq!(api.depth().await, 2);
}

#[tokio::test]
async fn redis_down_is_503_and_recovers() {
    let mut server = mutt_testkit::RedisServer::start(false).unwrap();
    let api = Api::start_on(&server.url(), IngestConfig { rate_limit: None, ..config() }).await;
    assert_eq!(api.post(event()).await.status, 200);
    server.stop().unwrap();
    let r = api.post(event()).await;
    assert_error(&r, 503, "Service Unavailable - Redis error");
    let health = api.http.get(format!("{}/health", api.base)).send().await.unwrap();
    assert_eq!(health.status(), 503);
    server.restart().unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if api.post(event()).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "ingest works again after Redis is back");
}

#[tokio::test]
async fn batches_array_and_ndjson() {
    let api = Api::start(config()).await;
    let arr = json!([event(), event(), event()]);
    let r = api.post(arr).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["count"], 3);
    let nd = format!("{}\n{}\n", event(), event());
    let r = api.send("/ingest", Some("application/x-ndjson"), Some(KEY), nd).await;
    assert_eq!(r.body["count"], 2);
    // rsyslog omhttp sends newline-separated batches as application/json.
    let nd = format!("{}\n{}", event(), event());
    let r = api.send("/ingest", Some("application/json"), Some(KEY), nd).await;
    assert_eq!(r.body["count"], 2);
    let queued = api.queued().await;
    assert_eq!(queued.len(), 7);
    let ids: std::collections::HashSet<&str> = queued.iter().map(|e| e["_event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 7, "every event gets its own id");
}

#[tokio::test]
async fn a_bad_element_rejects_the_whole_batch_with_its_index() {
    let api = Api::start(config()).await;
    let mut missing = event();
    missing.as_object_mut().unwrap().remove("message");
    let r = api.post(json!([event(), missing, 7, event()])).await;
    assert_error(&r, 400, "Invalid batch");
    let idx: Vec<u64> = r.body["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![2], "shape errors are reported first");
    let r = api.post(json!([event(), missing, event()])).await;
    assert_error(&r, 400, "Invalid batch");
    assert_eq!(r.body["errors"][0]["index"], 1);
    assert!(r.body["errors"][0]["reason"].as_str().unwrap().contains("message"));
    let nd = format!("{}\nnot json\n{}\n", event(), event());
    let r = api.send("/ingest", Some("application/x-ndjson"), Some(KEY), nd).await;
    assert_error(&r, 400, "Invalid batch");
    assert_eq!(r.body["errors"][0]["index"], 1);
    assert_eq!(api.depth().await, 0, "nothing of a rejected batch is queued");
}

#[tokio::test]
async fn too_large_is_413() {
    let api = Api::start(IngestConfig { max_body_bytes: 10_000, max_batch_events: 5, ..config() }).await;
    let big = json!({"hostname": "h", "message": "x".repeat(20_000), "timestamp": "2025-11-08T12:00:00Z"});
    let r = api.post(big).await;
    assert_error(&r, 413, "Payload Too Large");
    // Without a Content-Length (chunked), the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"hostname\":\"".to_vec()), Ok(vec![b'a'; 20_000]), Ok(b"\"}".to_vec())];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = api.send("/ingest", Some("application/json"), Some(KEY), body).await;
    assert_error(&r, 413, "Payload Too Large");
    let r = api.post(Value::Array(vec![event(); 6])).await;
    assert_error(&r, 413, "Payload Too Large");
    assert_eq!(api.depth().await, 0);
}

#[tokio::test]
async fn normalisation_for_rules() {
    let api = Api::start(config()).await;
    let r = api
        .post(json!({"hostname": "h", "message": "m", "timestamp": "Nov  8 12:00:00", "severity": "warning", "trap_oid": "1.3.6"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.post(json!({"hostname": "h", "message": "m", "timestamp": "2025-11-08T13:00:00+01:00", "syslog_severity": "Error"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let q = api.queued().await;
    assert_eq!(q[0]["syslog_severity"], 4);
    assert_eq!(q[0]["severity"], "warning");
    assert!(q[0]["timestamp"].as_str().unwrap().ends_with("-11-08T12:00:00Z"));
    assert_eq!(q[0]["timestamp_original"], "Nov  8 12:00:00");
    assert_eq!(q[0]["trap_oid"], "1.3.6", "OIDs are left as sent");
    assert_eq!(q[1]["syslog_severity"], 3);
    assert_eq!(q[1]["syslog_severity_name"], "Error");
    assert_eq!(q[1]["timestamp"], "2025-11-08T12:00:00Z");
}

/// 30 malformed requests: each gets a 4xx JSON error naming the problem, nothing is queued, and
/// the server keeps answering.
#[tokio::test]
async fn malformed_bodies_get_4xx_and_nothing_is_queued() {
    let api = Api::start(IngestConfig { rate_limit: None, max_body_bytes: 1024 * 1024, ..config() }).await;
    let deep_arrays = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    let ok = event().to_string();
    let mut bad_utf8 = br#"{"hostname":"h","message":""#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(br#"","timestamp":"2025-11-08T12:00:00Z"}"#);
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("truncated object", Some("application/json"), br#"{"hostname":"h","message":"#.to_vec(), 400),
        ("lone brace", Some("application/json"), b"{".to_vec(), 400),
        ("empty body", Some("application/json"), b"".to_vec(), 400),
        ("whitespace body", Some("application/json"), b"  \n ".to_vec(), 400),
        ("null", Some("application/json"), b"null".to_vec(), 400),
        ("number", Some("application/json"), b"42".to_vec(), 400),
        ("string", Some("application/json"), b"\"text\"".to_vec(), 400),
        ("boolean", Some("application/json"), b"true".to_vec(), 400),
        ("array of scalars", Some("application/json"), b"[1,2]".to_vec(), 400),
        ("empty array", Some("application/json"), b"[]".to_vec(), 400),
        ("deeply nested arrays", Some("application/json"), deep_arrays.into_bytes(), 400),
        ("deeply nested objects", Some("application/json"), deep_objects.into_bytes(), 400),
        ("invalid UTF-8", Some("application/json"), bad_utf8, 400),
        (
            "huge string over the limit",
            Some("application/json"),
            format!("{{\"message\":\"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            413,
        ),
        ("text/plain", Some("text/plain"), ok.clone().into_bytes(), 400),
        ("no content type", None, ok.clone().into_bytes(), 400),
        ("xml content type", Some("application/xml"), b"<event/>".to_vec(), 400),
        ("form content type", Some("application/x-www-form-urlencoded"), b"a=1".to_vec(), 400),
        ("ndjson bad line", Some("application/x-ndjson"), format!("{ok}\n{{bad\n").into_bytes(), 400),
        ("ndjson only blank lines", Some("application/x-ndjson"), b"\n\n\r\n".to_vec(), 400),
        ("trailing garbage", Some("application/json"), format!("{ok} xyz").into_bytes(), 400),
        (
            "hostname is a number",
            Some("application/json"),
            br#"{"hostname":5,"message":"m","timestamp":"2025-11-08T12:00:00Z"}"#.to_vec(),
            400,
        ),
        (
            "message is an object",
            Some("application/json"),
            br#"{"hostname":"h","message":{"a":1},"timestamp":"2025-11-08T12:00:00Z"}"#.to_vec(),
            400,
        ),
        (
            "timestamp is a number",
            Some("application/json"),
            br#"{"hostname":"h","message":"m","timestamp":1700000000}"#.to_vec(),
            400,
        ),
        (
            "timestamp is text",
            Some("application/json"),
            br#"{"hostname":"h","message":"m","timestamp":"yesterday"}"#.to_vec(),
            400,
        ),
        (
            "severity out of range",
            Some("application/json"),
            br#"{"hostname":"h","message":"m","timestamp":"2025-11-08T12:00:00Z","syslog_severity":12}"#.to_vec(),
            400,
        ),
        (
            "NUL in hostname",
            Some("application/json"),
            br#"{"hostname":"a\u0000b","message":"m","timestamp":"2025-11-08T12:00:00Z"}"#.to_vec(),
            400,
        ),
        (
            "hostname too long",
            Some("application/json"),
            format!(r#"{{"hostname":"{}","message":"m","timestamp":"2025-11-08T12:00:00Z"}}"#, "h".repeat(300))
                .into_bytes(),
            400,
        ),
        (
            "number out of range",
            Some("application/json"),
            br#"{"hostname":"h","message":"m","timestamp":"2025-11-08T12:00:00Z","x":1e999}"#.to_vec(),
            400,
        ),
        (
            "lone surrogate escape",
            Some("application/json"),
            br#"{"hostname":"h","message":"\ud800","timestamp":"2025-11-08T12:00:00Z"}"#.to_vec(),
            400,
        ),
        ("UTF-8 BOM", Some("application/json"), [b"\xef\xbb\xbf".as_slice(), ok.as_bytes()].concat(), 400),
        ("concatenated objects", Some("application/json"), format!("{ok}{ok}").into_bytes(), 400),
    ];
    assert!(cases.len() >= 25);
    for (name, ct, body, want) in cases {
        let r = api.send("/ingest", ct, Some(KEY), body).await;
        assert_eq!(r.status, want, "{name}: {}", r.body);
        assert_eq!(r.body["status"], "error", "{name}");
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: a message names the problem");
        assert_eq!(api.depth().await, 0, "{name}: nothing queued");
    }
    // Still serving.
    assert_eq!(api.post(event()).await.status, 200);
}

#[tokio::test]
async fn an_event_over_max_event_bytes_is_413_alone_and_a_named_400_in_a_batch() {
    let api = Api::start(IngestConfig { max_event_bytes: 2_000, ..config() }).await;
    let big = json!({"hostname": "h", "message": "x".repeat(3_000), "timestamp": "2025-11-08T12:00:00Z"});
    let r = api.post(big.clone()).await;
    assert_error(&r, 413, "Payload Too Large: the event is");
    assert_eq!(r.body["limit_bytes"], 2_000, "{}", r.body);
    assert!(r.body["event_bytes"].as_u64().unwrap() > 3_000, "{}", r.body);
    let r = api.post(json!([event(), big, event()])).await;
    assert_error(&r, 400, "Invalid batch: 1 element(s) rejected");
    assert_eq!(r.body["errors"][0]["index"], 1);
    let reason = r.body["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("limit of 2000 bytes per event (max_event_bytes)"), "{reason}");
    assert_eq!(api.depth().await, 0);
    // Just under the limit is queued.
    assert_eq!(api.post(event()).await.status, 200);
}

/// A 5 MiB batch of millions of bad elements: the 400 lists 100 of them and counts the rest,
/// so the answer stays small however many there are.
#[tokio::test]
async fn a_malformed_5_mib_batch_lists_100_errors_and_counts_the_rest() {
    let api = Api::start(IngestConfig { rate_limit: None, max_body_bytes: 6 << 20, ..config() }).await;
    let n = 5 * 1024 * 1024 / 2;
    let mut body = String::with_capacity(2 * n + 2);
    body.push('[');
    body.push_str(&"1,".repeat(n - 1));
    body.push_str("1]");
    let resp = api
        .http
        .post(format!("{}/ingest", api.base))
        .header("content-type", "application/json")
        .header("x-api-key", KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.len() < 16 * 1024, "the 400 body is {} bytes", bytes.len());
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["errors"].as_array().unwrap().len(), 100);
    assert_eq!(body["error_count"], n);
    assert_eq!(body["errors_not_listed"], n - 100);
    assert!(body["message"].as_str().unwrap().starts_with(&format!("Invalid batch: {n} element(s) rejected")));
    // NDJSON of a million broken lines: the same.
    let nd = "x\n".repeat(1_000_000);
    let r = api.send("/ingest", Some("application/x-ndjson"), Some(KEY), nd).await;
    assert_error(&r, 400, "Invalid batch: 1000000 element(s) rejected");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
    // Valid objects past max_batch_events: 413 with the real count.
    let many = format!("[{}{{}}]", "{},".repeat(199_999));
    let r = api.send("/ingest", Some("application/json"), Some(KEY), many).await;
    assert_error(&r, 413, "Payload Too Large: 200000 events in one batch, at most 10000");
    assert_eq!(api.depth().await, 0);
}

#[tokio::test]
async fn a_body_sent_slowly_gets_408() {
    let limits = mutt_service::HttpLimits { body_read_timeout: Duration::from_millis(500), ..Default::default() };
    let api = Api::start_limited(&mutt_testkit::redis_url(), config(), limits).await;
    let chunks = futures_util::stream::unfold(0, |i| async move {
        (i < 40).then_some(())?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, std::io::Error>(b" ".to_vec()), i + 1))
    });
    let started = std::time::Instant::now();
    let r = api.send("/ingest", Some("application/json"), Some(KEY), reqwest::Body::wrap_stream(chunks)).await;
    assert_error(&r, 408, "Request Timeout: the request body was not received within 0.5 s");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(api.post(event()).await.status, 200, "a normal request after it is served");
}
