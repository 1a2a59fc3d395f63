//! The management API beyond creating rules, on both backends: versions and their headers,
//! rules CRUD with the config audit, development hosts and device teams, dynamic
//! configuration, and the audit searches with stable pagination.

use chrono::{Duration, TimeZone, Utc};
use mutt_core::EventId;
use mutt_store::AuditRecord;
use mutt_testapp::reqwest::Method;
use mutt_testapp::{BackendKind, Reply, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};
use std::collections::HashSet;

fn rule_body(match_string: &str) -> Value {
    json!({
        "match_string": match_string,
        "match_type": "contains",
        "priority": 10,
        "prod_handling": "Page_and_ticket",
        "dev_handling": "Ticket_only",
        "team_assignment": "NETO",
    })
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = app.client.request(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::from(req).await
}

async fn create_rule(app: &TestApp, match_string: &str) -> i64 {
    let r = app.client.post("/api/v2/rules", &rule_body(match_string)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_i64().expect("an id")
}

/// The config-audit rows of `table`, newest first, through the API.
async fn audit_rows(app: &TestApp, table: &str) -> Vec<Value> {
    let r = app.client.get(&format!("/api/v2/config-audit?table_name={table}&limit=200")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["changes"].as_array().expect("changes").clone()
}

fn audit_record(rule: i32, host: &str, decision: &str, forwarded: bool, minutes_ago: i64) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: Utc::now() - Duration::minutes(minutes_ago),
        hostname: host.into(),
        matched_rule_id: rule,
        handling_decision: decision.into(),
        forwarded_to_moog: forwarded,
        raw_message: json!({"hostname": host, "message": "m"}).to_string(),
        silenced_by: None,
        flap_suppressed: false,
    }
}

async fn versions_headers_and_parity(kind: BackendKind) {
    let app = spawn_app(kind).await;
    create_rule(&app, "CRITICAL").await;
    let (v1, v2) = (app.client.get("/api/v1/rules").await, app.client.get("/api/v2/rules").await);
    assert_eq!((v1.status, &v1.body), (v2.status, &v2.body), "identical bodies");
    for (r, deprecated) in [(&v1, "true"), (&v2, "false")] {
        assert_eq!(r.headers["x-api-version"], "2.5");
        assert_eq!(r.headers["x-api-supported-versions"], "2.5, 2.0, 1.0");
        assert_eq!(r.headers["x-api-deprecated"], deprecated);
        assert!(!r.headers["x-correlation-id"].is_empty());
    }
    let asked = |h: &str, v: &str| app.client.request(Method::GET, "/api/v2/rules").header(h, v.to_owned());
    assert_eq!(Reply::from(asked("Accept-Version", "2.0")).await.headers["x-api-version"], "2.0");
    assert_eq!(Reply::from(asked("X-API-Version", "1.0")).await.headers["x-api-version"], "1.0");
    assert_eq!(Reply::from(asked("Accept-Version", "9.9")).await.headers["x-api-version"], "2.5", "unsupported");
    assert_eq!(app.client.get("/api/v1/rules?api_version=2.0").await.headers["x-api-version"], "2.0");
    let r = Reply::from(asked("X-Correlation-ID", "abc-123")).await;
    assert_eq!(r.headers["x-correlation-id"], "abc-123", "a client's id is kept");
    // Errors and unknown routes carry the headers too.
    let r = app.client.get("/api/v1/nothing").await;
    assert_eq!((r.status, &r.headers["x-api-deprecated"]), (404, &"true".parse().unwrap()));
    // /version needs no key.
    for v in ["v1", "v2"] {
        let r = app.anonymous().get(&format!("/api/{v}/version")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["current_version"], "2.5");
        assert_eq!(r.body["supported_versions"], json!(["2.5", "2.0", "1.0"]));
        for s in ["2.5", "2.0", "1.0"] {
            assert!(!r.body["version_history"][s]["changes"].as_array().unwrap().is_empty());
        }
    }
}

async fn rules_get_update_delete_with_audit(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let id = create_rule(&app, "CRITICAL").await;
    let r = app.client.get(&format!("/api/v1/rules/{id}")).await;
    assert_eq!((r.status, &r.body["match_string"], &r.body["priority"]), (200, &json!("CRITICAL"), &json!(10)));
    assert_eq!(app.client.get("/api/v2/rules/99999").await.body, json!({"error": "Rule not found"}));
    let r = app.client.get("/api/v2/rules/abc").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("id")), "{}", r.text);

    // A partial update changes only what it names.
    let path = format!("/api/v2/rules/{id}");
    let r = send(&app, Method::PUT, &path, Some(json!({"priority": 5, "reason": "earlier"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.client.get(&path).await;
    assert_eq!(
        (&r.body["priority"], &r.body["match_string"], &r.body["team_assignment"]),
        (&json!(5), &json!("CRITICAL"), &json!("NETO"))
    );
    let r = send(&app, Method::PUT, &path, Some(json!({"reason": "nothing"}))).await;
    assert_eq!((r.status, &r.body["error"]), (400, &json!("No fields to update")));
    let r = send(&app, Method::PUT, &path, Some(json!({"match_type": "regex", "match_string": "a(b"}))).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("match_string")), "{}", r.text);
    let r = send(&app, Method::PUT, &path, Some(json!({"priority": "high"}))).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("priority")), "{}", r.text);
    let r = send(&app, Method::PUT, "/api/v2/rules/99999", Some(json!({"priority": 1}))).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.backend.store.get_rule(id as i32).await.unwrap().unwrap().priority,
        5,
        "bad updates changed nothing"
    );

    let r = send(&app, Method::DELETE, &path, Some(json!({"reason": "obsolete"}))).await;
    assert_eq!((r.status, &r.body["message"]), (200, &json!("Rule deleted successfully")), "{}", r.text);
    assert_eq!(app.client.get(&path).await.status, 404);
    assert_eq!(send(&app, Method::DELETE, &path, None).await.status, 404);

    let rows = audit_rows(&app, "alert_rules").await;
    let ops: Vec<&str> = rows.iter().map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["DELETE", "UPDATE", "CREATE"], "{rows:?}");
    assert!(rows.iter().all(|r| r["changed_by"] == "webui_api:default" && r["record_id"] == id));
    assert!(rows.iter().all(|r| r["correlation_id"].as_str().is_some_and(|c| !c.is_empty())));
    assert_eq!(rows[1]["old_values"], json!({"priority": 10}), "only the supplied fields");
    assert_eq!(rows[1]["new_values"], json!({"priority": 5}));
    assert_eq!(rows[1]["reason"], "earlier");
    assert_eq!(rows[0]["reason"], "obsolete");
    assert_eq!(rows[0]["old_values"]["match_string"], "CRITICAL");
    assert_eq!(rows[2]["new_values"]["team_assignment"], "NETO");
}

