//! Every route of the OpenAPI document, on both backends: none answers without the key
//! (except `/version` and the document itself), each 401 is the original's JSON with a
//! correlation id, and every GET route of v1 answers exactly as its v2 twin.

use mutt_testapp::reqwest::Method;
use mutt_testapp::{BackendKind, Reply, both_backends, spawn_app};
use serde_json::Value;

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
    let v2_only = ["/dlq", "/status", "/events/", "/rules/test", "/rules/validate", "/openapi.json"];
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

both_backends!(every_route_needs_the_key_and_v1_mirrors_v2);
