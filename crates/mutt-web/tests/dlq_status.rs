//! The v2-only operations routes on both backends: the DLQ toolbox (list, entries with
//! filters, replay, park, purge with its confirmation) and `/status`.

use chrono::Utc;
use mutt_queue::QueueId;
use mutt_queue::dlq::Dlq;
use mutt_testapp::{BackendKind, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

async fn dead_letter(app: &TestApp, dlq: Dlq, n: usize, host: &str, reason: &str) {
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            json!({"hostname": host, "message": format!("m{i}"), "_dlq_reason": reason, "_dlq_error": "boom",
                   "failed_at": Utc::now().to_rfc3339()})
            .to_string()
            .into_bytes()
        })
        .collect();
    app.backend.queue.dead_letters().dlq_push(dlq, &bodies).await.unwrap();
}

/// Entries moved to the destination whose name ends with `suffix` (names carry the site's
/// key prefix on Redis).
fn moved(report: &Value, suffix: &str) -> Option<u64> {
    report["moved"].as_object()?.iter().find(|(k, _)| k.ends_with(suffix))?.1.as_u64()
}

fn depth_of(list: &Value, dlq: &str) -> u64 {
    list["dlqs"].as_array().unwrap().iter().find(|d| d["dlq"] == dlq).unwrap()["depth"].as_u64().unwrap()
}

async fn dlq_toolbox(kind: BackendKind) {
    let app = spawn_app(kind).await;
    dead_letter(&app, Dlq::Alerter, 3, "h1", "retries_exhausted").await;
    dead_letter(&app, Dlq::Alerter, 2, "h2", "shed").await;
    let r = app.client.get("/api/v2/dlq").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(depth_of(&r.body, "alerter"), 5);
    assert_eq!(r.body["dlqs"][0]["reasons"], json!({"retries_exhausted": 3, "shed": 2}), "{}", r.text);
    assert_eq!(app.client.get("/api/v1/dlq").await.status, 404, "v2 only");

    let r = app.client.get("/api/v2/dlq/alerter?host=h2").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["entries"][0]["hostname"], "h2");
    let r = app.client.get("/api/v2/dlq/alerter?limit=2").await;
    assert_eq!((r.body["entries"].as_array().unwrap().len(), &r.body["more"]), (2, &json!(true)));
    assert_eq!(app.client.get("/api/v2/dlq/nowhere").await.status, 404);
    let r = app.client.get("/api/v2/dlq/alerter?limit=x").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("limit")), "{}", r.text);

    // Replay the h1 entries: back on the ingest queue, gone from the DLQ.
    let r = app.client.post("/api/v2/dlq/alerter/replay", &json!({"host": "h1", "dry_run": true})).await;
    assert_eq!((r.status, moved(&r.body, ":ingest_queue")), (200, Some(3)), "{}", r.text);
    assert_eq!(app.backend.queue.depth(QueueId::Ingest).await.unwrap(), 0, "a dry run moves nothing");
    let r = app.client.post("/api/v2/dlq/alerter/replay", &json!({"host": "h1", "comment": "fixed"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.backend.queue.depth(QueueId::Ingest).await.unwrap(), 3);

    // Park one, then purge the rest only with the confirmation.
    let r = app.client.post("/api/v2/dlq/alerter/park", &json!({"limit": 1, "park_reason": "poison"})).await;
    assert_eq!((r.status, moved(&r.body, ":dlq:dead")), (200, Some(1)), "{}", r.text);
    let r = app.client.post("/api/v2/dlq/alerter/purge", &json!({})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("confirm")), "{}", r.text);
    let r = app.client.post("/api/v2/dlq/alerter/purge", &json!({"confirm": "moog"})).await;
    assert_eq!(r.status, 400, "the wrong name does not confirm");
    let r = app.client.post("/api/v2/dlq/alerter/purge", &json!({"confirm": "alerter"})).await;
    assert_eq!((r.status, moved(&r.body, "deleted")), (200, Some(1)), "{}", r.text);
    let list = app.client.get("/api/v2/dlq").await.body;
    assert_eq!((depth_of(&list, "alerter"), depth_of(&list, "dead")), (0, 1));
    let r = app.client.post("/api/v2/dlq/dead/park", &json!({})).await;
    assert_eq!(r.status, 409);
    let r = app.client.post("/api/v2/dlq/alerter/replay", &json!({"limit": "all"})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("limit")), "{}", r.text);

    // Replay, park and purge are audited; the dry run is not.
    let r = app.client.get("/api/v2/config-audit?table_name=dlq").await;
    let ops: Vec<&str> =
        r.body["changes"].as_array().unwrap().iter().map(|c| c["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["DELETE", "UPDATE", "UPDATE"], "{}", r.text);
    assert_eq!(r.body["changes"][2]["reason"], "fixed");
}

async fn status_shows_depths_and_the_breaker(kind: BackendKind) {
    let app = spawn_app(kind).await;
    app.backend.queue.push(QueueId::Ingest, &[b"{}".to_vec(), b"{}".to_vec()]).await.unwrap();
    dead_letter(&app, Dlq::Moog, 1, "h", "retries_exhausted").await;
    let r = app.client.get("/api/v2/status").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let depth = |list: &str, name_part: &str| {
        r.body[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"].as_str().unwrap().contains(name_part))
            .map(|d| d["depth"].clone())
    };
    assert_eq!(depth("queues", "ingest"), Some(json!(2)), "{}", r.text);
    assert_eq!(depth("dead_letter_queues", "moog"), Some(json!(1)), "{}", r.text);
    assert_eq!(r.body["circuit_breaker"]["state"], "CLOSED", "{}", r.text);
    assert!(r.body["workers"].is_array());
    assert_eq!(app.anonymous().get("/api/v2/status").await.status, 401);
}

async fn ingest_rates_from_the_counters(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let r = app.client.get("/api/v1/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["summary"], json!({"current_rate_1m": 0.0, "avg_rate_15m": 0.0, "avg_rate_1h": 0.0}));
    let now = Utc::now();
    let batch: Vec<Vec<u8>> = (0..30).map(|i| json!({"message": i}).to_string().into_bytes()).collect();
    app.backend.queue.push_ingest(&batch, now - chrono::Duration::minutes(3)).await.unwrap();
    app.backend.queue.push_ingest(&batch[..12], now).await.unwrap();
    let r = app.client.get("/api/v2/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["summary"],
        json!({"current_rate_1m": 12.0, "avg_rate_15m": 21.0, "avg_rate_1h": 21.0}),
        "{}",
        r.text
    );
    let data = r.body["chart_24h"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 24);
    let labels = r.body["chart_24h"]["labels"].as_array().unwrap();
    assert_eq!(labels[23], json!(now.format("%H:00").to_string()), "newest last");
    let this_hour: f64 = data.iter().rev().take(2).map(|v| v.as_f64().unwrap()).sum();
    assert!((this_hour - 0.7).abs() < 1e-9, "42 events in the last hour or two, per minute: {this_hour}");
    assert_eq!(app.client.get("/api/v1/metrics").await.body, r.body, "v1 answers the same");
}

both_backends!(dlq_toolbox, status_shows_depths_and_the_breaker, ingest_rates_from_the_counters);
