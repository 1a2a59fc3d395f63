//! The console's operations pages in headless Chromium against a whole pipeline in this
//! process (ingestor, alerter, forwarder to a webhook receiver, web role; `app::start` as
//! `muttd run` does it), on the embedded backend and on Redis + PostgreSQL: an event sent to
//! the ingestor found in the audit search and on its own page with its delivery outcome; a
//! configuration value changed and its diff in the history; an alert the receiver refused
//! replayed from the DLQ (after the confirmation) and the replay in the audit; an event no rule
//! matched on the unhandled page. The embedded run saves the screenshots `docs/ui/{audit,
//! event,config,dlq,unhandled}.png`.
//!
//! Skipped without `chromium` and `chromedriver` (a failure under CI).

mod common;

use mutt_queue::dlq::Dlq;
use mutt_store::manage::EventAuditFilter;
use mutt_testapp::{ApiClient, BackendKind, Site, both_backends};
use mutt_testkit::browser::Browser;
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use muttd::app::App;
use serde_json::json;
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "ui-ingest-key";
const WEB_KEY: &str = "ui-web-key";

/// The browsers run one at a time (two Chromiums on two cores starve each other).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Pipeline {
    app: App,
    receiver: WebhookReceiver,
    _site: Site,
    ingest: ApiClient,
    web: String,
}

async fn start(kind: BackendKind) -> Pipeline {
    let receiver = WebhookReceiver::start().await;
    // Refused for good: the alert goes to the forwarder's DLQ at once.
    receiver.set_mode(ReceiverMode::Status(400));
    let site = Site::fresh(kind).await;
    let config = common::site_config(&site, receiver.url());
    let web_key = format!("oncall:{WEB_KEY}");
    let secrets = [("INGEST_API_KEY", INGEST_KEY), ("MOOG_API_KEY", "ui-moog-key"), ("WEBUI_API_KEY", &web_key)];
    let (app, ingest, web) = common::start_all(&config, &secrets, INGEST_KEY).await;
    Pipeline { app, receiver, _site: site, ingest, web }
}

impl Pipeline {
    async fn add_rule(&self, text: &str) -> i32 {
        let rule = mutt_testapp::fixtures::rule(text);
        let store = self.app.store.clone().unwrap();
        let id = store.create_rule(&rule).await.unwrap();
        let metrics = mutt_alerter::AlerterMetrics::register(&mutt_service::Metrics::new());
        self.app.alerter_rules.as_ref().unwrap().reload(store.as_ref(), &metrics).await.unwrap();
        id
    }

