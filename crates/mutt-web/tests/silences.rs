//! `/api/v2/silences` on both backends: create (validated, naming the field), read, list by
//! state, expire early by POST and by DELETE (kept, 409 the second time), the config-audit
//! rows, and the alerters told (Redis pub/sub).

mod ui_client;

use mutt_testapp::reqwest::Method;
use mutt_testapp::{BackendKind, Reply, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = app.client.request(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::from(req).await
}

fn ids(r: &Reply) -> Vec<i64> {
    r.body["silences"].as_array().expect("a list").iter().map(|s| s["id"].as_i64().unwrap()).collect()
}

async fn silences_round_trip(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let now = chrono::Utc::now();
    let one_off = json!({
        "matcher": {"host": "core-*", "message_contains": "link down"},
        "ends_at": (now + chrono::Duration::hours(2)).to_rfc3339(),
        "comment": "core router upgrade, CHG-1234",
        "reason": "planned",
    });
    let r = app.client.post("/api/v2/silences", &one_off).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let a = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["state"], "active");
    assert_eq!(r.body["in_effect"], true);
    assert_eq!(r.body["matcher"], json!({"host": "core-*", "message_contains": "link down"}));
    assert!(r.body["created_by"].as_str().unwrap().starts_with("webui_api:"), "the key's name: {}", r.text);

    let window = json!({
        "matcher": {"host": "core-*"},
        "window": {"days": ["sun"], "start": "02:00", "duration_minutes": 120, "time_zone": "Europe/Berlin"},
        "created_by": "alice",
        "comment": "weekly maintenance",
    });
    let r = app.client.post("/api/v2/silences", &window).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = r.body["id"].as_i64().unwrap();
    assert_eq!((r.body["created_by"].as_str(), r.body["ends_at"].is_null()), (Some("alice"), true));
    assert_eq!(r.body["window"]["days"], json!(["Sun"]));
    assert!(r.body["next_start"].is_string() && r.body["next_end"].is_string(), "{}", r.text);

    // Refused, naming the field.
    for (body, field) in [
        (json!({"matcher": {}, "ends_at": "2030-01-01T00:00:00Z", "comment": "c"}), "matcher"),
        (json!({"matcher": {"hostname": "x"}, "ends_at": "2030-01-01T00:00:00Z", "comment": "c"}), "matcher"),
        (json!({"matcher": {"host": "x"}, "comment": "c"}), "ends_at"),
        (
            json!({"matcher": {"message_regex": "("}, "ends_at": "2030-01-01T00:00:00Z", "comment": "c"}),
            "message_regex",
        ),
        (
            json!({"matcher": {"host": "x"}, "comment": "c",
                   "window": {"days": ["sun"], "start": "02:00", "duration_minutes": 60, "time_zone": "Mars/Base"}}),
            "window.time_zone",
        ),
        (json!({"matcher": {"host": "x"}, "ends_at": "2030-01-01T00:00:00Z", "comment": " "}), "comment"),
    ] {
        let r = app.client.post("/api/v2/silences", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.body["field"].as_str().is_some_and(|f| f.starts_with(field)), "{body}: {}", r.text);
    }

    assert_eq!(ids(&app.client.get("/api/v2/silences").await), [b, a]);
    assert_eq!(ids(&app.client.get("/api/v2/silences?state=expired").await), Vec::<i64>::new());
    let r = app.client.get("/api/v2/silences?state=soon").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("state")), "{}", r.text);
    let r = app.client.get(&format!("/api/v2/silences/{a}")).await;
    assert_eq!((r.status, r.body["comment"].as_str()), (200, Some("core router upgrade, CHG-1234")));
    assert_eq!(app.client.get("/api/v2/silences/999999").await.status, 404);
    assert_eq!(app.client.get("/api/v2/silences/abc").await.status, 400);

    // Expired early: POST …/expire or DELETE; kept; a second time is a conflict.
    let r = send(&app, Method::POST, &format!("/api/v2/silences/{a}/expire"), None).await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("expired")), "{}", r.text);
    assert!(r.body["expired_by"].as_str().unwrap().starts_with("webui_api:"));
    assert_eq!(send(&app, Method::POST, &format!("/api/v2/silences/{a}/expire"), None).await.status, 409);
    assert_eq!(send(&app, Method::DELETE, &format!("/api/v2/silences/{b}"), None).await.status, 200);
    assert_eq!(send(&app, Method::DELETE, "/api/v2/silences/999999", None).await.status, 404);
    assert_eq!(ids(&app.client.get("/api/v2/silences").await), Vec::<i64>::new());
    assert_eq!(ids(&app.client.get("/api/v2/silences?state=expired").await), [b, a]);
    assert_eq!(ids(&app.client.get("/api/v2/silences?state=all").await), [b, a]);

    // The config audit: two creations, two early ends.
    let r = app.client.get("/api/v2/config-audit?table_name=silences&limit=50").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body.as_object().and_then(|o| o.values().find_map(Value::as_array)).expect("rows").clone();
    let mut ops: Vec<(&str, i64)> =
        rows.iter().map(|row| (row["operation"].as_str().unwrap(), row["record_id"].as_i64().unwrap())).collect();
    ops.sort();
    let mut want = vec![("CREATE", a), ("CREATE", b), ("UPDATE", a), ("UPDATE", b)];
    want.sort();
    assert_eq!(ops, want);
}

/// On Redis the alerters hear of a new silence at once (pub/sub); embedded alerters reload
/// every 5 s.
async fn a_change_is_announced(kind: BackendKind) {
    if kind == BackendKind::Embedded {
        return;
    }
    let app = spawn_app(kind).await;
    let mut notices = ui_client::Notices::listen(&app).await;
    let body = json!({"matcher": {"rule_id": 1}, "ends_at": "2099-01-01T00:00:00Z", "comment": "c"});
    assert_eq!(app.client.post("/api/v2/silences", &body).await.status, 201);
    assert!(notices.heard(std::time::Duration::from_secs(2)).await, "the alerters were told");
}

both_backends!(silences_round_trip, a_change_is_announced);
