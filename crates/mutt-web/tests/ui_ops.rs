//! The console's operations pages over plain HTTP, on both backends: the event-audit search
//! and an event's page, the configuration (validation next to the field, the change audited
//! with the session's key, the history's old/new), the dead letters (filters, a confirmation
//! before any move, a typed confirmation for a purge, the move in the background with its
//! progress, audited) and the unhandled events.

mod ui_client;

use chrono::{Duration, Utc};
use mutt_core::EventId;
use mutt_queue::dlq::Dlq;
use mutt_queue::{UnhandledKey, UnhandledSample};
use mutt_store::AuditRecord;
use mutt_store::manage::ConfigAuditFilter;
use mutt_testapp::reqwest::{self, StatusCode};
use mutt_testapp::{BackendKind, TestApp, both_backends, fixtures, spawn_app};
use serde_json::json;
use ui_client::Console;

/// The rows of the table with id `table` (the text between `<tbody>` and `</tbody>`).
fn tbody<'a>(html: &'a str, table: &str) -> &'a str {
    let at = html.find(&format!("id=\"{table}\"")).unwrap_or_else(|| panic!("no table {table} in {html}"));
    let body = &html[at..];
    &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()]
}

async fn audit_rows(app: &TestApp) -> Vec<AuditRecord> {
    let rule = app.backend.store.create_rule(&fixtures::rule("LINK DOWN")).await.unwrap();
    let now = Utc::now();
    let row = |host: &str, decision: &str, forwarded: bool, mins: i64| AuditRecord {
        event_id: EventId::new(),
        event_timestamp: now - Duration::minutes(mins),
        hostname: host.into(),
        matched_rule_id: rule,
        handling_decision: decision.into(),
        forwarded_to_moog: forwarded,
        raw_message: json!({"hostname": host, "message": format!("LINK DOWN on {host}")}).to_string(),
        silenced_by: None,
        flap_suppressed: false,
    };
    let rows = vec![
        row("core-1", "Page_and_ticket", true, 1),
        row("core-2", "Ticket_only", true, 2),
        row("lab-1", "Ignore", false, 3),
    ];
    app.backend.store.write_audit(&rows).await.unwrap();
    rows
}

