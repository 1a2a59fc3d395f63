//! The management API's remaining surface: the `/api/docs` viewer from vendored assets, the
//! timestamp formats, `?api_key=` percent-decoded, the ingest-rate cache and the
//! `mutt_webui_*` metrics, worker heartbeats in `/status`, and one event's delivery outcome
//! from what the backends record (`/events/{event_id}`).

use chrono::{DateTime, Utc};
use mutt_core::{EventId, Secret};
use mutt_queue::dlq::Dlq;
use mutt_queue::{ConsumerConfig, QueueId, WorkerRole};
use mutt_store::AuditRecord;
use mutt_testapp::reqwest::Method;
use mutt_testapp::{ApiClient, BackendKind, Reply, Served, Site, TestBackend, both_backends, serve_web, spawn_app};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "surface-key";

/// The web role over `backend` with `config` (its key: [`KEY`] unless the config names one).
async fn serve(backend: &TestBackend, mut config: mutt_web::WebConfig) -> (ApiClient, Served) {
    if config.api_keys.is_empty() {
        config.api_keys = vec![Secret::new(KEY).into()];
    }
    let web = serve_web(backend, config, Default::default()).await;
    (ApiClient::new(web.base_url.clone(), Some(KEY)), web)
}

/// The `src="…"` and `href="…"` values of a page.
fn asset_urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("a closing quote");
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

#[tokio::test]
async fn the_api_viewer_loads_only_from_muttd() {
    let app = spawn_app(BackendKind::Embedded).await;
    let page = app.anonymous().get("/api/docs").await;
    assert_eq!(page.status, 200, "no key needed: {}", page.text);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text.contains("id=\"swagger-ui\""), "{}", page.text);
    let urls = asset_urls(&page.text);
    let scripts_and_styles: Vec<&String> = urls.iter().filter(|u| u.ends_with(".js") || u.ends_with(".css")).collect();
    assert!(scripts_and_styles.len() >= 3, "the viewer's script, its start script and its style: {urls:?}");
    for url in &urls {
        assert!(!url.contains("://") && !url.starts_with("//"), "{url} would leave muttd");
        // Relative to /api/docs.
        let path = format!("/api/{url}");
        let r = app.anonymous().get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text.is_empty(), "{path}");
    }
    let init = app.anonymous().get("/api/docs/init.js").await;
    assert!(!init.text.contains("http://") && !init.text.contains("https://"), "{}", init.text);
    assert!(init.text.contains("\"v2/openapi.json\""), "{}", init.text);
    assert!(init.text.contains("validatorUrl: null"), "no call to validator.swagger.io");
    let css = app.anonymous().get("/api/docs/swagger-ui.css").await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(!css.text.contains("@import"), "the style pulls in nothing");
    // The document the viewer loads, and a trailing slash sent back to the page.
    assert_eq!(app.anonymous().get("/api/v2/openapi.json").await.status, 200);
    let r = app.anonymous().request(Method::GET, "/api/docs/").send().await.unwrap();
    assert!(r.url().path() == "/api/docs", "redirected to the page: {}", r.url());
}

/// The viewer in headless Chromium (no internet here either): it renders the document, and
/// "Authorize" + "Try it out" sends the key typed in: `GET /api/v2/status` answers 200.
#[tokio::test]
async fn the_api_viewer_works_in_a_browser() {
    let Some(browser) = mutt_testkit::browser::Browser::start("the_api_viewer_works_in_a_browser").await else {
        return;
    };
    let app = spawn_app(BackendKind::Embedded).await;
    browser.goto(&format!("{}/api/docs", app.base_url)).await;
    browser.wait_for_text(".info .title", "MUTT management API").await;
    browser.find("[data-path='/api/v2/rules/test']").await;
    browser.click("button.authorize").await;
    browser.fill(".auth-container input", &app.api_key).await;
    browser.click(".auth-btn-wrapper button.authorize").await;
    browser.click(".auth-btn-wrapper button.btn-done").await;
    let op = "#operations-operations-status";
    browser.click(&format!("{op} .opblock-summary")).await;
    browser.click(&format!("{op} .try-out__btn")).await;
    browser.click(&format!("{op} .execute")).await;
    let status =
        browser.wait_for_text(&format!("{op} .live-responses-table tr.response .response-col_status"), "200").await;
    assert!(status.contains("200"), "{status}");
    browser.stop().await;
}

