//! The console's silences page on both backends: over plain HTTP, the forms (a silence, a
//! maintenance window) with their errors next to the field, the list by state, early expiry
//! with the CSRF token, the config-audit rows and reload notices the API would write; an
//! alerter over the created silence audits a matching event with `silenced_by` and does not
//! forward it. In headless Chromium: "Silence this" on an event's page, the pre-filled form
//! submitted, the next such event silenced; the embedded run takes `docs/ui/silences.png`.

mod ui_client;

use chrono::{Duration, Utc};
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome};
use mutt_core::EventId;
use mutt_queue::{QueueId, WorkerRole};
use mutt_testapp::reqwest::StatusCode;
use mutt_testapp::{BackendKind, TestApp, both_backends, spawn_app};
use mutt_testkit::browser::Browser;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use ui_client::{Console, Notices, assert_forms_carry_csrf, audit_rows, field_error, location};

async fn rule(app: &TestApp) -> i32 {
    app.backend.store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap()
}

async fn alerter(app: &TestApp) -> Alerter {
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, "s");
    let config = AlerterConfig { block_timeout: std::time::Duration::from_millis(100), ..AlerterConfig::default() };
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    let b = &app.backend;
    Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics).await.unwrap()
}

/// Pushes one event per host (message `CRITICAL: link down`), runs the alerter over them and
/// returns their event ids.
async fn run_events(app: &TestApp, a: &mut Alerter, hosts: &[&str]) -> Vec<String> {
    let ids: Vec<String> = hosts.iter().map(|_| EventId::new().to_string()).collect();
    let raw: Vec<Vec<u8>> = hosts
        .iter()
        .zip(&ids)
        .map(|(h, id)| {
            let e = json!({"hostname": h, "message": "CRITICAL: link down", "timestamp": Utc::now().to_rfc3339(),
                "_event_id": id, "_correlation_id": format!("c-{h}")});
            serde_json::to_vec(&e).unwrap()
        })
        .collect();
    app.backend.queue.push(QueueId::Ingest, &raw).await.unwrap();
    let sd = CancellationToken::new();
    let mut seen = 0;
    while seen < hosts.len() {
        match a.process_one_batch(&sd).await.unwrap() {
            BatchOutcome::Processed { events, .. } => seen += events,
            other => panic!("unexpected {other:?}"),
        }
    }
    ids
}

/// Every audit row as (hostname, silenced_by, forwarded_to_moog), by hostname.
async fn audit(app: &TestApp) -> Vec<(String, Option<i64>, bool)> {
    let sql = "SELECT hostname, silenced_by, forwarded_to_moog FROM event_audit_log ORDER BY hostname, id";
    app.site.rows(sql).await
}

/// A form's fields in order.
type Form<'a> = Vec<(&'a str, &'a str)>;

fn silence_form<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("kind", "silence"),
        ("host", "core-*"),
        ("rule_id", ""),
        ("team", ""),
        ("message", "link down"),
        ("message_mode", "contains"),
        ("trap_oid_prefix", ""),
        ("starts_at", ""),
        ("ends_at", ""),
        ("duration", "2h"),
        ("comment", "core router upgrade, CHG-1234"),
        ("reason", "planned"),
    ];
    for (k, v) in extra {
        match form.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = v,
            None => form.push((k, v)),
        }
    }
    form
}

/// The section (`active`, `scheduled`, `expired`) of the list holding `silence-<id>`.
fn section_of(html: &str, id: i64) -> Option<&'static str> {
    let at = html.find(&format!("id=\"silence-{id}\""))?;
    ["expired", "scheduled", "active"]
        .into_iter()
        .find(|s| html[..at].contains(&format!("<table class=\"data\" id=\"{s}\"")))
}

