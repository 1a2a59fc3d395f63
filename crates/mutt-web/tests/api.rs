//! The management API through HTTP, on both backends (a fresh Redis prefix + PostgreSQL
//! database, or a fresh embedded file, per test): the key gate, the rule routes, and JSON
//! errors for every kind of bad request.

use mutt_store::Store;
use mutt_testapp::{BackendKind, both_backends, spawn_app};
use serde_json::{Value, json};

fn rule_body(match_type: &str, match_string: &str) -> Value {
    json!({
        "match_string": match_string,
        "trap_oid": null,
        "match_type": match_type,
        "priority": 10,
        "prod_handling": "Page_and_ticket",
        "dev_handling": "Ticket_only",
        "team_assignment": "NETO",
    })
}

async fn rule_count(store: &dyn Store) -> usize {
    store.list_rules().await.expect("list rules").len()
}

async fn api_routes_need_a_valid_key(kind: BackendKind) {
    let app = spawn_app(kind).await;
    for version in ["v1", "v2"] {
        let path = format!("/api/{version}/rules");
        for client in [app.anonymous(), app.client.with_key(Some("wrong-key")), app.client.with_key(Some(""))] {
            let r = client.get(&path).await;
            assert_eq!((r.status, &r.body["error"]), (401, &json!("Unauthorized")), "{path}");
            // The original's body names the request's correlation id (echoed in a header too).
            let id = r.body["correlation_id"].as_str().expect("a correlation id");
            assert_eq!(r.headers["x-correlation-id"], id);
            assert!(r.is_json());
            let r = client.post(&path, &rule_body("contains", "CRITICAL")).await;
            assert_eq!(r.status, 401);
        }
        // The original Web UI's `?api_key=`.
        let r = app.anonymous().get(&format!("{path}?api_key={}", app.api_key)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = app.anonymous().get(&format!("{path}?api_key=wrong")).await;
        assert_eq!(r.status, 401);
        let r = app.anonymous().get(&format!("{path}?api_keyx={}", app.api_key)).await;
        assert_eq!(r.status, 401, "only the api_key parameter counts");
    }
    assert_eq!(rule_count(app.backend.store.as_ref()).await, 0, "no unauthorised create went through");
}

async fn rules_are_created_and_listed_on_both_versions(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let r = app.client.get("/api/v2/rules").await;
    assert_eq!((r.status, &r.body), (200, &json!({"rules": []})));

    let r = app.client.post("/api/v2/rules", &rule_body("contains", "CRITICAL")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.body["id"].as_i64().expect("an id");
    let r = app.client.post("/api/v1/rules", &rule_body("regex", "^LINK-(UP|DOWN)$")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = r.body["id"].as_i64().expect("an id");
    assert_ne!(first, second);

    for version in ["v1", "v2"] {
        let r = app.client.get(&format!("/api/{version}/rules")).await;
        assert_eq!(r.status, 200);
        let rules = r.body["rules"].as_array().expect("a list");
        assert_eq!(rules.len(), 2, "{}", r.text);
        assert_eq!(rules[0]["id"], first);
        assert_eq!(rules[0]["match_string"], "CRITICAL");
        assert_eq!(rules[0]["match_type"], "contains");
        assert_eq!(rules[0]["team_assignment"], "NETO");
        assert_eq!(rules[0]["is_active"], true);
        assert_eq!(rules[1]["match_string"], "^LINK-(UP|DOWN)$");
    }
    // What the API stored is what the alerter loads.
    let stored = app.backend.store.list_rules().await.unwrap();
    assert_eq!(stored.iter().map(|r| i64::from(r.id)).collect::<Vec<_>>(), vec![first, second]);
}

async fn invalid_regex_is_refused_naming_the_field(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let r = app.client.post("/api/v2/rules", &rule_body("regex", "LINK-(DOWN")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.is_json());
    assert_eq!(r.body["field"], "match_string", "{}", r.text);
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.text);
    // A contains rule needs its text: the field is named too.
    let mut body = rule_body("contains", "x");
    body["match_string"] = Value::Null;
    let r = app.client.post("/api/v1/rules", &body).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("match_string")), "{}", r.text);
    assert_eq!(rule_count(app.backend.store.as_ref()).await, 0, "nothing stored");
}