const RFC1123: &str = "%a, %d %b %Y %H:%M:%S GMT";

fn audit_record(host: &str, forwarded: bool, rule: i32) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: Utc::now() - chrono::Duration::seconds(30),
        hostname: host.into(),
        matched_rule_id: rule,
        handling_decision: if forwarded { "Page_and_ticket" } else { "Ignore" }.into(),
        forwarded_to_moog: forwarded,
        raw_message: json!({"hostname": host, "timestamp": "2026-01-01T00:00:00Z"}).to_string(),
        silenced_by: None,
        flap_suppressed: false,
    }
}

fn rule_body(text: &str) -> Value {
    json!({"match_string": text, "match_type": "contains", "priority": 10, "prod_handling": "Page_and_ticket",
           "dev_handling": "Ticket_only", "team_assignment": "NETO"})
}

async fn timestamps_rfc3339_by_default_rfc1123_by_setting(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let id = app.client.post("/api/v2/rules", &rule_body("LINK")).await.body["id"].as_i64().unwrap() as i32;
    app.backend.store.write_audit(&[audit_record("h1", true, id)]).await.unwrap();
    let config = mutt_web::WebConfig { timestamp_format: mutt_web::TimestampFormat::Rfc1123, ..Default::default() };
    let (gmt, _stop) = serve(&app.backend, config).await;

    let (a, b) = (app.client.get("/api/v2/audit").await, gmt.get("/api/v1/audit").await);
    let changed = a.body["logs"][0]["changed_at"].as_str().expect("changed_at").to_owned();
    let t = DateTime::parse_from_rfc3339(&changed).expect("RFC 3339 by default");
    assert!(changed.ends_with('Z'), "UTC: {changed}");
    let old = b.body["logs"][0]["changed_at"].as_str().expect("changed_at");
    assert_eq!(old, t.with_timezone(&Utc).format(RFC1123).to_string(), "the same second, the original's format");
    assert_eq!(a.body["logs"][0]["new_values"], b.body["logs"][0]["new_values"], "nothing else changes");

    let (a, b) = (app.client.get("/api/v2/audit-logs").await, gmt.get("/api/v2/audit-logs").await);
    let at = a.body["logs"][0]["event_timestamp"].as_str().unwrap();
    assert!(DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'), "{at}");
    let bt = b.body["logs"][0]["event_timestamp"].as_str().unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(bt, RFC1123).is_ok(), "{bt}");
    assert_eq!(a.body["logs"][0]["raw_message"], b.body["logs"][0]["raw_message"], "stored text untouched");
    let rc = gmt.get("/api/v2/config-audit").await;
    assert!(rc.body["changes"][0]["changed_at"].as_str().unwrap().ends_with(" GMT"), "{}", rc.text);
}

#[tokio::test]
async fn api_key_in_the_query_is_percent_decoded() {
    let site = Site::fresh(BackendKind::Embedded).await;
    let backend = site.open().await;
    let config = mutt_web::WebConfig {
        api_keys: vec![Secret::new("ops:k+y%&z=1").into(), Secret::new("plain:a+b").into()],
        ..Default::default()
    };
    let (client, _stop) = serve(&backend, config).await;
    let anon = client.with_key(None);
    for (query, status) in [
        ("api_key=k%2By%25%26z%3D1", 200),
        ("api_key=a%2Bb", 200),
        // A literal `+` pasted by hand (the original took the value verbatim).
        ("api_key=a+b", 200),
        ("x=1&api_key=k%2By%25%26z%3D1&y=2", 200),
        ("api_key=k+y%25%26z%3D1", 401),
        ("api_key=k%2By%25", 401),
        ("api_key=", 401),
    ] {
        let r = anon.get(&format!("/api/v2/rules?{query}")).await;
        assert_eq!(r.status, status, "{query}: {}", r.text);
        if status == 401 {
            assert!(r.body["correlation_id"].as_str().is_some_and(|c| !c.is_empty()));
        }
    }
    // Who made a change is the key's name, also through the query.
    let r =
        Reply::from(anon.request(Method::POST, "/api/v2/rules?api_key=k%2By%25%26z%3D1").json(&rule_body("X"))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let audit = client.with_key(Some("a+b")).get("/api/v2/config-audit").await;
    assert_eq!(audit.body["changes"][0]["changed_by"], "webui_api:ops", "{}", audit.text);
}

/// A sample's value in Prometheus text, 0 when absent.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok()).unwrap_or(0.0)
}