    async fn send(&self, host: &str, message: &str) {
        let reply = self
            .ingest
            .post(
                "/ingest",
                &json!({"hostname": host, "message": message, "timestamp": chrono::Utc::now().to_rfc3339()}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// Waits until `check` holds (15 s at most).
    async fn until<F: std::future::Future<Output = bool>>(&self, what: &str, check: impl Fn() -> F) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !check().await {
            assert!(Instant::now() < deadline, "{what} did not happen within 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Screenshots from one backend only (the same pages).
fn shoot(kind: BackendKind) -> bool {
    kind == BackendKind::Embedded
}

async fn audit_and_event(p: &Pipeline, b: &Browser, kind: BackendKind) {
    p.send("core-router-1", "LINK DOWN on ge-0/0/1").await;
    p.send("core-router-2", "LINK DOWN on xe-1/0/3").await;
    p.send("edge-7", "LINK DOWN on eth2").await;
    let store = p.app.store.clone().unwrap();
    let filter = EventAuditFilter { limit: 1, ..Default::default() };
    p.until("the audit rows", || async { store.search_event_audit(&filter).await.unwrap().total == 3 }).await;
    let dl = p.app.queue.dead_letters();
    p.until("the refused alerts in the DLQ", || async { dl.dlq_depth(Dlq::Moog).await.unwrap() == 3 }).await;

    b.goto(&format!("{}/audit", p.web)).await;
    b.wait_for_text("#audit-results", "edge-7").await;
    if shoot(kind) {
        b.screenshot("audit").await;
    }
    b.fill("#hostname", "core-router-1").await;
    b.click("form.filters button[type=submit]").await;
    b.wait_for_url("hostname=core-router-1").await;
    b.wait_for_text("#audit-results", "core-router-1").await;
    let results = b.wait_for_text("#audit-results", "Page_and_ticket").await;
    assert!(!results.contains("edge-7"), "filtered by host: {results}");
    b.click("#audit-results tbody a.mono").await;
    b.wait_for_text("#raw-message", "LINK DOWN on ge-0/0/1").await;
    b.wait_for_text("#delivery-state", "dead_lettered").await;
    if shoot(kind) {
        b.screenshot("event").await;
    }
}

async fn config_diff(p: &Pipeline, b: &Browser, kind: BackendKind) {
    b.goto(&format!("{}/config", p.web)).await;
    // A bad value: the error next to the field, nothing stored.
    b.fill("#value-unhandled_threshold", "lots").await;
    b.click("#key-unhandled_threshold button[type=submit]").await;
    b.wait_for_text("#error-unhandled_threshold", "invalid value for unhandled_threshold").await;
    b.fill("#value-unhandled_threshold", "25").await;
    b.fill("#reason-unhandled_threshold", "noisy lab").await;
    b.click("#key-unhandled_threshold button[type=submit]").await;
    b.wait_for_text(".flash.ok", "unhandled_threshold: unset → 25").await;
    let got = p.app.coordination.config_values(&["unhandled_threshold"]).await.unwrap();
    assert_eq!(got, vec![Some("25".to_owned())]);
    if shoot(kind) {
        b.screenshot("config").await;
    }
    b.goto(&format!("{}/config/history?key=unhandled_threshold", p.web)).await;
    let row = b.wait_for_text("#config-history tbody", "25").await;
    assert!(row.contains("webui_api:oncall") && row.contains("noisy lab"), "{row}");
    if shoot(kind) {
        b.screenshot("config-history").await;
    }
}

async fn dlq_replay(p: &Pipeline, b: &Browser, kind: BackendKind) {
    b.goto(&format!("{}/dlq", p.web)).await;
    b.wait_for_text("#depth-moog", "3").await;
    p.receiver.set_mode(ReceiverMode::Succeed);
    b.goto(&format!("{}/dlq/moog", p.web)).await;
    b.fill("#host", "edge-7").await;
    b.click("form.filters button[type=submit]").await;
    b.wait_for_url("host=edge-7").await;
    let entries = b.wait_for_text("#dlq-entries", "rejected_by_receiver").await;
    assert!(entries.contains("edge-7") && !entries.contains("core-router-1"), "{entries}");
    b.click("#dlq-entries tbody a[aria-label^=Replay]").await;
    b.wait_for_text("#would-move", "1").await;
    b.fill("#comment", "receiver fixed").await;
    b.click("#run").await;
    b.wait_for_text("#op-progress", "done").await;
    b.wait_for_text("#op-result", "1 entry moved").await;
    let got = p.receiver.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "the replayed alert is delivered");
    assert_eq!(p.app.queue.dead_letters().dlq_depth(Dlq::Moog).await.unwrap(), 2, "the others stay");
    b.goto(&format!("{}/dlq", p.web)).await;
    let recent = b.wait_for_text("#dlq-recent tbody", "replay").await;
    assert!(recent.contains("webui_api:oncall") && recent.contains("receiver fixed"), "{recent}");
    if shoot(kind) {
        b.screenshot("dlq").await;
    }
}

async fn unhandled(p: &Pipeline, b: &Browser, kind: BackendKind) {
    for _ in 0..3 {
        p.send("lab-switch-9", "fan tray 2 speed low").await;
    }
    p.send("lab-switch-4", "fan tray 1 speed low").await;
    let coordination = p.app.coordination.clone();
    p.until("the unhandled counters", || async {
        coordination.unhandled_counts(10).await.unwrap().iter().map(|c| c.count).sum::<u64>() == 4
    })
    .await;
    b.goto(&format!("{}/unhandled", p.web)).await;
    let table = b.wait_for_text("#unhandled tbody", "lab-switch-9").await;
    assert!(table.find("lab-switch-9") < table.find("lab-switch-4"), "most frequent first: {table}");
    assert!(table.contains("fan tray 2 speed low"), "the message is shown: {table}");
    if shoot(kind) {
        b.screenshot("unhandled").await;
    }
    b.click("#unhandled tbody a.button").await;
    let url = b.wait_for_url("/rules/new?").await;
    assert!(url.contains("/rules/new?") && url.contains("match_string=fan+tray+2+speed+low"), "{url}");
}

async fn operations_pages_in_a_browser(kind: BackendKind) {
    let _serial = SERIAL.lock().await;
    let Some(b) = Browser::start("ui_ops_browser").await else { return };
    let p = start(kind).await;
    p.add_rule("LINK DOWN").await;
    b.login(&p.web, WEB_KEY).await;
    audit_and_event(&p, &b, kind).await;
    config_diff(&p, &b, kind).await;
    dlq_replay(&p, &b, kind).await;
    unhandled(&p, &b, kind).await;
    b.stop().await;
    p.app.shutdown.cancel();
}

both_backends!(operations_pages_in_a_browser);
