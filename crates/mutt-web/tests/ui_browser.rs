//! The console in headless Chromium (`mutt_testkit::browser`), on the web role over either
//! backend: a wrong key shows the error on the login page; log in, see the overview, an
//! ingested event counted on it, log out, and a page then goes to the login. The embedded run
//! takes the screenshots `docs/ui/login.png`, `overview.png`, `overview-dark.png` and
//! `overview-phone.png`.
//!
//! Other pages' browser tests follow the same pattern in their own files:
//! `Browser::start(name)` (None: skipped here, a failure under CI), `login`, `goto`,
//! `wait_for_text`, `screenshot("<page>")`, `stop`.

use chrono::Utc;
use mutt_testapp::{BackendKind, both_backends, spawn_app};
use mutt_testkit::browser::Browser;

/// Screenshots come from one backend's run only (the two run in parallel).
fn shoots(kind: BackendKind) -> bool {
    kind == BackendKind::Embedded
}

async fn console_login_overview_logout(kind: BackendKind) {
    let Some(browser) = Browser::start("console_login_overview_logout").await else { return };
    let app = spawn_app(kind).await;
    let base = &app.base_url;

    // A page without a session goes to the login page.
    browser.goto(&format!("{base}/")).await;
    browser.find("#api_key").await;
    assert!(browser.url().await.contains("/login?next=%2F"), "{}", browser.url().await);
    if shoots(kind) {
        browser.screenshot("login").await;
    }

    // A wrong key: the error next to the field, still on the login page.
    browser.fill("#api_key", "not-the-key").await;
    browser.click("form.login-form button[type=submit]").await;
    let error = browser.text("#login-error").await;
    assert_eq!(error, "That API key is not accepted.");

    // The right key: the overview.
    browser.fill("#api_key", &app.api_key).await;
    browser.click("form.login-form button[type=submit]").await;
    browser.wait_for_text("main h1", "Overview").await;
    assert_eq!(browser.url().await, format!("{base}/"));
    assert_eq!(browser.text("#count-1m").await, "0");

    // An event arrives: the overview counts it (htmx polls the live part every 5 s; a
    // reload shows it at once).
    let event = br#"{"hostname":"router1","message":"LINK DOWN"}"#.to_vec();
    app.backend.queue.push_ingest(&[event], Utc::now()).await.unwrap();
    browser.wait_for_text("#count-1m", "1").await;
    assert_eq!(browser.text("#count-1m").await, "1");
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.text("#count-1m").await, "1");
    assert!(browser.text("#breaker").await.contains("CLOSED"));
    if shoots(kind) {
        browser.screenshot("overview").await;
        screenshots_in_other_shapes(&browser, base).await;
    }

    // Log out: the login page, and the overview needs a login again.
    browser.logout(base).await;
    browser.stop().await;
}

/// The dark theme (the toggle's cookie, no JavaScript needed) and a phone-sized window.
async fn screenshots_in_other_shapes(browser: &Browser, base: &str) {
    browser.goto(&format!("{base}/ui/theme?set=dark&next=/")).await;
    browser.wait_for_text("header a.theme", "Theme: dark").await;
    browser.screenshot("overview-dark").await;
    browser.goto(&format!("{base}/ui/theme?set=auto&next=/")).await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/")).await;
    browser.find("#count-1m").await;
    browser.screenshot("overview-phone").await;
    let (w, h) = mutt_testkit::browser::WINDOW;
    browser.client.set_window_size(w, h).await.unwrap();
}

both_backends!(console_login_overview_logout);