async fn ingest_rates_are_cached_and_every_counted_endpoint_is_counted(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let ttl = Duration::from_millis(1500);
    let config = mutt_web::WebConfig {
        metrics_cache_ttl: ttl,
        slo: Some(mutt_slo::SloSource::Metrics(Vec::new())),
        ..Default::default()
    };
    let (client, _stop) = serve(&app.backend, config).await;
    let first = client.get("/api/v2/metrics").await;
    assert_eq!(first.body["summary"]["current_rate_1m"], 0.0, "{}", first.text);
    let batch: Vec<Vec<u8>> = (0..12).map(|i| json!({"message": i}).to_string().into_bytes()).collect();
    app.backend.queue.push_ingest(&batch, Utc::now()).await.unwrap();
    let cached = client.get("/api/v1/metrics").await;
    assert_eq!(cached.body, first.body, "answered from the cache within METRICS_CACHE_TTL");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let fresh = client.get("/api/v2/metrics").await;
    assert_eq!(fresh.body["summary"]["current_rate_1m"], 12.0, "{}", fresh.text);

    client.get("/api/v2/slo").await;
    client.get("/api/v2/audit-logs").await;
    client.get("/api/v2/audit").await;
    assert_eq!(client.get("/api/v2/audit-logs?page=x").await.status, 400);
    let text = client.get("/metrics").await.text;
    let count = |endpoint: &str, status: &str| {
        sample(&text, &format!("mutt_webui_api_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}"))
    };
    assert_eq!((count("metrics", "success"), count("metrics", "success_cached")), (2.0, 1.0), "{text}");
    assert_eq!(count("metrics", "fail_redis"), 0.0, "the series exists: {text}");
    assert!(text.contains("mutt_webui_api_requests_total{endpoint=\"metrics\",status=\"fail_unknown\"} 0"));
    assert_eq!(count("slo", "success"), 1.0, "{text}");
    assert_eq!((count("audit", "success"), count("audit", "error_invalid")), (2.0, 1.0), "{text}");
    assert_eq!(sample(&text, "mutt_webui_redis_scan_latency_seconds_count"), 2.0, "two reads of the counters");
    assert_eq!(sample(&text, "mutt_webui_api_latency_seconds_count{endpoint=\"metrics\"}"), 3.0, "{text}");
}

async fn status_dates_the_workers_heartbeats(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let pod = mutt_core::PodName::parse("alerter-status1").unwrap();
    let mut config = ConsumerConfig::new(WorkerRole::Alerter, pod);
    config.heartbeat_ttl = Duration::from_secs(30);
    let mut consumer = app.backend.queue.consumer(config).await.expect("a consumer (its heartbeat written at start)");
    app.backend.queue.push(QueueId::Ingest, &[b"{\"message\": \"x\"}".to_vec()]).await.unwrap();
    let _lease = consumer.lease(10, Duration::from_secs(1)).await.unwrap().expect("a lease");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = app.client.get("/api/v2/status").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let w = r.body["workers"].as_array().unwrap().iter().find(|w| w["pod"] == "alerter-status1").cloned();
    let w = w.unwrap_or_else(|| panic!("the worker is listed: {}", r.text));
    assert_eq!((&w["role"], &w["alive"], &w["depth"]), (&json!("alerter"), &json!(true), &json!(1)), "{w}");
    let age = w["heartbeat_age_secs"].as_f64().expect("an age");
    assert!((1.0..10.0).contains(&age), "written at start, about 1.2 s ago: {w}");
    let left = w["heartbeat_expires_in_secs"].as_f64().unwrap();
    assert!((age + left - 30.0).abs() < 1.0, "age and time left make the TTL: {w}");
    assert_eq!(r.body["delayed_retries"].as_array().unwrap().len(), 2, "{}", r.text);
    assert!(r.body["circuit_breaker"]["consecutive_failures"].is_u64());
    consumer.release().await.unwrap();
    consumer.shutdown().await.unwrap();
}

async fn push_dead_letter(app: &mutt_testapp::TestApp, dlq: Dlq, body: Value) {
    app.backend.queue.dead_letters().dlq_push(dlq, &[body.to_string().into_bytes()]).await.unwrap();
}

