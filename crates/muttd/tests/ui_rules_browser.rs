//! The console's rules, development-hosts and teams pages in headless Chromium against a
//! whole pipeline in this process (ingestor, alerter, forwarder to a webhook receiver, web
//! role; `app::start` as `muttd run` does it), on the embedded backend and on Redis +
//! PostgreSQL: log in, a bad regex and half a flap limit refused with the parser's error next
//! to the field, an event tested against the draft before it is saved (htmx; the tester names
//! the flap limit), the rule created with its limit, an event sent to the ingestor and seen
//! among the rule's recent matches, the list's flap badge; a development host added and a CSV
//! import with a bad line; a team mapping added. The embedded run saves the screenshots
//! `docs/ui/{rules,rule-form-error,rule-tester,hosts,teams}.png`.
//!
//! Skipped without `chromium` and `chromedriver` (a failure under CI).

mod common;

use mutt_store::NewRule;
use mutt_store::manage::EventAuditFilter;
use mutt_testapp::{ApiClient, BackendKind, Site, both_backends};
use mutt_testkit::WebhookReceiver;
use mutt_testkit::browser::Browser;
use muttd::app::App;
use serde_json::json;
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "rules-ui-ingest-key";
const WEB_KEY: &str = "rules-ui-web-key";

/// The browsers run one at a time (two Chromiums on two cores starve each other).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Pipeline {
    app: App,
    _receiver: WebhookReceiver,
    _site: Site,
    ingest: ApiClient,
    web: String,
}

async fn start(kind: BackendKind) -> Pipeline {
    let receiver = WebhookReceiver::start().await;
    let site = Site::fresh(kind).await;
    let config = common::site_config(&site, receiver.url());
    let web_key = format!("oncall:{WEB_KEY}");
    let secrets = [("INGEST_API_KEY", INGEST_KEY), ("MOOG_API_KEY", "rules-ui-moog-key"), ("WEBUI_API_KEY", &web_key)];
    let (app, ingest, web) = common::start_all(&config, &secrets, INGEST_KEY).await;
    Pipeline { app, _receiver: receiver, _site: site, ingest, web }
}

/// A few rules so that the list has something to show.
async fn seed_rules(p: &Pipeline) {
    let store = p.app.store.clone().unwrap();
    for (text, prio, team, active) in
        [("CRITICAL", 10, "NETO", true), ("FAN-FAIL", 30, "FACILITIES", true), ("OLD-NOISE", 90, "NETO", false)]
    {
        let rule = NewRule {
            priority: prio,
            team_assignment: team.into(),
            is_active: active,
            ..mutt_testapp::fixtures::rule(text)
        };
        store.create_rule(&rule).await.unwrap();
    }
}

/// Screenshots from one backend only (the same pages).
fn shoot(kind: BackendKind) -> bool {
    kind == BackendKind::Embedded
}

