//! The management API against a running pipeline (ingestor → alerter → forwarder → webhook
//! receiver), on both backends: a rule change made over the API is in force in the running
//! alerter within one second (measured from the API's answer to the audit row of the next
//! event), and `/api/v2/events/{event_id}` tells a delivered alert from one the receiver
//! refused (dead-lettered, with the reason).
//!
//! Redis + PostgreSQL: one `app::start` per role, as separate processes would be (the change
//! reaches the alerter through the store's rules version and pub/sub). Embedded: all roles in
//! one start, as `muttd run`.

mod common;

use mutt_testapp::{ApiClient, BackendKind, Reply, Site};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use muttd::app::{self, App, Role, StartOptions};
use muttd::secrets::EnvSecrets;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "pipeline-ingest-key";
const WEB_KEY: &str = "pipeline-web-key";

struct Running {
    apps: Vec<App>,
    receiver: WebhookReceiver,
    web: ApiClient,
    ingest: ApiClient,
    _site: Site,
}

async fn start(kind: BackendKind) -> Running {
    let receiver = WebhookReceiver::start().await;
    let site = Site::fresh(kind).await;
    let mut c = common::site_config(&site, receiver.url());
    // A refused alert is dead-lettered at once; no breaker in the way of the next one.
    c.forwarder.circuit_breaker_threshold = 1000;
    let secrets = EnvSecrets::new(HashMap::from([
        ("INGEST_API_KEY".to_string(), INGEST_KEY.to_string()),
        ("WEBUI_API_KEY".to_string(), WEB_KEY.to_string()),
        ("MOOG_API_KEY".to_string(), "pipeline-moog-key".to_string()),
    ]));
    let mut apps = Vec::new();
    if kind == BackendKind::Embedded {
        let roles = [Role::Ingestor, Role::Alerter, Role::Forwarder, Role::Web];
        apps.push(app::start(&c, &secrets, &roles, StartOptions { migrate: true }).await.expect("run"));
    } else {
        for role in [Role::Alerter, Role::Web, Role::Ingestor, Role::Forwarder] {
            let opts = StartOptions { migrate: role == Role::Alerter };
            apps.push(app::start(&c, &secrets, &[role], opts).await.expect("role starts"));
        }
    }
    let address = |role: Role| {
        let addr = apps.iter().find_map(|a| a.address(role)).expect("role started");
        format!("http://{addr}")
    };
    let web = ApiClient::new(address(Role::Web), Some(WEB_KEY));
    let ingest = ApiClient::new(address(Role::Ingestor), Some(INGEST_KEY));
    Running { apps, receiver, web, ingest, _site: site }
}

