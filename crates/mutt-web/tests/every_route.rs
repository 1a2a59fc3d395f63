//! Every route of the OpenAPI document, on both backends: none answers without the key
//! (except `/version` and the document itself), each 401 is the original's JSON with a
//! correlation id, and every GET route of v1 answers exactly as its v2 twin; every operation
//! succeeds with a good request (a table, checked against the document so that a new route
//! needs its case); every operation with a body answers 415, 400 and 413 for a body that is
//! not JSON, malformed or too large, and every integer parameter 400 naming it.

use chrono::Utc;
use mutt_core::EventId;
use mutt_queue::dlq::Dlq;
use mutt_store::AuditRecord;
use mutt_testapp::reqwest::Method;
use mutt_testapp::{BackendKind, Reply, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The document's paths with example values for their parameters, and their methods.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{id}", "1")
            .replace("{hostname}", "host1")
            .replace("{key}", "moog_rate_limit")
            .replace("{name}", "alerter")
            .replace("{event_id}", "6f1c3a52-1d2b-4c3e-9f00-0123456789ab");
        for m in item.as_object().expect("methods").keys() {
            if let Ok(method) = m.to_uppercase().parse::<Method>() {
                out.push((method, concrete.clone()));
            }
        }
    }
    out
}

async fn every_route_needs_the_key_and_v1_mirrors_v2(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let doc = app.anonymous().get("/api/v2/openapi.json").await.body;
    let ops = operations(&doc);
    assert!(ops.len() >= 30, "{} operations", ops.len());
    for (method, path) in &ops {
        let public = path.ends_with("/version");
        let r = Reply::from(app.anonymous().request(method.clone(), path).json(&serde_json::json!({}))).await;
        if public {
            assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
            continue;
        }
        assert_eq!(r.status, 401, "{method} {path} without a key: {}", r.text);
        assert_eq!(r.body["error"], "Unauthorized", "{method} {path}");
        assert!(r.body["correlation_id"].as_str().is_some_and(|c| !c.is_empty()), "{method} {path}: {}", r.text);
    }
    // GET routes: v1 answers as v2 (v2-only routes are 404 under v1).
    let v2_only = ["/dlq", "/status", "/events/", "/rules/test", "/rules/validate", "/openapi.json", "/silences"];
    for (method, path) in ops.iter().filter(|(m, _)| *m == Method::GET) {
        let v1 = path.replacen("/api/v2/", "/api/v1/", 1);
        let (a, b) = (app.client.get(path).await, app.client.get(&v1).await);
        if v2_only.iter().any(|p| path.contains(p)) {
            assert_eq!(b.status, 404, "{v1} is v2 only");
            continue;
        }
        let strip = |mut v: Value| {
            // The SLO report is stamped with the time it was made.
            if let Some(o) = v.as_object_mut() {
                o.remove("timestamp");
            }
            v
        };
        assert_eq!((a.status, strip(a.body.clone())), (b.status, strip(b.body.clone())), "{method} {path} vs {v1}");
    }
}

/// Operations tested in their own files (`tests/silences*.rs`), not in [`SUCCESS`].
const TESTED_ELSEWHERE: &[&str] = &["/api/v2/silences"];

fn rule(text: &str) -> Value {
    json!({"match_string": text, "match_type": "contains", "priority": 10, "prod_handling": "Page_and_ticket",
           "dev_handling": "Ticket_only", "team_assignment": "NETO"})
}

