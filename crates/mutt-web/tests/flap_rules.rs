//! A rule's flap limit through the management API, on both backends: created, read back,
//! changed, removed (null) and refused with the field named when only half of it is given or
//! out of range; the config audit records the change.

use mutt_core::EventId;
use mutt_store::AuditRecord;
use mutt_testapp::reqwest::Method;
use mutt_testapp::{BackendKind, Reply, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

async fn put(app: &TestApp, path: &str, body: Value) -> Reply {
    Reply::from(app.client.request(Method::PUT, path).json(&body)).await
}

async fn a_rules_flap_limit_is_set_changed_and_removed(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let body = json!({"match_string": "LINK-DOWN", "prod_handling": "Page_only", "dev_handling": "Ignore",
                      "team_assignment": "NetOps", "flap_threshold": 40, "flap_window_secs": 60});
    let r = app.client.post("/api/v2/rules", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/api/v2/rules/{}", r.body["id"]);
    let r = app.client.get(&path).await;
    assert_eq!((&r.body["flap_threshold"], &r.body["flap_window_secs"]), (&json!(40), &json!(60)), "{}", r.text);

    let r = put(&app, &path, json!({"flap_threshold": 5, "reason": "noisier"})).await;
    assert_eq!((r.status, &r.body["rule"]["flap_threshold"]), (200, &json!(5)), "{}", r.text);
    let rows = app.client.get("/api/v2/config-audit?table_name=alert_rules").await.body["changes"].clone();
    assert_eq!(rows[0]["old_values"], json!({"flap_threshold": 40}));
    assert_eq!(rows[0]["new_values"], json!({"flap_threshold": 5}));

    // Half a limit, or one out of range, is refused naming the field; nothing changes.
    let r = put(&app, &path, json!({"flap_window_secs": null})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("flap_window_secs")), "{}", r.text);
    let r = put(&app, &path, json!({"flap_threshold": 0})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("flap_threshold")), "{}", r.text);
    let r = put(&app, &path, json!({"flap_window_secs": 86_401})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("flap_window_secs")), "{}", r.text);
    let half = json!({"match_string": "X", "prod_handling": "a", "dev_handling": "b", "team_assignment": "c",
                      "flap_threshold": 3});
    let r = app.client.post("/api/v2/rules", &half).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("flap_window_secs")), "{}", r.text);
    let r = app.client.get(&path).await;
    assert_eq!((&r.body["flap_threshold"], &r.body["flap_window_secs"]), (&json!(5), &json!(60)));

    // The event-audit search shows which events a flap limit held back.
    let id = r.body["id"].as_i64().unwrap() as i32;
    let row = |suppressed: bool| AuditRecord {
        event_id: EventId::new(),
        event_timestamp: chrono::Utc::now(),
        hostname: "router1".into(),
        matched_rule_id: id,
        handling_decision: "Page_only".into(),
        forwarded_to_moog: !suppressed,
        raw_message: "{}".into(),
        silenced_by: None,
        flap_suppressed: suppressed,
    };
    app.backend.store.write_audit(&[row(false), row(true)]).await.unwrap();
    let logs = app.client.get(&format!("/api/v2/audit-logs?rule_id={id}")).await;
    assert_eq!(logs.status, 200, "{}", logs.text);
    let mut marks: Vec<(bool, bool)> = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["forwarded_to_moog"].as_bool().unwrap(), l["flap_suppressed"].as_bool().unwrap()))
        .collect();
    marks.sort();
    assert_eq!(marks, [(false, true), (true, false)]);

    // Both null: no limit; the rule reads as one without (no flap fields).
    let r = put(&app, &path, json!({"flap_threshold": null, "flap_window_secs": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.client.get(&path).await;
    assert!(r.body.get("flap_threshold").is_none() && r.body.get("flap_window_secs").is_none(), "{}", r.text);
}

both_backends!(a_rules_flap_limit_is_set_changed_and_removed);