async fn rule_with_history_is_a_409_or_deactivated(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let id = create_rule(&app, "CRITICAL").await;
    let rows: Vec<AuditRecord> = (0..3).map(|i| audit_record(id as i32, "h1", "Page_and_ticket", true, i)).collect();
    app.backend.store.write_audit(&rows).await.unwrap();
    let path = format!("/api/v1/rules/{id}");
    let r = send(&app, Method::DELETE, &path, None).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["audit_events"], 3, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("deactivate"));
    let r = send(&app, Method::DELETE, &format!("{path}?deactivate=true"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rule = app.backend.store.get_rule(id as i32).await.unwrap().expect("still there");
    assert!(!rule.is_active);
    let r = send(&app, Method::DELETE, &format!("{path}?deactivate=maybe"), None).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("deactivate")), "{}", r.text);
}

async fn development_hosts_and_teams(kind: BackendKind) {
    let app = spawn_app(kind).await;
    for h in ["web02", "web01"] {
        let r = app.client.post("/api/v1/dev-hosts", &json!({"hostname": h})).await;
        assert_eq!((r.status, &r.body["message"]), (201, &json!("Dev host added successfully")), "{}", r.text);
    }
    let r = app.client.post("/api/v2/dev-hosts", &json!({"hostname": "web01"})).await;
    assert_eq!((r.status, &r.body["error"]), (409, &json!("Hostname already exists")));
    let r = app.client.post("/api/v2/dev-hosts", &json!({})).await;
    assert_eq!((r.status, &r.body["error"]), (400, &json!("hostname is required")));
    let r = app.client.get("/api/v2/dev-hosts").await;
    assert_eq!(r.body, json!({"hosts": [{"hostname": "web01"}, {"hostname": "web02"}]}));
    assert_eq!(send(&app, Method::DELETE, "/api/v2/dev-hosts/web02", None).await.status, 200);
    let r = send(&app, Method::DELETE, "/api/v2/dev-hosts/web02", None).await;
    assert_eq!((r.status, &r.body["error"]), (404, &json!("Hostname not found")));

    let r = app.client.post("/api/v2/teams", &json!({"hostname": "sw1", "team_assignment": "NET"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.client.post("/api/v2/teams", &json!({"hostname": "sw1", "team_assignment": "OPS"})).await;
    assert_eq!(r.status, 409);
    let r = app.client.post("/api/v2/teams", &json!({"hostname": "sw2"})).await;
    assert_eq!((r.status, &r.body["error"]), (400, &json!("hostname and team_assignment are required")));
    let r = send(&app, Method::PUT, "/api/v1/teams/sw1", Some(json!({"team_assignment": "OPS"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(send(&app, Method::PUT, "/api/v1/teams/nope", Some(json!({"team_assignment": "X"}))).await.status, 404);
    assert_eq!(send(&app, Method::PUT, "/api/v1/teams/sw1", Some(json!({}))).await.status, 400);
    let r = app.client.get("/api/v1/teams").await;
    assert_eq!(r.body, json!({"teams": [{"hostname": "sw1", "team_assignment": "OPS"}]}));
    // What the alerter loads.
    let snap = app.backend.store.load_rules().await.unwrap();
    assert_eq!(snap.development_hosts.into_iter().collect::<Vec<_>>(), ["web01"]);
    assert_eq!(snap.device_teams.get("sw1").map(String::as_str), Some("OPS"));
    assert_eq!(send(&app, Method::DELETE, "/api/v1/teams/sw1", None).await.status, 200);
    assert_eq!(send(&app, Method::DELETE, "/api/v1/teams/sw1", None).await.status, 404);

    let hosts = audit_rows(&app, "development_hosts").await;
    assert_eq!(
        hosts.iter().map(|r| r["operation"].as_str().unwrap()).collect::<Vec<_>>(),
        ["DELETE", "CREATE", "CREATE"]
    );
    let teams = audit_rows(&app, "device_teams").await;
    assert_eq!(
        teams.iter().map(|r| r["operation"].as_str().unwrap()).collect::<Vec<_>>(),
        ["DELETE", "UPDATE", "CREATE"]
    );
    assert_eq!(teams[1]["old_values"]["team_assignment"], "NET");
    assert_eq!(teams[1]["new_values"]["team_assignment"], "OPS");
}

async fn dynamic_configuration(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let r =
        send(&app, Method::PUT, "/api/v1/config/moog_rate_limit", Some(json!({"value": 75, "reason": "burst"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"key": "moog_rate_limit", "old_value": null, "new_value": "75"}));
    let r = send(&app, Method::PUT, "/api/v2/config/moog_rate_limit", Some(json!({"value": "80"}))).await;
    assert_eq!((&r.body["old_value"], &r.body["new_value"]), (&json!("75"), &json!("80")));
    let r = app.client.get("/api/v2/config").await;
    assert_eq!(r.body["config"]["moog_rate_limit"], "80", "{}", r.text);
    assert_eq!(app.backend.coordination.config_values(&["moog_rate_limit"]).await.unwrap(), vec![Some("80".into())]);

    let bad = [
        ("moog_rate_limit", json!({"value": "lots"}), "value"),
        ("moog_rate_limit", json!({"value": [1]}), "value"),
        ("moog_rate_limit", json!({"reason": "x"}), "value"),
        ("no_such_key", json!({"value": 1}), "key"),
    ];
    for (key, body, field) in bad {
        let r = send(&app, Method::PUT, &format!("/api/v2/config/{key}"), Some(body.clone())).await;
        assert_eq!((r.status, r.body["field"].as_str()), (400, Some(field)), "{body}: {}", r.text);
    }
    let r = app.client.get("/api/v2/config/moog_rate_limit").await;
    assert_eq!((&r.body["value"], r.body["default"].is_string()), (&json!("80"), true), "{}", r.text);

    let r = send(&app, Method::DELETE, "/api/v2/config/moog_rate_limit", Some(json!({"reason": "back"}))).await;
    assert_eq!((r.status, &r.body["old_value"]), (200, &json!("80")), "{}", r.text);
    assert_eq!(send(&app, Method::DELETE, "/api/v2/config/moog_rate_limit", None).await.status, 404);

    let r = app.client.get("/api/v1/config/history?limit=2").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["pagination"], json!({"page": 1, "limit": 2, "total": 3, "pages": 2}));
    let history = r.body["history"].as_array().unwrap();
    assert_eq!(history[0]["operation"], "DELETE");
    assert_eq!(history[0]["reason"], "back");
    assert_eq!(history[1]["new_values"], json!({"key": "moog_rate_limit", "value": "80"}));
    assert_eq!(history[1]["changed_by"], "webui_api:default");
    let r = app.client.get("/api/v1/config/history?page=x").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("page")), "{}", r.text);
}

async fn config_audit_search(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let id = create_rule(&app, "A").await;
    send(&app, Method::PUT, &format!("/api/v2/rules/{id}"), Some(json!({"priority": 1}))).await;
    app.client.post("/api/v2/dev-hosts", &json!({"hostname": "h"})).await;
    let r = app.client.get("/api/v1/audit").await;
    assert_eq!(r.body["pagination"]["total"], 3, "{}", r.text);
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 3);
    let r = app.client.get("/api/v2/config-audit?operation=update").await;
    assert_eq!(r.body["pagination"]["total"], 1, "case-insensitive operation: {}", r.text);
    assert_eq!(r.body["changes"][0]["table_name"], "alert_rules");
    let r = app.client.get(&format!("/api/v2/audit?table_name=alert_rules&record_id={id}&changed_by=WEBUI")).await;
    assert_eq!(r.body["pagination"]["total"], 2, "{}", r.text);
    let r = app.client.get("/api/v2/audit?changed_by=someone-else").await;
    assert_eq!(r.body["pagination"], json!({"page": 1, "limit": 50, "total": 0, "pages": 0}));
    let today = Utc::now().date_naive();
    let r = app.client.get(&format!("/api/v2/audit?start_date={today}&end_date={today}")).await;
    assert_eq!(r.body["pagination"]["total"], 3, "{}", r.text);
    let r = app.client.get("/api/v2/audit?end_date=2000-01-01").await;
    assert_eq!(r.body["pagination"]["total"], 0, "{}", r.text);
    for (q, field) in [
        ("operation=MERGE", "operation"),
        ("record_id=x", "record_id"),
        ("start_date=soon", "start_date"),
        ("limit=-1", "limit"),
    ] {
        let r = app.client.get(&format!("/api/v2/audit?{q}")).await;
        assert_eq!((r.status, r.body["field"].as_str()), (400, Some(field)), "{q}: {}", r.text);
    }
}

async fn event_audit_search_pages_stably(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let (a, b) = (create_rule(&app, "A").await as i32, create_rule(&app, "B").await as i32);
    let mut rows = Vec::new();
    for i in 0..120 {
        let (rule, host, decision, fwd) =
            if i % 3 == 0 { (a, "h1", "Page_and_ticket", true) } else { (b, "h2", "Ignore", false) };
        // Pairs of events share a timestamp: the order must still be total.
        rows.push(audit_record(rule, host, decision, fwd, i / 2));
    }
    app.backend.store.write_audit(&rows).await.unwrap();

    let mut seen = HashSet::new();
    let mut last: Option<String> = None;
    for page in 1..=3 {
        let r = app.client.get(&format!("/api/v1/audit-logs?page={page}&limit=50")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["pagination"], json!({"page": page, "limit": 50, "total": 120, "pages": 3}));
        for row in r.body["logs"].as_array().unwrap() {
            assert!(seen.insert(row["id"].as_i64().unwrap()), "a row on two pages");
            let t = row["event_timestamp"].as_str().unwrap().to_owned();
            assert!(last.as_ref().is_none_or(|l| *l >= t), "newest first");
            assert!(row["raw_message"].as_str().unwrap().contains("hostname"), "the stored JSON text");
            last = Some(t);
        }
    }
    assert_eq!(seen.len(), 120);
    let total = |q: String| {
        let app = &app;
        async move {
            let r = app.client.get(&format!("/api/v2/audit-logs?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body["pagination"]["total"].as_u64().unwrap()
        }
    };
    assert_eq!(total("hostname=h1".into()).await, 40);
    assert_eq!(total(format!("rule_id={b}")).await, 80);
    assert_eq!(total("decision=Page_and_ticket".into()).await, 40);
    assert_eq!(total("forwarded=false".into()).await, 80);
    assert_eq!(total("hostname=h2&forwarded=true".into()).await, 0);
    let since = (Utc::now() - Duration::minutes(10)).to_rfc3339();
    let since = since.replace('+', "%2B");
    assert_eq!(total(format!("start_date={since}")).await, 20, "minutes 0..=9, two events each");
    let old = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap().to_rfc3339().replace('+', "%2B");
    assert_eq!(total(format!("end_date={old}")).await, 0);
    for (q, field) in
        [("page=0", "page"), ("page=two", "page"), ("rule_id=x", "rule_id"), ("forwarded=perhaps", "forwarded")]
    {
        let r = app.client.get(&format!("/api/v2/audit-logs?{q}")).await;
        assert_eq!((r.status, r.body["field"].as_str()), (400, Some(field)), "{q}: {}", r.text);
    }
}

async fn rule_tester_validator_and_event_lookup(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let first = create_rule(&app, "LINK").await;
    let mut body = rule_body("DOWN");
    body["priority"] = json!(20);
    let second = app.client.post("/api/v2/rules", &body).await.body["id"].as_i64().unwrap();
    app.client.post("/api/v2/dev-hosts", &json!({"hostname": "lab1"})).await;
    let event = json!({"hostname": "lab1", "message": "interface DOWN", "syslog_severity": 3});
    let r = app.client.post("/api/v2/rules/test", &json!({"event": event})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["matched_rule_id"], second, "{}", r.text);
    assert_eq!(r.body["host_is_development"], true);
    assert_eq!(r.body["development"]["handling"], "Ticket_only");
    assert_eq!(r.body["not_matched"][0]["rule_id"], first, "{}", r.text);
    assert!(r.body["not_matched"][0]["reason"].is_string());
    let r = app.client.post("/api/v2/rules/test", &json!({"event": 5})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("event")), "{}", r.text);
    // v2 only: under v1 the path is /rules/{id}, which takes no POST.
    assert_eq!(app.client.post("/api/v1/rules/test", &json!({})).await.status, 405);

    let r = app.client.post("/api/v2/rules/validate", &rule_body("ok")).await;
    assert_eq!((r.status, &r.body["valid"]), (200, &json!(true)), "{}", r.text);
    let mut bad = rule_body("a(b");
    bad["match_type"] = json!("regex");
    let r = app.client.post("/api/v2/rules/validate", &bad).await;
    assert_eq!((&r.body["valid"], &r.body["field"]), (&json!(false), &json!("match_string")), "{}", r.text);
    assert_eq!(app.backend.store.list_rules().await.unwrap().len(), 2, "validate stores nothing");

    let rec = audit_record(first as i32, "h9", "Page_and_ticket", true, 1);
    let id = rec.event_id.to_string();
    app.backend.store.write_audit(&[rec]).await.unwrap();
    let r = app.client.get(&format!("/api/v2/events/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((&r.body["audit"]["event_id"], &r.body["audit"]["hostname"]), (&json!(id), &json!("h9")));
    let r = app.client.get(&format!("/api/v2/audit-logs?event_id={id}")).await;
    assert_eq!(r.body["pagination"]["total"], 1, "{}", r.text);
    assert_eq!(app.client.get(&format!("/api/v2/events/{}", EventId::new())).await.status, 404);
    assert_eq!(app.client.get(&format!("/api/v1/events/{id}")).await.status, 404, "v2 only");
    let r = app.client.get("/api/v2/events/nope").await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("event_id")), "{}", r.text);
}

/// A change made over the API reaches a running alerter: the rules version the alerter checks
/// before every batch has moved when the answer arrives, and the reload signal follows (Redis
/// pub/sub `mutt:config:reload` within a second; embedded: the watcher's one-second poll).
async fn changes_reach_the_alerters_within_a_second(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let watcher = app.backend.coordination.clone();
    tokio::spawn(async move {
        watcher
            .watch_rules_changed(
                Box::new(move || {
                    let _ = tx.send(std::time::Instant::now());
                }),
                stop,
            )
            .await;
    });
    // The watcher subscribes in the background: give it a moment, then drain anything early.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while rx.try_recv().is_ok() {}
    let before = app.backend.store.rules_version().await.unwrap();
    let sent = std::time::Instant::now();
    let id = create_rule(&app, "NEW-RULE").await;
    assert_ne!(app.backend.store.rules_version().await.unwrap(), before, "checked before every batch");
    // Redis: pub/sub, at once. Embedded: the watcher polls the version every second (the
    // alerter in the same process has already seen it before its next batch).
    let limit = match kind {
        BackendKind::RedisPostgres => std::time::Duration::from_secs(1),
        BackendKind::Embedded => std::time::Duration::from_millis(2500),
    };
    let heard = tokio::time::timeout(limit, rx.recv()).await;
    let heard = heard.expect("the alerters are told in time").expect("a signal");
    let rules = mutt_core::RuleSet::compile(app.backend.store.load_rules().await.unwrap());
    assert!(
        rules
            .first_match(&mutt_core::Event::from_value(json!({"hostname": "h", "message": "NEW-RULE"})).unwrap())
            .is_some_and(|r| i64::from(r.id) == id)
    );
    eprintln!(
        "{}: reload signal {} ms after the request was sent",
        kind.name(),
        heard.duration_since(sent).as_millis()
    );
}

both_backends!(
    changes_reach_the_alerters_within_a_second,
    rule_tester_validator_and_event_lookup,
    versions_headers_and_parity,
    rules_get_update_delete_with_audit,
    rule_with_history_is_a_409_or_deactivated,
    development_hosts_and_teams,
    dynamic_configuration,
    config_audit_search,
    event_audit_search_pages_stably,
);