/// One good request per operation, in an order where each finds what it needs: (method,
/// document path, concrete path, body, status). `{rule}` and `{event}` are filled in.
fn success_cases() -> Vec<(Method, &'static str, &'static str, Option<Value>, u16)> {
    use Method as M;
    let event = json!({"hostname": "lab1", "message": "LINK down", "syslog_severity": 3});
    vec![
        (M::POST, "/api/v2/rules", "/api/v2/rules", Some(rule("LINK")), 201),
        (M::GET, "/api/v2/rules", "/api/v2/rules", None, 200),
        (M::GET, "/api/v2/rules/{id}", "/api/v2/rules/{rule}", None, 200),
        (M::PUT, "/api/v2/rules/{id}", "/api/v2/rules/{rule}", Some(json!({"priority": 5, "reason": "r"})), 200),
        (M::POST, "/api/v2/rules/test", "/api/v2/rules/test", Some(json!({"event": event})), 200),
        (M::POST, "/api/v2/rules/validate", "/api/v2/rules/validate", Some(rule("x")), 200),
        (M::POST, "/api/v2/dev-hosts", "/api/v2/dev-hosts", Some(json!({"hostname": "lab1"})), 201),
        (M::GET, "/api/v2/dev-hosts", "/api/v2/dev-hosts", None, 200),
        (M::DELETE, "/api/v2/dev-hosts/{hostname}", "/api/v2/dev-hosts/lab1", None, 200),
        (M::POST, "/api/v2/teams", "/api/v2/teams", Some(json!({"hostname": "sw1", "team_assignment": "NET"})), 201),
        (M::GET, "/api/v2/teams", "/api/v2/teams", None, 200),
        (M::PUT, "/api/v2/teams/{hostname}", "/api/v2/teams/sw1", Some(json!({"team_assignment": "OPS"})), 200),
        (M::DELETE, "/api/v2/teams/{hostname}", "/api/v2/teams/sw1", None, 200),
        (M::PUT, "/api/v2/config/{key}", "/api/v2/config/moog_rate_limit", Some(json!({"value": 60})), 200),
        (M::GET, "/api/v2/config", "/api/v2/config", None, 200),
        (M::GET, "/api/v2/config/{key}", "/api/v2/config/moog_rate_limit", None, 200),
        (M::GET, "/api/v2/config/history", "/api/v2/config/history", None, 200),
        (M::DELETE, "/api/v2/config/{key}", "/api/v2/config/moog_rate_limit", None, 200),
        (M::GET, "/api/v2/audit", "/api/v2/audit?operation=create&page=1&limit=10", None, 200),
        (M::GET, "/api/v2/config-audit", "/api/v2/config-audit?table_name=alert_rules", None, 200),
        (M::GET, "/api/v2/audit-logs", "/api/v2/audit-logs?hostname=h1&forwarded=true", None, 200),
        (M::GET, "/api/v2/events/{event_id}", "/api/v2/events/{event}", None, 200),
        (M::GET, "/api/v2/dlq", "/api/v2/dlq", None, 200),
        (M::GET, "/api/v2/dlq/{name}", "/api/v2/dlq/alerter?host=h1", None, 200),
        (M::POST, "/api/v2/dlq/{name}/replay", "/api/v2/dlq/alerter/replay", Some(json!({"limit": 1})), 200),
        (M::POST, "/api/v2/dlq/{name}/park", "/api/v2/dlq/alerter/park", Some(json!({"limit": 1})), 200),
        (M::POST, "/api/v2/dlq/{name}/purge", "/api/v2/dlq/alerter/purge", Some(json!({"confirm": "alerter"})), 200),
        (M::GET, "/api/v2/status", "/api/v2/status", None, 200),
        (M::GET, "/api/v2/slo", "/api/v2/slo", None, 200),
        (M::GET, "/api/v2/metrics", "/api/v2/metrics", None, 200),
        (M::GET, "/api/v2/version", "/api/v2/version", None, 200),
        // A rule without audit history is deleted (one with history: 409, management.rs).
        (M::DELETE, "/api/v2/rules/{id}", "/api/v2/rules/{spare}", None, 200),
    ]
}