async fn audit_search_filters_pages_and_shows_an_event(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let rows = audit_rows(&app).await;
    let c = Console::login(&app).await;

    let (status, html) = c.get("/audit").await;
    assert_eq!(status, StatusCode::OK);
    let body = tbody(&html, "audit-results");
    for r in &rows {
        assert!(body.contains(&r.event_id.to_string()), "{body}");
    }
    // Newest first.
    assert!(body.find("core-1").unwrap() < body.find("lab-1").unwrap());

    let (_, html) = c.get("/audit?hostname=core-2").await;
    let body = tbody(&html, "audit-results");
    assert!(body.contains("core-2") && !body.contains("core-1") && !body.contains("lab-1"), "{body}");
    let (_, html) = c.get("/audit?forwarded=false&decision=Ignore").await;
    let body = tbody(&html, "audit-results");
    assert!(body.contains("lab-1") && !body.contains("core-"), "{body}");
    let start = (Utc::now() - Duration::seconds(150)).to_rfc3339();
    let (_, html) = c.get(&format!("/audit?start_date={}", urlencode(&start))).await;
    let body = tbody(&html, "audit-results");
    assert!(body.contains("core-1") && body.contains("core-2") && !body.contains("lab-1"), "{body}");

    // A capped count stops at its cap; without one it is exact.
    let mut filter = mutt_store::manage::EventAuditFilter { count_limit: Some(2), limit: 1, ..Default::default() };
    assert_eq!(app.backend.store.search_event_audit(&filter).await.unwrap().total, 2);
    filter.count_limit = None;
    assert_eq!(app.backend.store.search_event_audit(&filter).await.unwrap().total, 3);

    // One per page: three pages, and the next page's link pins the end of the search.
    let (_, html) = c.get("/audit?limit=1").await;
    assert!(html.contains("page 1 of 3"), "{html}");
    let next = html.split("rel=\"next\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    assert!(next.contains("end_date=") && next.contains("page=2"), "{next}");
    let (_, html) = c.get(&next).await;
    assert!(tbody(&html, "audit-results").contains("core-2"), "{html}");

    // A bad value is an error next to its field, not a failed page.
    let (status, html) = c.get("/audit?rule_id=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"rule_id-error\"") && html.contains("is not a rule id"), "{html}");
    let (status, html) = c.get("/audit?end_date=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"end_date-error\""), "{html}");

    // One event: its row, its raw message and its delivery outcome.
    let id = rows[0].event_id.to_string();
    let (status, html) = c.get(&format!("/audit/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("LINK DOWN on core-1") && html.contains("Page_and_ticket"), "{html}");
    assert!(html.contains("id=\"delivery-state\""), "{html}");
    let (status, _) = c.get(&format!("/audit/{}", EventId::new())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c.get("/audit/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("v", s)]).unwrap().query().unwrap()[2..].to_owned()
}

async fn config_is_validated_audited_and_diffed(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let (status, html) = c.get("/config").await;
    assert_eq!(status, StatusCode::OK);
    for s in mutt_core::config_catalogue::catalogue() {
        assert!(html.contains(&format!("id=\"key-{}\"", s.key)), "{} missing", s.key);
    }
    assert!(html.contains("Unhandled events of one host and message"), "descriptions shown");

    // Refused: the page again, the typed value kept and the error next to the field.
    let (status, _, html) = c.post_answer("/config/unhandled_threshold", &[("value", "abc")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"error-unhandled_threshold\""), "{html}");
    assert!(html.contains("invalid value for unhandled_threshold"), "{html}");
    assert!(html.contains("value=\"abc\""), "{html}");
    // The partner rule: warn must stay below shed (2000 by default).
    let (status, _, html) = c.post_answer("/config/alerter_queue_warn_threshold", &[("value", "5000")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("must be below alerter_queue_shed_threshold"), "{html}");
    assert_eq!(app.backend.coordination.config_values(&["unhandled_threshold"]).await.unwrap(), vec![None]);

    // Accepted: stored, audited with the session's key as the API would, shown with a diff.
    let (status, location, _) =
        c.post_answer("/config/unhandled_threshold", &[("value", " 25 "), ("reason", "noisy lab")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/config#key-unhandled_threshold");
    assert_eq!(
        app.backend.coordination.config_values(&["unhandled_threshold"]).await.unwrap(),
        vec![Some("25".into())]
    );
    let (_, html) = c.get("/config").await;
    assert!(html.contains("unhandled_threshold: unset → 25"), "the flash says what changed");
    c.post_answer("/config/unhandled_threshold", &[("value", "30")]).await;
    c.post_answer("/config/unhandled_threshold/reset", &[("reason", "back to normal")]).await;
    let filter = ConfigAuditFilter { table_name: Some("dynamic_config".into()), limit: 10, ..Default::default() };
    let audit = app.backend.store.search_config_audit(&filter).await.unwrap().rows;
    let ops: Vec<&str> = audit.iter().map(|r| r.change.operation.as_str()).collect();
    assert_eq!(ops, ["DELETE", "UPDATE", "CREATE"]);
    assert!(audit.iter().all(|r| r.change.changed_by == "webui_api:default"), "{audit:?}");
    assert_eq!(audit[2].change.reason.as_deref(), Some("noisy lab"));
    assert_eq!(audit[1].change.old_values, Some(json!({"key": "unhandled_threshold", "value": "25"})));

    let (_, html) = c.get("/config/history?key=unhandled_threshold").await;
    let body = tbody(&html, "config-history");
    assert!(body.contains("<del class=\"mono\" aria-label=\"old value\">25</del>"), "{body}");
    assert!(body.contains("<ins class=\"mono\" aria-label=\"new value\">30</ins>"), "{body}");
    assert!(body.contains("webui_api:default") && body.contains("noisy lab"), "{body}");
    let (_, html) = c.get("/config/history?key=moog_rate_limit").await;
    assert!(tbody(&html, "config-history").contains("No change recorded"), "filtered by key");

    // Without the CSRF token nothing changes.
    let r = c.post_without_csrf("/config/unhandled_threshold", &[("value", "40")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.backend.coordination.config_values(&["unhandled_threshold"]).await.unwrap(), vec![None]);
}

fn dead_letter(host: &str, reason: &str, mins_ago: i64) -> Vec<u8> {
    json!({
        "hostname": host,
        "message": format!("event from {host}"),
        "_event_id": EventId::new().to_string(),
        "_dlq_reason": reason,
        "_dlq_error": "the store refused",
        "failed_at": (Utc::now() - Duration::minutes(mins_ago)).to_rfc3339(),
    })
    .to_string()
    .into_bytes()
}

/// Follows a background operation to its end; the final fragment.
async fn finished(c: &Console, op: &str) -> String {
    for _ in 0..100 {
        let (status, html) = c.get(&format!("{op}/progress")).await;
        assert_eq!(status, StatusCode::OK);
        if !html.contains("hx-trigger") {
            return html;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the operation {op} did not finish");
}

async fn dlq_moves_need_confirmation_and_are_audited(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let dl = app.backend.queue.dead_letters();
    let entries = [dead_letter("core-1", "retries_exhausted", 120), dead_letter("core-2", "shed", 5)];
    dl.dlq_push(Dlq::Alerter, &entries).await.unwrap();
    let c = Console::login(&app).await;

    let (status, html) = c.get("/dlq").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<span id=\"depth-alerter\">2</span>"), "{html}");
    assert!(html.contains("reason=retries_exhausted") && html.contains("reason=shed"), "{html}");
    let (_, html) = c.get("/dlq/alerter?host=core-1").await;
    let body = tbody(&html, "dlq-entries");
    assert!(body.contains("core-1") && !body.contains("core-2"), "{body}");
    let (_, html) = c.get("/dlq/alerter?older_than_mins=60").await;
    let body = tbody(&html, "dlq-entries");
    assert!(body.contains("core-1") && !body.contains("core-2"), "{body}");
    let (status, html) = c.get("/dlq/alerter?older_than_mins=soon").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"older-error\""), "{html}");

    // The confirmation counts without moving anything.
    let (status, html) = c.get("/dlq/alerter/confirm?action=replay&host=core-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<strong id=\"would-move\">1</strong>"), "{html}");
    assert_eq!(dl.dlq_depth(Dlq::Alerter).await.unwrap(), 2);

    // Replay: in the background, then the ingest queue has it and the audit says who.
    let (status, op, _) = c
        .post_answer("/dlq/alerter/run", &[("action", "replay"), ("host", "core-1"), ("comment", "store is back")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(op.starts_with("/dlq/ops/"), "{op}");
    let done = finished(&c, &op).await;
    assert!(done.contains("id=\"op-result\"") && done.contains("1 entry moved"), "{done}");
    assert_eq!(dl.dlq_depth(Dlq::Alerter).await.unwrap(), 1);
    assert_eq!(app.backend.queue.depth(mutt_queue::QueueId::Ingest).await.unwrap(), 1);
    let filter = ConfigAuditFilter { table_name: Some("dlq".into()), limit: 10, ..Default::default() };
    let audit = app.backend.store.search_config_audit(&filter).await.unwrap().rows;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].change.changed_by, "webui_api:default");
    assert_eq!(audit[0].change.reason.as_deref(), Some("store is back"));
    let (_, html) = c.get("/dlq").await;
    let recent = tbody(&html, "dlq-recent");
    assert!(recent.contains("replay") && recent.contains("webui_api:default"), "{recent}");

    // A purge without the DLQ's name typed: refused, nothing deleted.
    let (status, _, html) = c.post_answer("/dlq/alerter/run", &[("action", "purge"), ("confirm", "yes")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"confirm-error\""), "{html}");
    assert_eq!(dl.dlq_depth(Dlq::Alerter).await.unwrap(), 1);
    let (status, op, _) = c.post_answer("/dlq/alerter/run", &[("action", "purge"), ("confirm", "alerter")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    finished(&c, &op).await;
    assert_eq!(dl.dlq_depth(Dlq::Alerter).await.unwrap(), 0);

    // Park moves to the dead DLQ; the dead DLQ offers no park.
    dl.dlq_push(Dlq::Moog, &[dead_letter("edge-1", "rejected_by_receiver", 1)]).await.unwrap();
    let (_, op, _) = c.post_answer("/dlq/moog/run", &[("action", "park"), ("comment", "poison")]).await;
    finished(&c, &op).await;
    assert_eq!(dl.dlq_depth(Dlq::Dead).await.unwrap(), 1);
    let (status, _) = c.get("/dlq/dead/confirm?action=park").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.get("/dlq/nosuch").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn unhandled_lists_counters_most_frequent_first(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let key = |host: &str, sig: &str, text: &str| UnhandledKey::new(host, sig, EventId::new().to_string(), text);
    // An example message per (host, signature): the first kept (on Redis from the second
    // sighting on), a later one does not replace it.
    let counted = [
        key("quiet-host", "aaaaaaaaaaaaaaaa", ""),
        key("busy-host", "bbbbbbbbbbbbbbbb", "fan tray 2 speed low"),
        key("busy-host", "bbbbbbbbbbbbbbbb", "fan tray 2 speed low"),
        key("busy-host", "bbbbbbbbbbbbbbbb", "something else"),
        // A hostname with colons (an IPv6 address) is split from the signature correctly.
        key("fe80::1", "dddddddddddddddd", ""),
    ];
    let expiry = std::time::Duration::from_secs(600);
    for k in &counted {
        app.backend.coordination.count_unhandled(std::slice::from_ref(k), 100, expiry).await.unwrap();
    }
    // One that reached its threshold (2) and fired, in one batch: the batch's first message.
    let fired =
        [key("loud-host", "cccccccccccccccc", "PSU 1 <failed> & off"), key("loud-host", "cccccccccccccccc", "x")];
    app.backend.coordination.count_unhandled(&fired, 2, expiry).await.unwrap();
    let counts = app.backend.coordination.unhandled_counts(10).await.unwrap();
    let busy = counts.iter().find(|c| c.hostname == "busy-host").unwrap();
    assert_eq!((busy.count, busy.fired, busy.message.as_deref()), (3, false, Some("fan tray 2 speed low")));
    assert_eq!(UnhandledSample::new("h", "s", &"é".repeat(400)).message.len(), 500, "cut at a character boundary");

    let c = Console::login(&app).await;
    let (status, html) = c.get("/unhandled").await;
    assert_eq!(status, StatusCode::OK);
    let body = tbody(&html, "unhandled");
    let (loud, busy, quiet) =
        (body.find("loud-host").unwrap(), body.find("busy-host").unwrap(), body.find("quiet-host").unwrap());
    assert!(loud < busy && busy < quiet, "fired first, then by count: {body}");
    assert!(body.contains("<td class=\"num\">3</td>"), "{body}");
    assert!(body.contains("<td>fe80::1</td>") && body.contains("dddddddddddddddd"), "{body}");
    assert!(body.contains("fan tray 2 speed low") && body.contains("PSU 1 &#60;failed&#62; &#38; off"), "{body}");
    assert!(
        body.contains("/rules/new?match_type=contains&#38;match_string=fan+tray+2+speed+low&#38;event_json="),
        "{body}"
    );
    let (_, html) = c.get("/unhandled?host=QUIET").await;
    let body = tbody(&html, "unhandled");
    assert!(body.contains("quiet-host") && !body.contains("busy-host"), "{body}");
}

both_backends!(
    audit_search_filters_pages_and_shows_an_event,
    config_is_validated_audited_and_diffed,
    dlq_moves_need_confirmation_and_are_audited,
    unhandled_lists_counters_most_frequent_first,
);
