//! The console's rules page over plain HTTP (no browser), on both backends: the list and its
//! filters, create/edit/deactivate with the config-audit rows the API would write (the
//! session's key name), the parser's error next to the field at fault, the tester panel
//! (pasted and picked events, the draft tested before it is saved), a rule's recent
//! matches and its flap limit (set, cleared, half a pair refused).

mod ui_client;

use chrono::Utc;
use mutt_core::EventId;
use mutt_store::AuditRecord;
use mutt_testapp::reqwest::StatusCode;
use mutt_testapp::{BackendKind, both_backends, spawn_app};
use serde_json::json;
use ui_client::{Console, Notices, audit_rows, field_error};

fn rule_form<'a>(match_type: &'a str, match_string: &'a str, priority: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("match_type", match_type),
        ("match_string", match_string),
        ("trap_oid", ""),
        ("syslog_severity", ""),
        ("priority", priority),
        ("prod_handling", "Page_and_ticket"),
        ("dev_handling", "Ignore"),
        ("team_assignment", "NETO"),
        ("is_active", "on"),
    ]
}

async fn api_rule(app: &mutt_testapp::TestApp, match_string: &str, team: &str, active: bool) -> i64 {
    let body = json!({"match_string": match_string, "priority": 10, "prod_handling": "Page_and_ticket",
        "dev_handling": "Ignore", "team_assignment": team, "is_active": active});
    let r = app.client.post("/api/v2/rules", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_i64().unwrap()
}

async fn list_filters_rules(kind: BackendKind) {
    let app = spawn_app(kind).await;
    api_rule(&app, "LINK-DOWN", "NETO", true).await;
    api_rule(&app, "FAN-FAIL", "CORE", true).await;
    api_rule(&app, "OLD-NOISE", "CORE", false).await;
    let c = Console::login(&app).await;
    let (status, html) = c.get("/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert!(["LINK-DOWN", "FAN-FAIL", "OLD-NOISE", "3 rules"].iter().all(|s| html.contains(s)), "{html}");
    assert!(html.contains("aria-current=\"page\">Rules"), "the nav marks the page");
    for (query, shown, hidden) in [
        ("q=link", "LINK-DOWN", "FAN-FAIL"),
        ("team=CORE", "FAN-FAIL", "LINK-DOWN"),
        ("active=no", "OLD-NOISE", "FAN-FAIL"),
        ("active=yes&team=CORE", "FAN-FAIL", "OLD-NOISE"),
    ] {
        let (status, html) = c.get(&format!("/rules?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        let (shown, hidden) = (format!("<code>{shown}</code>"), format!("<code>{hidden}</code>"));
        assert!(html.contains(&shown) && !html.contains(&hidden), "{query}: {html}");
    }
    let (_, html) = c.get("/rules?q=nothing-like-this").await;
    assert!(html.contains("No rule matches these filters."));

    // The unhandled page's "create a rule from this": the form and the tester pre-filled.
    let (status, html) = c
        .get("/rules/new?match_type=contains&match_string=PSU%20failed&event_json=%7B%22hostname%22%3A%22r1%22%7D")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"value="PSU failed""#)
            && ui_client::unescape(&html).contains(r#"{"hostname":"r1"}</textarea>"#),
        "{html}"
    );
    assert!(html.contains(r#"value="100""#) && html.contains(r#"value="Page_and_ticket""#), "defaults: {html}");
}

async fn create_edit_and_deactivate_are_audited(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let mut notices = Notices::listen(&app).await;
    let mut form = rule_form("regex", r"LINK-(UP|DOWN)", "20");
    form.extend([("reason", "from the console"), ("action", "save")]);
    let r = c.post("/rules/new", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = ui_client::location(&r);
    let id: i32 = at.strip_prefix("/rules/").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{at}"));
    assert!(notices.heard(std::time::Duration::from_millis(2500)).await, "the alerters are told");
    let (_, html) = c.get(&at).await;
    assert!(html.contains(&format!("Rule {id} created.")), "{html}");
    assert!(html.contains(r#"value="LINK-(UP|DOWN)""#), "{html}");
    let rule = app.backend.store.get_rule(id).await.unwrap().unwrap();
    assert_eq!((rule.priority, rule.match_type.as_str(), rule.is_active), (20, "regex", true));
    let rows = audit_rows(&app, "alert_rules").await;
    assert_eq!(rows[0]["operation"], "CREATE");
    assert_eq!(rows[0]["changed_by"], "webui_api:default", "the session's key name");
    assert_eq!(rows[0]["reason"], "from the console");
    assert_eq!(rows[0]["new_values"]["match_string"], "LINK-(UP|DOWN)");

    // Edit: only the changed field goes to the audit.
    let mut form = rule_form("regex", r"LINK-(UP|DOWN)", "5");
    form.push(("action", "save"));
    let r = c.post(&at, &form).await;
    assert_eq!((r.status(), ui_client::location(&r)), (StatusCode::SEE_OTHER, at.clone()));
    assert_eq!(app.backend.store.get_rule(id).await.unwrap().unwrap().priority, 5);
    let rows = audit_rows(&app, "alert_rules").await;
    assert_eq!(rows[0]["operation"], "UPDATE");
    assert_eq!(rows[0]["old_values"], json!({"priority": 20}));
    assert_eq!(rows[0]["new_values"], json!({"priority": 5}));

    // Deactivate: kept, inactive, audited; the page says so and offers no second deactivate.
    let r = c.post(&format!("{at}/deactivate"), &[("reason", "noisy")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!app.backend.store.get_rule(id).await.unwrap().unwrap().is_active);
    let rows = audit_rows(&app, "alert_rules").await;
    assert_eq!(
        (rows[0]["new_values"].clone(), rows[0]["reason"].clone()),
        (json!({"is_active": false}), json!("noisy"))
    );
    let (_, html) = c.get(&at).await;
    assert!(html.contains(&format!("Rule {id} deactivated.")) && html.contains("inactive"), "{html}");
    assert!(!html.contains("/deactivate\""), "{html}");

    // No such rule: a page saying so, 404.
    let (status, html) = c.get("/rules/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("There is no rule 999999."), "{html}");
}

async fn a_bad_regex_shows_the_parsers_error_next_to_the_field(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let mut form = rule_form("regex", "LINK-(DOWN", "10");
    form.push(("action", "save"));
    let r = c.post("/rules/new", &form).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    let error = field_error(&html, "match_string").expect("an error next to match_string");
    assert!(error.starts_with("match_string: not a valid regex:"), "{error}");
    assert!(html.contains(r#"aria-describedby="match_string-error""#), "the input points at its error");
    assert!(html.contains(r#"value="LINK-(DOWN""#), "what was typed stays in the field");
    assert!(app.backend.store.list_rules().await.unwrap().is_empty(), "nothing stored");

    // A number that is not one, and an empty team: each next to its own field.
    let mut form = rule_form("contains", "X", "ten");
    form.push(("action", "save"));
    let html = c.post("/rules/new", &form).await.text().await.unwrap();
    assert_eq!(field_error(&html, "priority").as_deref(), Some("priority: must be a whole number"));
    let mut form: Vec<_> =
        rule_form("contains", "X", "10").into_iter().filter(|(k, _)| *k != "team_assignment").collect();
    form.push(("action", "save"));
    let html = c.post("/rules/new", &form).await.text().await.unwrap();
    let error = field_error(&html, "team_assignment").expect("an error next to the team");
    assert!(error.starts_with("team_assignment: must be 1 to 100 characters"), "{error}");
    // The same on an edit: the stored rule stays as it was.
    let id = api_rule(&app, "KEEP", "NETO", true).await;
    let mut form = rule_form("regex", "(", "10");
    form.push(("action", "save"));
    let r = c.post(&format!("/rules/{id}"), &form).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&r.text().await.unwrap(), "match_string").is_some());
    assert_eq!(app.backend.store.get_rule(id as i32).await.unwrap().unwrap().match_string.as_deref(), Some("KEEP"));
}

async fn the_tester_runs_the_draft_before_it_is_saved(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let first = api_rule(&app, "CRITICAL", "NETO", true).await;
    let c = Console::login(&app).await;
    let event = r#"{"hostname": "router1", "message": "LINK-DOWN on Gi0/1"}"#;
    let mut form = rule_form("contains", "LINK-DOWN", "20");
    form.extend([("event_json", event), ("event_id", ""), ("action", "test")]);
    let (status, html) = c.post_page("/rules/new", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<strong>Matched:</strong>") && html.contains("<strong>this draft</strong>"), "{html}");
    assert!(html.contains("On a production host: Page_and_ticket (forwarded to Moogsoft)"), "{html}");
    assert!(html.contains(&format!("<a href=\"/rules/{first}\">{first}</a>")), "the earlier rule is listed: {html}");
    assert!(html.contains("CRITICAL"), "with why it did not match: {html}");
    assert_eq!(app.backend.store.list_rules().await.unwrap().len(), 1, "testing saves nothing");

    // A draft that does not parse: its error next to the field, the stored rules tested alone.
    let mut form = rule_form("regex", "LINK-(", "20");
    form.extend([("event_json", event), ("action", "test")]);
    let (_, html) = c.post_page("/rules/new", &form).await;
    assert!(field_error(&html, "match_string").is_some(), "{html}");
    assert!(html.contains("No rule matched") && html.contains("left out"), "{html}");

    // Not JSON, and an event the ingestor would refuse: said next to the event.
    for (bad, says) in
        [("{not json", "not valid JSON"), ("[1]", "must be a JSON object"), (r#"{"message": 42}"#, "would refuse")]
    {
        let mut form = rule_form("contains", "X", "20");
        form.extend([("event_json", bad), ("action", "test")]);
        let (_, html) = c.post_page("/rules/new", &form).await;
        let error = field_error(&html, "event").unwrap_or_default();
        assert!(error.contains(says), "{bad}: {error}: {html}");
    }

    // A picked event from the audit: tested, and its JSON put in the text area; the rule it
    // matched lists it among its recent matches.
    let id = EventId::new();
    let raw = json!({"hostname": "router9", "message": "CRITICAL power loss", "_event_id": id.to_string()});
    let record = AuditRecord {
        event_id: id,
        event_timestamp: Utc::now(),
        hostname: "router9".into(),
        matched_rule_id: first as i32,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: raw.to_string(),
        silenced_by: None,
        flap_suppressed: false,
    };
    app.backend.store.write_audit(&[record]).await.unwrap();
    let (_, html) = c.get(&format!("/rules/{first}")).await;
    assert!(html.contains(&id.to_string()) && html.contains("router9"), "recent matches and the picker: {html}");
    assert!(html.contains("The newest 1 of 1 audited events"), "{html}");
    let mut form = rule_form("contains", "power", "50");
    let event_id = id.to_string();
    form.extend([("event_json", ""), ("event_id", event_id.as_str()), ("action", "test")]);
    let (_, html) = c.post_page(&format!("/rules/{first}"), &form).await;
    // Editing rule `first` into "power" at priority 50: the draft (in its place) matches.
    assert!(html.contains("<strong>this draft</strong>"), "{html}");
    assert!(html.contains("CRITICAL power loss"), "the picked event fills the text area: {html}");
    let stored = app.backend.store.get_rule(first as i32).await.unwrap().unwrap();
    assert_eq!(stored.match_string.as_deref(), Some("CRITICAL"), "testing an edit saves nothing");
}

/// The rule form's flap fields: set (stored, audited, shown in the list and the tester), a
/// half pair refused next to the missing field, cleared; a form that does not post them
/// keeps the stored limit.
async fn flap_limits_are_set_cleared_and_checked(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let (_, html) = c.get("/rules/new").await;
    assert!(html.contains("id=\"flap_threshold\"") && html.contains("id=\"flap_window_secs\""), "{html}");
    assert!(html.contains("At most N alerts per host within T seconds; the rest are audited and summarised."));

    let mut form = rule_form("contains", "LINK-DOWN", "20");
    form.extend([("flap_threshold", "5"), ("flap_window_secs", "60"), ("action", "save")]);
    let r = c.post("/rules/new", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = ui_client::location(&r);
    let id: i32 = at.strip_prefix("/rules/").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{at}"));
    let rule = app.backend.store.get_rule(id).await.unwrap().unwrap();
    assert_eq!((rule.flap_threshold, rule.flap_window_secs), (Some(5), Some(60)));
    let rows = audit_rows(&app, "alert_rules").await;
    assert_eq!(
        (rows[0]["new_values"]["flap_threshold"].clone(), rows[0]["new_values"]["flap_window_secs"].clone()),
        (json!(5), json!(60))
    );
    let (_, html) = c.get(&at).await;
    assert!(html.contains(r#"id="flap_threshold" name="flap_threshold" value="5""#), "{html}");
    assert!(html.contains(r#"id="flap_window_secs" name="flap_window_secs" value="60""#), "{html}");
    assert!(
        html.contains("At most 5 alerts per host within 60 seconds; the rest are audited and summarised."),
        "{html}"
    );
    let (_, html) = c.get("/rules").await;
    assert!(html.contains(">flap 5/60s</span>") && html.contains("Flap limit"), "the list's badge: {html}");

    // The tester says the winning rule has a flap limit; the API's tester carries it.
    let event = r#"{"hostname": "router1", "message": "LINK-DOWN on Gi0/1"}"#;
    let mut form = rule_form("contains", "LINK-DOWN", "20");
    form.extend([("flap_threshold", "5"), ("flap_window_secs", "60"), ("event_json", event), ("action", "test")]);
    let (_, html) = c.post_page(&at, &form).await;
    assert!(html.contains("Flap limit: at most 5 alerts per host within 60 seconds"), "{html}");
    let r = app.client.post("/api/v2/rules/test", &json!({"event": {"hostname": "r1", "message": "LINK-DOWN"}})).await;
    assert_eq!((r.status, r.body["matched_rule_id"].clone()), (200, json!(id)), "{}", r.text);
    assert_eq!(r.body["flap_limit"], json!({"threshold": 5, "window_secs": 60}));

    // Half a pair: the parser's error next to the missing field; the stored limit unchanged.
    for (set, value, missing) in
        [("flap_threshold", "5", "flap_window_secs"), ("flap_window_secs", "60", "flap_threshold")]
    {
        let other = if set == "flap_threshold" { "flap_window_secs" } else { "flap_threshold" };
        let mut form = rule_form("contains", "LINK-DOWN", "20");
        form.extend([(set, value), (other, ""), ("action", "save")]);
        let r = c.post(&at, &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        let error = field_error(&html, missing).unwrap_or_else(|| panic!("an error next to {missing}: {html}"));
        assert_eq!(error, format!("{missing}: required with {set} (set both or neither)"));
        assert!(html.contains(&format!(r#"aria-describedby="{missing}-error""#)), "{html}");
    }
    // Out of range, and not a number: next to the field too.
    let mut form = rule_form("contains", "LINK-DOWN", "20");
    form.extend([("flap_threshold", "5"), ("flap_window_secs", "86401"), ("action", "save")]);
    let html = c.post(&at, &form).await.text().await.unwrap();
    assert!(field_error(&html, "flap_window_secs").is_some_and(|e| e.starts_with("flap_window_secs:")), "{html}");
    let mut form = rule_form("contains", "LINK-DOWN", "20");
    form.extend([("flap_threshold", "five"), ("flap_window_secs", "60"), ("action", "save")]);
    let html = c.post(&at, &form).await.text().await.unwrap();
    assert_eq!(field_error(&html, "flap_threshold").as_deref(), Some("flap_threshold: must be a whole number"));
    let rule = app.backend.store.get_rule(id).await.unwrap().unwrap();
    assert_eq!((rule.flap_threshold, rule.flap_window_secs), (Some(5), Some(60)), "refused edits store nothing");

    // A form without the flap fields (an older page) keeps the limit.
    let mut form = rule_form("contains", "LINK-DOWN", "15");
    form.push(("action", "save"));
    assert_eq!(c.post(&at, &form).await.status(), StatusCode::SEE_OTHER);
    let rule = app.backend.store.get_rule(id).await.unwrap().unwrap();
    assert_eq!((rule.priority, rule.flap_threshold, rule.flap_window_secs), (15, Some(5), Some(60)));

    // Cleared: both empty; audited as removed, the list shows no limit.
    let mut form = rule_form("contains", "LINK-DOWN", "15");
    form.extend([("flap_threshold", ""), ("flap_window_secs", " "), ("action", "save")]);
    let r = c.post(&at, &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let rule = app.backend.store.get_rule(id).await.unwrap().unwrap();
    assert_eq!((rule.flap_threshold, rule.flap_window_secs), (None, None));
    let rows = audit_rows(&app, "alert_rules").await;
    assert_eq!(rows[0]["old_values"], json!({"flap_threshold": 5, "flap_window_secs": 60}), "{}", rows[0]);
    let (_, html) = c.get("/rules").await;
    assert!(!html.contains(">flap 5/60s</span>"), "{html}");
    let (_, html) = c.get(&at).await;
    assert!(html.contains(r#"name="flap_threshold" value="""#), "{html}");
}

async fn forms_need_the_csrf_token(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let mut form = rule_form("contains", "X", "10");
    form.push(("action", "save"));
    let r = c.post_without_csrf("/rules/new", &form).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.backend.store.list_rules().await.unwrap().is_empty());
    // Every form on the page carries the token.
    let (_, html) = c.get("/rules/new").await;
    let forms = html.matches("<form method=\"post\"").count();
    assert!(forms >= 2, "the rule form and logout");
    assert_eq!(html.matches(&format!("name=\"csrf\" value=\"{}\"", c.csrf)).count(), forms, "{html}");
}

both_backends!(
    list_filters_rules,
    create_edit_and_deactivate_are_audited,
    a_bad_regex_shows_the_parsers_error_next_to_the_field,
    the_tester_runs_the_draft_before_it_is_saved,
    forms_need_the_csrf_token,
    flap_limits_are_set_cleared_and_checked,
);