async fn an_events_delivery_outcome_from_the_records(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let rule = app.client.post("/api/v2/rules", &rule_body("LINK")).await.body["id"].as_i64().unwrap() as i32;
    let (delivered, rejected, waiting, ignored) = (
        audit_record("h1", true, rule),
        audit_record("h2", true, rule),
        audit_record("h3", true, rule),
        audit_record("h4", false, rule),
    );
    app.backend
        .store
        .write_audit(&[delivered.clone(), rejected.clone(), waiting.clone(), ignored.clone()])
        .await
        .unwrap();
    let before = Utc::now();
    app.backend
        .coordination
        .mark_delivered(&[delivered.event_id.to_string()], Duration::from_secs(3600))
        .await
        .unwrap();
    let alert = |id: &EventId, reason: &str| {
        json!({"message_body": "m", "raw_json": {}, "hostname": "h2", "_event_id": id.to_string(),
               "_dlq_reason": reason, "_dlq_error": "HTTP 400: bad class", "failed_at": Utc::now().to_rfc3339(),
               "_moog_retry_count": 0})
    };
    push_dead_letter(&app, Dlq::Moog, alert(&rejected.event_id, "rejected_by_receiver")).await;
    let poison = EventId::new();
    push_dead_letter(
        &app,
        Dlq::Alerter,
        json!({"hostname": "h5", "message": "m", "_event_id": poison.to_string(),
        "_dlq_reason": "audit_rejected", "_dlq_error": "hostname too long", "failed_at": Utc::now().to_rfc3339()}),
    )
    .await;

    let get = |id: String| {
        let client = app.client.clone();
        async move { client.get(&format!("/api/v2/events/{id}")).await }
    };
    let r = get(delivered.event_id.to_string()).await;
    assert_eq!((r.status, &r.body["delivery"]["state"]), (200, &json!("delivered")), "{}", r.text);
    assert_eq!(r.body["audit"]["hostname"], "h1");
    let at = DateTime::parse_from_rfc3339(r.body["delivery"]["delivered_at"].as_str().unwrap()).unwrap();
    assert!((at.with_timezone(&Utc) - before).num_milliseconds().abs() < 2000, "{}", r.text);
    assert_eq!(r.body["delivery"]["dlq_search"]["moog"]["complete"], true, "{}", r.text);

    let r = get(rejected.event_id.to_string()).await;
    assert_eq!(r.body["delivery"]["state"], "dead_lettered", "{}", r.text);
    let dl = &r.body["delivery"]["dead_letters"][0];
    assert_eq!(
        (&dl["dlq"], &dl["reason"], &dl["error"]),
        (&json!("moog"), &json!("rejected_by_receiver"), &json!("HTTP 400: bad class"))
    );
    assert_eq!(r.body["delivery"]["delivered_at"], Value::Null);

    assert_eq!(get(waiting.event_id.to_string()).await.body["delivery"]["state"], "pending");
    let r = get(ignored.event_id.to_string()).await;
    assert_eq!(r.body["delivery"]["state"], "not_forwarded", "{}", r.text);
    assert!(r.body["delivery"]["detail"].as_str().unwrap().contains("Ignore"));
    let r = get(poison.to_string()).await;
    assert_eq!(
        (r.status, &r.body["audit"], &r.body["delivery"]["state"]),
        (200, &Value::Null, &json!("dead_lettered")),
        "{}",
        r.text
    );
    assert_eq!(r.body["delivery"]["dead_letters"][0]["dlq"], "alerter");

    assert_eq!(get(EventId::new().to_string()).await.status, 404);
    let r = get("not-a-uuid".into()).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("event_id")));
    // In the original's format when asked for.
    let config = mutt_web::WebConfig { timestamp_format: mutt_web::TimestampFormat::Rfc1123, ..Default::default() };
    let (gmt, _stop) = serve(&app.backend, config).await;
    let r = gmt.get(&format!("/api/v2/events/{}", delivered.event_id)).await;
    assert!(r.body["delivery"]["delivered_at"].as_str().unwrap().ends_with(" GMT"), "{}", r.text);
    let r = gmt.get(&format!("/api/v2/events/{}", rejected.event_id)).await;
    let failed_at = r.body["delivery"]["dead_letters"][0]["failed_at"].as_str().unwrap();
    assert!(failed_at.ends_with(" GMT"), "{}", r.text);
}

both_backends!(
    timestamps_rfc3339_by_default_rfc1123_by_setting,
    ingest_rates_are_cached_and_every_counted_endpoint_is_counted,
    status_dates_the_workers_heartbeats,
    an_events_delivery_outcome_from_the_records,
);