async fn every_operation_succeeds_with_a_good_request(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let spare = app.client.post("/api/v2/rules", &rule("SPARE")).await.body["id"].as_i64().unwrap();
    let mut rule_id = 0;
    let audited = AuditRecord {
        event_id: EventId::new(),
        event_timestamp: Utc::now(),
        hostname: "h1".into(),
        matched_rule_id: i32::try_from(spare).unwrap(),
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: "{}".into(),
        silenced_by: None,
        flap_suppressed: false,
    };
    let entries: Vec<Vec<u8>> = (0..3)
        .map(|i| json!({"hostname": "h1", "message": i, "_dlq_reason": "shed"}).to_string().into_bytes())
        .collect();
    app.backend.queue.dead_letters().dlq_push(Dlq::Alerter, &entries).await.unwrap();
    let mut covered = BTreeSet::new();
    for (method, doc_path, path, body, status) in success_cases() {
        if doc_path == "/api/v2/events/{event_id}" {
            // The spare rule gets its audit row only now: deleting it later must not be a 409.
            let mut row = audited.clone();
            row.matched_rule_id = i32::try_from(rule_id).unwrap();
            app.backend.store.write_audit(&[row]).await.unwrap();
        }
        let path = path
            .replace("{rule}", &rule_id.to_string())
            .replace("{spare}", &spare.to_string())
            .replace("{event}", &audited.event_id.to_string());
        let r = send(&app, method.clone(), &path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert!(r.is_json(), "{method} {path}: {}", r.text);
        if doc_path == "/api/v2/rules" && method == Method::POST {
            rule_id = r.body["id"].as_i64().unwrap();
        }
        covered.insert((method.to_string(), doc_path.to_owned()));
    }
    let doc = app.anonymous().get("/api/v2/openapi.json").await.body;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in item.as_object().expect("methods").keys() {
            let op = (m.to_uppercase(), path.clone());
            if !covered.contains(&op) && !TESTED_ELSEWHERE.iter().any(|p| path.starts_with(p)) {
                missing.push(format!("{} {}", op.0, op.1));
            }
        }
    }
    assert!(missing.is_empty(), "operations without a success case in success_cases(): {missing:?}");
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = app.client.request(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::from(req).await
}

/// Every operation that takes a body refuses one that is not JSON (415), malformed JSON (400
/// without a field) and a body over the limit (413), each as JSON; every integer parameter of
/// the document given a non-integer is a 400 naming it. Nothing is a 5xx.
async fn every_bad_input_class_on_every_operation(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let doc = app.anonymous().get("/api/v2/openapi.json").await.body;
    let big = format!("{{\"comment\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (mut with_body, mut integers) = (0, 0);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = concrete(path);
        for (m, op) in item.as_object().unwrap() {
            let method: Method = m.to_uppercase().parse().unwrap();
            if op.get("requestBody").is_some_and(|b| b["required"] == true) {
                with_body += 1;
                let cases: [(Option<&str>, String, u16); 4] = [
                    (Some("text/plain"), "{}".into(), 415),
                    (None, "{}".into(), 415),
                    (Some("application/json"), "{\"a\": ".into(), 400),
                    (Some("application/json"), big.clone(), 413),
                ];
                for (content_type, body, status) in cases {
                    let mut req = app.client.request(method.clone(), &concrete).body(body);
                    if let Some(ct) = content_type {
                        req = req.header("content-type", ct);
                    }
                    let r = Reply::from(req).await;
                    assert_eq!(r.status, status, "{method} {concrete} {content_type:?}: {}", r.text);
                    assert!(r.is_json() && r.body["error"].is_string(), "{method} {concrete}: {}", r.text);
                    if status == 400 {
                        assert!(r.body["error"].as_str().unwrap().starts_with("malformed JSON"), "{}", r.text);
                    }
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let integer = ["integer"].contains(&p["schema"]["type"].as_str().unwrap_or_default())
                    || p["schema"]["type"].as_array().is_some_and(|t| t.contains(&json!("integer")));
                if !integer {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                integers += 1;
                let target = match p["in"].as_str() {
                    Some("query") => format!("{concrete}?{name}=x1"),
                    Some("path") => path.replace(&format!("{{{name}}}"), "x1").replace("{name}", "alerter"),
                    _ => continue,
                };
                let r = send(&app, method.clone(), &target, Some(json!({}))).await;
                assert_eq!((r.status, r.body["field"].as_str()), (400, Some(name)), "{method} {target}: {}", r.text);
            }
        }
    }
    assert!(with_body >= 10, "{with_body} operations with a body");
    // rule id, page and limit of the searches, record_id, rule_id, the DLQ listing's numbers.
    assert!(integers >= 12, "{integers} integer parameters");
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{hostname}", "host1")
        .replace("{key}", "moog_rate_limit")
        .replace("{name}", "alerter")
        .replace("{event_id}", "6f1c3a52-1d2b-4c3e-9f00-0123456789ab")
}

both_backends!(
    every_route_needs_the_key_and_v1_mirrors_v2,
    every_operation_succeeds_with_a_good_request,
    every_bad_input_class_on_every_operation,
);