impl Running {
    async fn send(&self, host: &str, message: &str) {
        let event = json!({"hostname": host, "message": message, "timestamp": chrono::Utc::now().to_rfc3339()});
        let r = self.ingest.post("/ingest", &event).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// The audit row of the one event from `host`, polled every 10 ms until `within`.
    async fn audit_row(&self, host: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.web.get(&format!("/api/v2/audit-logs?hostname={host}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            if let Some(row) = r.body["logs"].as_array().and_then(|l| l.first()) {
                return Some(row.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `/events/{id}` until its delivery state is `state` (or 15 s).
    async fn outcome(&self, event_id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.web.get(&format!("/api/v2/events/{event_id}")).await;
            if r.status == 200 && r.body["delivery"]["state"] == state {
                return r.body;
            }
            assert!(Instant::now() < deadline, "{event_id} never {state}: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        for app in self.apps {
            app.stop().await.expect("clean stop");
        }
    }
}

fn rule(text: &str, priority: i32, team: &str) -> Value {
    json!({"match_string": text, "match_type": "contains", "priority": priority,
           "prod_handling": "Page_and_ticket", "dev_handling": "Ticket_only", "team_assignment": team})
}

/// Sends an event right after `change` was answered and waits for its audit row; returns the
/// row and the time from the answer to the row.
async fn next_event_after(r: &Running, change: Reply, host: &str) -> (Value, Duration) {
    let answered = Instant::now();
    assert!(change.status < 300, "{}", change.text);
    r.send(host, "LINKDOWN on ge-0/0/1").await;
    let row = r.audit_row(host, Duration::from_secs(5)).await.expect("the event is audited");
    (row, answered.elapsed())
}

async fn a_change_over_the_api_is_in_force_within_a_second(kind: BackendKind) {
    let r = start(kind).await;
    let first = r.web.post("/api/v2/rules", &rule("LINKDOWN", 10, "NETO")).await;
    let first_id = first.body["id"].as_i64().expect("an id");
    // The pipeline is warm: an event goes through with the first rule.
    r.send("warmup", "LINKDOWN").await;
    let row = r.audit_row("warmup", Duration::from_secs(10)).await.expect("warm-up audited");
    assert_eq!(row["matched_rule_id"], first_id);

    // A new rule that wins, then the same rule deactivated, then the first rule's handling
    // changed: each in force for the very next event.
    let created = r.web.post("/api/v2/rules", &rule("LINKDOWN", 1, "OPS")).await;
    let second_id = created.body["id"].as_i64().expect("an id");
    let (row, create) = next_event_after(&r, created, "after-create").await;
    assert_eq!(row["matched_rule_id"], second_id, "{row}");
    let put = |id: i64, body: Value| {
        let req = r.web.request(reqwest::Method::PUT, &format!("/api/v2/rules/{id}")).json(&body);
        Reply::from(req)
    };
    let (row, deactivate) = next_event_after(&r, put(second_id, json!({"is_active": false})).await, "after-off").await;
    assert_eq!(row["matched_rule_id"], first_id, "{row}");
    let (row, update) =
        next_event_after(&r, put(first_id, json!({"prod_handling": "Ignore"})).await, "after-put").await;
    assert_eq!((&row["matched_rule_id"], &row["handling_decision"]), (&json!(first_id), &json!("Ignore")), "{row}");
    eprintln!(
        "{}: API answer to the next event's audit row: create {} ms, deactivate {} ms, update {} ms",
        kind.name(),
        create.as_millis(),
        deactivate.as_millis(),
        update.as_millis()
    );
    for (what, took) in [("create", create), ("deactivate", deactivate), ("update", update)] {
        assert!(took < Duration::from_secs(1), "{what}: {took:?}");
    }
    r.stop().await;
}

async fn the_events_route_tells_delivered_from_dead_lettered(kind: BackendKind) {
    let r = start(kind).await;
    assert_eq!(r.web.post("/api/v2/rules", &rule("LINKDOWN", 10, "NETO")).await.status, 201);
    let sent = chrono::Utc::now();
    r.send("delivered-host", "LINKDOWN").await;
    let row = r.audit_row("delivered-host", Duration::from_secs(10)).await.expect("audited");
    let id = row["event_id"].as_str().expect("an event id").to_owned();
    let body = r.outcome(&id, "delivered").await;
    assert_eq!(body["audit"]["forwarded_to_moog"], true, "{body}");
    let at = chrono::DateTime::parse_from_rfc3339(body["delivery"]["delivered_at"].as_str().unwrap()).unwrap();
    let after = (at.with_timezone(&chrono::Utc) - sent).num_milliseconds();
    assert!((-1000..15_000).contains(&after), "delivered after it was sent: {after} ms, {body}");
    assert_eq!(r.receiver.accepted().len(), 1);

    // The receiver refuses the next alert: the forwarder dead-letters it, with the reason.
    r.receiver.set_mode(ReceiverMode::Status(400));
    r.send("refused-host", "LINKDOWN").await;
    let row = r.audit_row("refused-host", Duration::from_secs(10)).await.expect("audited");
    let id = row["event_id"].as_str().unwrap().to_owned();
    let body = r.outcome(&id, "dead_lettered").await;
    let dl = &body["delivery"]["dead_letters"][0];
    assert_eq!(dl["dlq"], "moog", "{body}");
    assert!(dl["reason"].is_string() && dl["error"].as_str().is_some_and(|e| e.contains("400")), "{body}");
    assert_eq!(body["delivery"]["delivered_at"], Value::Null);

    // Replayed from the DLQ over the API once the receiver accepts again: delivered.
    r.receiver.set_mode(ReceiverMode::Succeed);
    let replay = r.web.post("/api/v2/dlq/moog/replay", &json!({"id": dl["id"]})).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    let body = r.outcome(&id, "delivered").await;
    assert_eq!(body["delivery"]["dead_letters"], json!([]), "{body}");
    r.stop().await;
}

mutt_testapp::both_backends!(
    a_change_over_the_api_is_in_force_within_a_second,
    the_events_route_tells_delivered_from_dead_lettered,
);