/// A bad regex, the draft tested, then saved; an event through the pipeline among the rule's
/// recent matches.
async fn rule_form_tester_and_matches(p: &Pipeline, b: &Browser, kind: BackendKind) {
    b.goto(&format!("{}/rules/new", p.web)).await;
    b.find("#match_type").await.select_by_value("regex").await.expect("choose regex");
    b.fill("#match_string", "LINK-(DOWN").await;
    b.fill("#priority", "20").await;
    b.fill("#team_assignment", "NETO").await;
    b.click("#save").await;
    let error = b.wait_for_text("#match_string-error", "not a valid regex").await;
    assert!(error.starts_with("match_string:"), "{error}");
    let invalid = b.find("#match_string").await.attr("aria-invalid").await.unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    if shoot(kind) {
        b.screenshot("rule-form-error").await;
    }

    // Fixed; half a flap limit refused next to the missing field.
    b.fill("#match_string", "LINK-(UP|DOWN)").await;
    b.fill("#flap_threshold", "5").await;
    b.click("#save").await;
    let error = b.wait_for_text("#flap_window_secs-error", "set both or neither").await;
    assert!(error.starts_with("flap_window_secs: required with flap_threshold"), "{error}");

    // Completed, and tested before saving (htmx swaps the form in place).
    b.fill("#flap_window_secs", "60").await;
    b.fill("#event_json", r#"{"hostname": "edge-router-7", "message": "LINK-DOWN on ge-0/0/1", "syslog_severity": 3}"#)
        .await;
    b.click("#test").await;
    let result = b.wait_for_text("#tester-result", "this draft").await;
    assert!(result.contains("On a production host: Page_and_ticket"), "{result}");
    assert!(result.contains("message does not contain \"CRITICAL\""), "why CRITICAL did not match: {result}");
    assert!(result.contains("Flap limit: at most 5 alerts per host within 60 seconds"), "{result}");
    assert!(b.url().await.ends_with("/rules/new"), "testing stays on the form");
    let store = p.app.store.clone().unwrap();
    assert_eq!(store.list_rules().await.unwrap().len(), 3, "testing saves nothing");
    if shoot(kind) {
        b.screenshot("rule-tester").await;
    }

    b.click("#save").await;
    b.wait_for_text(".flash.ok", "created").await;
    let id: i32 = b.url().await.rsplit('/').next().and_then(|s| s.parse().ok()).expect("the new rule's page");
    let rules = store.list_rules().await.unwrap();
    let saved = rules.iter().find(|r| r.id == id).expect("the new rule stored");
    assert_eq!(saved.match_string.as_deref(), Some("LINK-(UP|DOWN)"));
    assert_eq!((saved.flap_threshold, saved.flap_window_secs), (Some(5), Some(60)));

    // The alerter uses it at once (the console told it); the event shows among the matches.
    let reply = p.ingest.post("/ingest", &json!({"hostname": "edge-router-7", "message": "LINK-UP on ge-0/0/1", "timestamp": chrono::Utc::now().to_rfc3339()})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let filter = EventAuditFilter { rule_id: Some(id), limit: 1, ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.search_event_audit(&filter).await.unwrap().total == 0 {
        assert!(Instant::now() < deadline, "the event was not handled by the new rule within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.goto(&format!("{}/rules/{id}", p.web)).await;
    b.wait_for_text("main", "edge-router-7").await;

    b.goto(&format!("{}/rules", p.web)).await;
    b.wait_for_text("#rules", "LINK-(UP|DOWN)").await;
    b.wait_for_text("#rules", "flap 5/60s").await;
    if shoot(kind) {
        b.screenshot("rules").await;
    }
}

async fn hosts_and_teams(p: &Pipeline, b: &Browser, kind: BackendKind) {
    b.goto(&format!("{}/hosts", p.web)).await;
    // From the keyboard: typed, then Enter submits the form.
    b.fill("#add-hostname", "lab-router-1\u{E007}").await;
    b.wait_for_text(".flash.ok", "lab-router-1 is now a development host").await;
    b.fill("#import-csv", "hostname\nlab-router-2\nlab-router-1\nlab-switch-3,extra").await;
    b.click("#import-form button[type=submit]").await;
    let errors = b.wait_for_text("#import-errors", "Line 3: lab-router-1 is already a development host").await;
    assert!(errors.contains("Line 4: expected 1 field(s)"), "{errors}");
    let store = p.app.store.clone().unwrap();
    assert_eq!(store.development_hosts().await.unwrap(), ["lab-router-1"], "nothing imported");
    if shoot(kind) {
        b.screenshot("hosts").await;
    }

    b.goto(&format!("{}/teams", p.web)).await;
    b.fill("#add-hostname", "core-sw-1").await;
    b.fill("#add-team", "CORE").await;
    b.click("form[action='/teams/add'] button[type=submit]").await;
    b.wait_for_text(".flash.ok", "core-sw-1 now goes to CORE").await;
    b.fill("#import-csv", "hostname,team_assignment\nedge-1,EDGE\ncore-sw-2,CORE").await;
    b.click("#import-form button[type=submit]").await;
    b.wait_for_text(".flash.ok", "Imported 2 team mapping(s).").await;
    b.wait_for_text("#teams", "edge-1").await;
    assert_eq!(store.device_teams().await.unwrap().len(), 3);
    if shoot(kind) {
        b.screenshot("teams").await;
    }
}

async fn rules_hosts_and_teams_in_a_browser(kind: BackendKind) {
    let _serial = SERIAL.lock().await;
    let Some(b) = Browser::start("ui_rules_browser").await else { return };
    let p = start(kind).await;
    seed_rules(&p).await;
    b.login(&p.web, WEB_KEY).await;
    rule_form_tester_and_matches(&p, &b, kind).await;
    hosts_and_teams(&p, &b, kind).await;
    b.stop().await;
    p.app.shutdown.cancel();
}

both_backends!(rules_hosts_and_teams_in_a_browser);