async fn wrongly_typed_json_is_a_json_400_naming_the_field(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let cases = [("priority", json!("high")), ("is_active", json!("yes")), ("team_assignment", json!(7))];
    for (field, value) in cases {
        let mut body = rule_body("contains", "CRITICAL");
        body[field] = value;
        let r = app.client.post("/api/v2/rules", &body).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert!(r.is_json(), "{field}: {}", r.text);
        assert_eq!(r.body["field"], field, "{}", r.text);
    }
    let r = app.client.post("/api/v2/rules", &json!({"match_string": "x", "match_type": "contains"})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["field"], "prod_handling", "a missing field is named: {}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("missing field"), "{}", r.text);
    assert_eq!(rule_count(app.backend.store.as_ref()).await, 0);
}

async fn malformed_json_and_wrong_content_types_are_json_errors(kind: BackendKind) {
    let app = spawn_app(kind).await;
    for body in ["{", "{\"match_type\": }", "", "[1, 2", "{\"a\": 1} {\"b\": 2}"] {
        let r = app.client.post_raw("/api/v2/rules", Some("application/json"), body).await;
        assert_eq!(r.status, 400, "{body:?}: {}", r.text);
        assert!(r.is_json(), "{body:?}: {}", r.text);
        assert!(r.body["error"].as_str().unwrap().starts_with("malformed JSON"), "{}", r.text);
        assert!(r.body.get("field").is_none());
    }
    let json_text = rule_body("contains", "CRITICAL").to_string();
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let r = app.client.post_raw("/api/v2/rules", content_type, json_text.clone()).await;
        assert_eq!(r.status, 415, "{content_type:?}: {}", r.text);
        assert!(r.is_json(), "{}", r.text);
    }
    let r = app.client.post_raw("/api/v2/rules", Some("application/json; charset=utf-8"), json_text).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(rule_count(app.backend.store.as_ref()).await, 1);
}

async fn oversized_body_is_a_json_413(kind: BackendKind) {
    let app = spawn_app(kind).await;
    // Beyond axum's default 2 MB body limit.
    let big = format!("{{\"match_string\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let r = app.client.post_raw("/api/v2/rules", Some("application/json"), big).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.is_json(), "{}", r.text);
    assert_eq!(rule_count(app.backend.store.as_ref()).await, 0);
}

async fn unknown_routes_and_methods_are_json_errors(kind: BackendKind) {
    let app = spawn_app(kind).await;
    for client in [app.client.clone(), app.anonymous()] {
        for path in ["/nothing", "/api/v2/nothing", "/api/v3/rules", "/api/v2/rules/1/extra"] {
            let r = client.get(path).await;
            assert_eq!(r.status, 404, "{path}: {}", r.text);
            assert!(r.is_json(), "{path}: {}", r.text);
            assert!(r.body["error"].is_string());
        }
    }
    let r = app.client.request(mutt_testapp::reqwest::Method::DELETE, "/api/v2/rules").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let body: Value = r.json().await.expect("a JSON 405");
    assert!(body["error"].is_string());
}

async fn ops_endpoints_are_public(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let anon = app.anonymous();
    let r = anon.get("/health").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "healthy");
    assert_eq!(r.body["service"], "mutt-web");
    assert_eq!(r.body["database"], "connected");
    assert_eq!(anon.get("/live").await.body, json!({"status": "alive"}));
    let r = anon.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8", "the original's format");
    let asked =
        anon.request(mutt_testapp::reqwest::Method::GET, "/metrics").header("accept", "application/openmetrics-text");
    let r = mutt_testapp::Reply::from(asked).await;
    assert!(r.text.ends_with("# EOF\n"), "OpenMetrics text when asked for: {}", r.text);
}

both_backends!(
    api_routes_need_a_valid_key,
    rules_are_created_and_listed_on_both_versions,
    invalid_regex_is_refused_naming_the_field,
    wrongly_typed_json_is_a_json_400_naming_the_field,
    malformed_json_and_wrong_content_types_are_json_errors,
    oversized_body_is_a_json_413,
    unknown_routes_and_methods_are_json_errors,
    ops_endpoints_are_public,
);
