//! The console in headless Chromium against a real `muttd run`, on the embedded backend and
//! on Redis + PostgreSQL: a wrong key refused on the login page, log in, the overview, an
//! event POSTed to the ingestor counted there, log out (a page then needs the login again).

mod common;

use mutt_testapp::{BackendKind, Site};
use mutt_testkit::WebhookReceiver;
use mutt_testkit::browser::Browser;
use std::process::Stdio;
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "ui-browser-ingest-key";
const WEB_KEY: &str = "ui-browser-web-key";

/// `muttd` in `dir` on `site`: its Redis and PostgreSQL, or the embedded backend.
fn muttd(dir: &std::path::Path, site: &Site, webhook: &str) -> std::process::Command {
    let mut cmd = common::muttd(dir);
    cmd.env("INGEST_API_KEY", INGEST_KEY).env("WEBUI_API_KEY", WEB_KEY).env("MUTT_LOG__LEVEL", "warn");
    if let (Some(redis), Some(db)) = (site.redis_url(), site.database_url()) {
        cmd.env("MUTT_REDIS__URL", redis)
            .env("MUTT_REDIS__KEY_PREFIX", site.key_prefix().unwrap_or_default())
            .env("MUTT_DATABASE__URL", db)
            .env("MUTT_FORWARDER__WEBHOOK_URL", webhook)
            .env("MOOG_API_KEY", "ui-browser-moog-key");
    }
    cmd
}

/// `muttd migrate`, then `muttd run`; its ingest URL and the web role's base URL.
fn start(dir: &std::path::Path, site: &Site, webhook: &str) -> (common::KillOnDrop, String, String) {
    let migrate = muttd(dir, site, webhook).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "muttd migrate: {}", String::from_utf8_lossy(&migrate.stderr));
    let mut cmd = muttd(dir, site, webhook);
    let (child, stdout) = common::spawn_run(cmd.stderr(Stdio::inherit()));
    let mut roles = Vec::new();
    stdout.read_until("every role's address", |line| {
        if let Some((role, addr)) = common::listening(line) {
            roles.push((role.to_owned(), addr));
        }
        roles.len() >= 4
    });
    let url = |name: &str| {
        let (_, addr) = roles.iter().find(|(r, _)| r == name).unwrap_or_else(|| panic!("no {name} in {roles:?}"));
        format!("http://{addr}")
    };
    (child, format!("{}/ingest", url("ingestor")), url("web"))
}

async fn console_on_muttd_run(kind: BackendKind) {
    let Some(browser) = Browser::start("console_on_muttd_run").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = Site::fresh(kind).await;
    let receiver = WebhookReceiver::start().await;
    let (_muttd, ingest, base) = start(dir.path(), &site, &receiver.url());

    // A rule that matches the event (over the management API), so it is forwarded.
    let http = reqwest::Client::new();
    let rule = serde_json::json!({"match_string": "LINK-DOWN", "match_type": "contains", "priority": 10,
        "prod_handling": "Page_and_ticket", "dev_handling": "Ticket_only", "team_assignment": "NETO"});
    let created =
        http.post(format!("{base}/api/v2/rules")).header("X-API-KEY", WEB_KEY).json(&rule).send().await.unwrap();
    assert!(created.status().is_success(), "rule: {}", created.text().await.unwrap());

    browser.goto(&format!("{base}/")).await;
    browser.fill("#api_key", "not-the-key").await;
    browser.click("form.login-form button[type=submit]").await;
    assert_eq!(browser.text("#login-error").await, "That API key is not accepted.");

    browser.fill("#api_key", WEB_KEY).await;
    browser.click("form.login-form button[type=submit]").await;
    browser.wait_for_text("main h1", "Overview").await;
    let before: u64 = browser.text("#count-1m").await.parse().unwrap();

    let now = chrono::Utc::now().to_rfc3339();
    let event = serde_json::json!({"hostname": "ui-router-1", "message": "LINK-DOWN on ge-0/0/1", "timestamp": now});
    let sent = http.post(&ingest).header("X-API-KEY", INGEST_KEY).json(&event).send().await.unwrap();
    assert!(sent.status().is_success(), "ingest answered {}: {}", sent.status(), sent.text().await.unwrap());
    // The page polls its live part; waiting for it shows the count without a reload.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now: u64 = browser.text("#count-1m").await.parse().unwrap_or(0);
        if now > before {
            break;
        }
        assert!(Instant::now() < deadline, "the overview never counted the event (still {now})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The alerter matched it and the forwarder sent it: counted as an alert out.
    let deadline = Instant::now() + Duration::from_secs(15);
    while browser.text("#out-count-1m").await != "1" {
        assert!(Instant::now() < deadline, "the overview never counted the alert out");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    browser.logout(&base).await;
    browser.stop().await;
}

#[tokio::test]
async fn console_on_muttd_run_embedded() {
    console_on_muttd_run(BackendKind::Embedded).await;
}

#[tokio::test]
async fn console_on_muttd_run_redis_postgres() {
    console_on_muttd_run(BackendKind::RedisPostgres).await;
}