async fn field_errors_keep_the_input(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let later = (Utc::now() + Duration::days(1)).format("%Y-%m-%d %H:%M").to_string();
    let earlier = (Utc::now() + Duration::hours(20)).format("%Y-%m-%d %H:%M").to_string();
    let cases: Vec<(Form, &str, &str)> = vec![
        (silence_form(&[("message_mode", "regex"), ("message", "link (down")]), "message", "unclosed group"),
        (
            silence_form(&[("starts_at", &later), ("ends_at", &earlier), ("duration", "")]),
            "ends_at",
            "must be after starts_at",
        ),
        (silence_form(&[("duration", "soon")]), "duration", "is not a duration"),
        (silence_form(&[("duration", "")]), "duration", "Give an end or a duration."),
        (silence_form(&[("starts_at", "tomorrow")]), "starts_at", "is not a time"),
        (silence_form(&[("rule_id", "twelve")]), "rule_id", "is not a rule id"),
        (silence_form(&[("host", ""), ("message", "")]), "matcher", "at least one of"),
        (silence_form(&[("trap_oid_prefix", "1.3.x")]), "trap_oid_prefix", "dotted OID"),
        (silence_form(&[("comment", " ")]), "comment", "must not be empty"),
        (
            silence_form(&[
                ("kind", "window"),
                ("day_sun", "on"),
                ("window_start", "02:00"),
                ("window_duration", "2h"),
                ("time_zone", "Mars/Olympus_Mons"),
            ]),
            "time_zone",
            "is not an IANA time zone",
        ),
        (
            silence_form(&[
                ("kind", "window"),
                ("window_start", "02:00"),
                ("window_duration", "2h"),
                ("time_zone", "UTC"),
            ]),
            "days",
            "at least one day",
        ),
        (
            silence_form(&[
                ("kind", "window"),
                ("day_mon", "on"),
                ("window_start", "25:00"),
                ("window_duration", "2h"),
                ("time_zone", "UTC"),
            ]),
            "window_start",
            "is not a time HH:MM",
        ),
    ];
    for (form, field, wanted) in cases {
        let (status, html) = c.post_page("/silences/new", &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {html}");
        let error = field_error(&html, field).unwrap_or_else(|| panic!("no error next to {field}: {html}"));
        assert!(error.contains(wanted), "{field}: {error:?} should say {wanted:?}");
        assert!(html.contains(&format!("aria-describedby=\"{field}-error\"")), "{field}: described by its error");
        assert_forms_carry_csrf(&html, &c.csrf);
    }
    // The input is kept: the bad regex is still in its field, the mode still regex.
    let (_, html) = c.post_page("/silences/new", &silence_form(&[("message_mode", "regex"), ("message", "a(b")])).await;
    assert!(html.contains(r#"value="a(b""#) && html.contains(r#"<option value="regex" selected>"#), "{html}");
    assert!(
        app.backend.store.list_silences(Default::default(), Utc::now()).await.unwrap().is_empty(),
        "nothing stored"
    );
}

async fn create_list_silence_and_expire(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let rule_id = rule(&app).await.to_string();
    let c = Console::login(&app).await;
    let (status, html) = c.get("/silences").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No silence is active.") && html.contains("aria-current=\"page\">Silences"), "{html}");

    // Without the CSRF token: refused before anything is stored.
    let r = c.post_without_csrf("/silences/new", &silence_form(&[])).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let mut notices = Notices::listen(&app).await;
    let r = c.post("/silences/new", &silence_form(&[("rule_id", &rule_id)])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let id: i64 = location(&r).strip_prefix("/silences#silence-").unwrap().parse().unwrap();
    // Redis: told over pub/sub; embedded alerters re-read their silences every few seconds.
    if kind == BackendKind::RedisPostgres {
        assert!(notices.heard(std::time::Duration::from_secs(5)).await, "the alerters are told");
    }
    let stored = app.backend.store.get_silence(id).await.unwrap().unwrap();
    assert_eq!(stored.spec.created_by, "webui_api:default", "the creator is the session's key, as the API names it");
    let length = stored.spec.ends_at.unwrap() - stored.spec.starts_at;
    assert_eq!(length, Duration::hours(2));
    let rows = audit_rows(&app, "silences").await;
    assert_eq!((rows[0]["operation"].as_str(), rows[0]["record_id"].as_i64()), (Some("CREATE"), Some(id)));
    assert_eq!(
        (rows[0]["changed_by"].as_str(), rows[0]["reason"].as_str()),
        (Some("webui_api:default"), Some("planned"))
    );

    // A maintenance window and a silence that starts tomorrow.
    let window = silence_form(&[
        ("kind", "window"),
        ("host", "edge-*"),
        ("message", ""),
        ("day_sun", "on"),
        ("day_sat", "on"),
        ("window_start", "02:00"),
        ("window_duration", "2h"),
        ("time_zone", "Europe/Berlin"),
    ]);
    let r = c.post("/silences/new", &window).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let window_id: i64 = location(&r).rsplit('-').next().unwrap().parse().unwrap();
    let tomorrow = (Utc::now() + Duration::days(1)).format("%Y-%m-%d %H:%M").to_string();
    let r = c.post("/silences/new", &silence_form(&[("starts_at", &tomorrow), ("host", "lab-1")])).await;
    let later_id: i64 = location(&r).rsplit('-').next().unwrap().parse().unwrap();

    let (_, html) = c.get("/silences").await;
    for flash in [
        format!("Silence {id} created."),
        format!("Maintenance window {window_id} created."),
        format!("Silence {later_id} created."),
    ] {
        assert!(html.contains(&flash), "{flash}: {html}");
    }
    assert_eq!(section_of(&html, id), Some("active"));
    assert_eq!(section_of(&html, window_id), Some("active"));
    assert_eq!(section_of(&html, later_id), Some("scheduled"));
    let text = ui_client::unescape(&html);
    assert!(text.contains(&format!("host core-* · rule {rule_id} · message contains \"link down\"")), "{html}");
    assert!(text.contains("Sat,Sun 02:00–04:00 Europe/Berlin"), "the window's schedule: {html}");
    assert!(text.contains("core router upgrade, CHG-1234") && text.contains("<td>webui_api:default</td>"), "{html}");
    assert_forms_carry_csrf(&html, &c.csrf);

    // An alerter holds back the matching event's alert and audits it with the silence.
    let mut a = alerter(&app).await;
    run_events(&app, &mut a, &["core-1", "dist-1"]).await;
    assert_eq!(app.backend.queue.depth(QueueId::Alert).await.unwrap(), 1, "only dist-1's alert goes out");
    assert_eq!(audit(&app).await, [("core-1".into(), Some(id), false), ("dist-1".into(), None, true)]);

    // Expire it early: without the token refused; with it, ended and kept; a second time 409.
    let path = format!("/silences/{id}/expire");
    assert_eq!(c.post_without_csrf(&path, &[]).await.status(), StatusCode::FORBIDDEN);
    let r = c.post(&path, &[]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/silences".to_owned()));
    let (_, html) = c.get("/silences").await;
    assert!(html.contains(&format!("Silence {id} expired.")), "{html}");
    assert_eq!(section_of(&html, id), Some("expired"));
    assert!(html.contains("expired early") && html.contains("by webui_api:default"), "{html}");
    let rows = audit_rows(&app, "silences").await;
    assert_eq!((rows[0]["operation"].as_str(), rows[0]["reason"].as_str()), (Some("UPDATE"), Some("expired early")));
    c.post(&path, &[]).await;
    let (_, html) = c.get("/silences").await;
    assert!(html.contains(&format!("Silence {id} was not expired: Silence has already ended")), "{html}");

    // Expired: the next core event goes out again.
    a.silences().reload(app.backend.store.as_ref()).await;
    run_events(&app, &mut a, &["core-2"]).await;
    assert_eq!(app.backend.queue.depth(QueueId::Alert).await.unwrap(), 2);
}

async fn silence_this_prefills_the_form(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let rule_id = rule(&app).await;
    let mut a = alerter(&app).await;
    let ids = run_events(&app, &mut a, &["router7"]).await;
    let c = Console::login(&app).await;
    let (status, html) = c.get(&format!("/audit/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    let link = format!("/silences/new?event_id={}&amp;host=router7&amp;rule_id={rule_id}", ids[0]);
    assert!(html.contains(&link), "the event page links to the pre-filled form: {html}");

    let (status, html) = c.get(&ui_client::unescape(&link)).await;
    assert_eq!(status, StatusCode::OK);
    for v in [
        "router7".to_owned(),
        rule_id.to_string(),
        "CRITICAL: link down".into(),
        format!("Silenced from event {}", ids[0]),
    ] {
        assert!(html.contains(&format!("value=\"{v}\"")), "{v} pre-filled: {html}");
    }
    // Parameters alone (no event), and given ones win over the event's.
    let (_, html) = c.get("/silences/new?host=sw-*&rule_id=4&message=fan%20failed").await;
    assert!(["value=\"sw-*\"", "value=\"4\"", "value=\"fan failed\"", "value=\"1h\""].iter().all(|v| html.contains(v)));
    let (_, html) = c.get(&format!("/silences/new?event_id={}&message=other", ids[0])).await;
    assert!(html.contains("value=\"other\"") && html.contains("value=\"router7\""), "{html}");
    let (_, html) = c.get("/silences/new?event_id=00000000-0000-0000-0000-000000000000").await;
    assert!(html.contains("No audit row for event"), "{html}");
    let (_, html) = c.get("/silences/new?kind=window").await;
    assert!(
        html.contains("id=\"day_sun\"") && html.contains("value=\"UTC\"") && html.contains("Create maintenance window")
    );
}

both_backends!(field_errors_keep_the_input, create_list_silence_and_expire, silence_this_prefills_the_form);

/// Screenshots come from one backend's run only (the two run in parallel).
fn shoots(kind: BackendKind) -> bool {
    kind == BackendKind::Embedded
}

async fn silence_this_in_a_browser(kind: BackendKind) {
    let Some(browser) = Browser::start("silence_this_in_a_browser").await else { return };
    let app = spawn_app(kind).await;
    let base = &app.base_url;
    rule(&app).await;
    let mut a = alerter(&app).await;
    let ids = run_events(&app, &mut a, &["core-7"]).await;
    browser.login(base, &app.api_key).await;

    // The event's page: "Silence this" opens the form filled from the event.
    browser.goto(&format!("{base}/audit/{}", ids[0])).await;
    browser.click("#silence-this").await;
    browser.wait_for_text("main h1", "New silence").await;
    assert_eq!(browser.find("#host").await.prop("value").await.unwrap().as_deref(), Some("core-7"));
    assert_eq!(browser.find("#message").await.prop("value").await.unwrap().as_deref(), Some("CRITICAL: link down"));
    browser.fill("#duration", "3h").await;
    browser.fill("#comment", "line card swap, CHG-77").await;
    browser.click("#save").await;
    let flash = browser.wait_for_text("p.flash", "created").await;
    let id: i64 = flash.split_whitespace().nth(1).unwrap().parse().unwrap();
    let row = browser.text(&format!("#silence-{id}")).await;
    assert!(row.contains("in effect") && row.contains("host core-7") && row.contains("CHG-77"), "{row}");

    // A maintenance window from the keyboard-reachable form, for the screenshot.
    browser.click("#new-window").await;
    browser.fill("#host", "edge-*").await;
    browser.click("#day_sun").await;
    // A time field's keyboard entry depends on the locale (12 or 24 hours): set its value.
    browser.client.execute("document.getElementById('window_start').value = '02:00'", vec![]).await.unwrap();
    browser.fill("#time_zone", "Europe/Berlin").await;
    browser.fill("#comment", "weekly edge maintenance").await;
    browser.click("#save").await;
    browser.wait_for_text("p.flash", "Maintenance window").await;
    assert!(browser.text("#active").await.contains("Sun 02:00–04:00 Europe/Berlin"));

    // The next event from that host is audited, silenced, and not forwarded.
    a.silences().reload(app.backend.store.as_ref()).await;
    run_events(&app, &mut a, &["core-7"]).await;
    assert_eq!(audit(&app).await, [("core-7".into(), None, true), ("core-7".into(), Some(id), false)]);
    assert_eq!(app.backend.queue.depth(QueueId::Alert).await.unwrap(), 1);
    // One scheduled silence, and one expired early from the page (htmx asks to confirm).
    let starts = (Utc::now() + Duration::days(2)).to_rfc3339();
    let ends = (Utc::now() + Duration::days(2) + Duration::hours(4)).to_rfc3339();
    let body = json!({"matcher": {"team": "NETO", "message_regex": "BGP .* down"}, "starts_at": starts,
        "ends_at": ends, "comment": "carrier maintenance, ticket 4471"});
    assert_eq!(app.client.post("/api/v2/silences", &body).await.status, 201);
    let body =
        json!({"matcher": {"trap_oid_prefix": "1.3.6.1.4.1.9.9.41"}, "ends_at": ends, "comment": "noisy syslog traps"});
    let ended = app.client.post("/api/v2/silences", &body).await.body["id"].as_i64().unwrap();
    browser.goto(&format!("{base}/silences")).await;
    browser.click(&format!("#silence-{ended} button.danger")).await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_text("p.flash", &format!("Silence {ended} expired.")).await;
    assert!(browser.text("#expired").await.contains("noisy syslog traps"), "listed as ended");
    if shoots(kind) {
        browser.goto(&format!("{base}/silences")).await;
        browser.find("#active").await;
        browser.screenshot("silences").await;
    }
    browser.stop().await;
}

both_backends!(silence_this_in_a_browser);
